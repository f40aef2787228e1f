"""The cache database `cache.db`: the one writer, read-only readers, SQL text, the writer lock."""
