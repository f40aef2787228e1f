"""The write path: an operator's writes to DynamoDB, then to the cache (`profiles.py`).

It sits in the data-path layer beside `sync/`: it uses the adapters (DynamoDB, the cache, the
delete-protection ledger and backups, the daemon's socket) and only the command line uses it.
"""
