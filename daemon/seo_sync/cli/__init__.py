"""The `seo-sync` command line."""
