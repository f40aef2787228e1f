"""`python -m daemon` is the same as the `seo-sync` console script."""

from daemon.cli import main

if __name__ == "__main__":
    main()
