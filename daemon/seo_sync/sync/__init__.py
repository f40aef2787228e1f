"""The data path: the change feed, shard graph, poller and writer threads, full sync."""
