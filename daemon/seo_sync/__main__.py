"""`python -m seo_sync` is the same as the `seo-sync` console script."""

from seo_sync.cli.main import main

if __name__ == "__main__":
    main()
