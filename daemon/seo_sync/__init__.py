"""seo-sync: keeps a local SQLite read cache of the platform's DynamoDB business profiles in step."""

__version__ = "0.1.0"
