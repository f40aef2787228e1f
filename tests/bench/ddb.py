"""DynamoDB for the benchmark: plain boto3 clients, table set-up, bulk load, and the two baselines.

The baselines are what an engineer would write without seo-sync: (a) merely scanning the tables
(the source limit: nothing can be faster than reading), (b) a naive loop, a single-segment Scan
and one autocommitted INSERT per item. Both convert items with the same codec as seo-sync, so
the comparison is about how the work is organised, not about different work.
"""

from __future__ import annotations

import os
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from seo_sync import codec
from seo_sync.aws.tables import Source
from seo_sync.cache.sql import q
from seo_sync.codec import Item
from seo_sync.config import AwsSettings
from seo_sync.schema import TABLES, TableSpec
from tests.bench.common import ProgressLog
from tests.support.moto_server import FAKE_CREDENTIALS

REGION = "us-east-1"
PREFIX = "seo_"


def install_fake_aws_env() -> None:
    """Fake credentials and the account-endpoint switch moto needs, for this process and children."""
    for k, v in FAKE_CREDENTIALS.items():
        os.environ[k] = v
    os.environ["AWS_ACCOUNT_ID_ENDPOINT_MODE"] = "disabled"
    for k in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB"):
        os.environ.pop(k, None)


def client(endpoint: str, service: str = "dynamodb") -> Any:
    """A plain boto3 client for moto (fake credentials, no retries hiding slowness)."""
    return boto3.client(service, endpoint_url=endpoint, region_name=REGION,
                        aws_access_key_id="testing", aws_secret_access_key="testing",
                        config=Config(max_pool_connections=32, retries={"mode": "standard", "max_attempts": 3},
                                      account_id_endpoint_mode="disabled"))


def source(endpoint: str, prefix: str = PREFIX) -> Source:
    """seo-sync's own Source pointed at `endpoint`."""
    return Source(AwsSettings(endpoint_url=endpoint, region=REGION), prefix)


def create_tables(endpoint: str, prefix: str = PREFIX) -> None:
    """Create the five tables with streams (idempotent)."""
    src = source(endpoint, prefix)
    for spec in TABLES.values():
        src.create_table(spec)


def load(endpoint: str, items: dict[str, list[Item]], prefix: str = PREFIX, threads: int = 4) -> float:
    """BatchWriteItem every item (25 a call, `threads` callers); returns the seconds it took."""
    src = source(endpoint, prefix)
    chunks: list[tuple[TableSpec, list[Item]]] = []
    for table, its in items.items():
        for i in range(0, len(its), 500):
            chunks.append((TABLES[table], its[i:i + 500]))
    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda c: src.batch_write(c[0], c[1]), chunks))
    return time.perf_counter() - start


def _scan_segment(ddb: Any, name: str, segment: int, total: int, progress: ProgressLog | None = None) -> int:
    kwargs: dict[str, Any] = {"TableName": name}
    if total > 1:
        kwargs.update(Segment=segment, TotalSegments=total)
    n = 0
    while True:
        resp = ddb.scan(**kwargs)
        n += len(resp.get("Items", []))
        if progress is not None:
            progress.add(len(resp.get("Items", [])))
        if not resp.get("LastEvaluatedKey"):
            return n
        kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]


def scan_only(endpoint: str, segments: int, prefix: str = PREFIX,
              progress: ProgressLog | None = None) -> tuple[float, int]:
    """Baseline (a): Scan all five tables with `segments` parallel segments, keep nothing."""
    ddb = client(endpoint)
    start = time.perf_counter()
    if progress is not None:
        progress.restart()
    total = 0
    with ThreadPoolExecutor(max(1, segments)) as pool:
        for spec in TABLES.values():
            name = spec.dynamo_name(prefix)
            total += sum(pool.map(lambda s, n=name: _scan_segment(ddb, n, s, segments, progress), range(segments)))
    return time.perf_counter() - start, total


def plain_ddl(spec: TableSpec) -> str:
    """The obvious CREATE TABLE for one cache table: every column, the DynamoDB key as primary key."""
    cols = ", ".join(q(c) for c in spec.column_names)
    pk = ", ".join(q(k) for k in spec.key_names)
    return f"CREATE TABLE IF NOT EXISTS {q(spec.name)} ({cols}, PRIMARY KEY ({pk}))"


def naive_loop(endpoint: str, db_path: Path, prefix: str = PREFIX) -> tuple[float, int]:
    """Baseline (b): single-segment Scan, one INSERT per item, autocommit, SQLite defaults."""
    ddb = client(endpoint)
    conn = sqlite3.connect(db_path, isolation_level=None)
    try:
        for spec in TABLES.values():
            conn.execute(plain_ddl(spec))
        start = time.perf_counter()
        total = 0
        for spec in TABLES.values():
            cols = spec.column_names
            sql = (f"INSERT OR REPLACE INTO {q(spec.name)} ({', '.join(q(c) for c in cols)}) "
                   f"VALUES ({', '.join('?' for _ in cols)})")
            kwargs: dict[str, Any] = {"TableName": spec.dynamo_name(prefix)}
            while True:
                resp = ddb.scan(**kwargs)
                for item in resp.get("Items", []):
                    if codec.is_deleted(item):
                        continue
                    row = codec.item_to_row(spec, item)
                    conn.execute(sql, [row[c] for c in cols])
                    total += 1
                if not resp.get("LastEvaluatedKey"):
                    break
                kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]
        return time.perf_counter() - start, total
    finally:
        conn.close()


def open_shards(endpoint: str, prefix: str = PREFIX) -> int:
    """Open shards over the five tables' streams, counted with our own client (DescribeStream, paged)."""
    tables, streams = client(endpoint), client(endpoint, "dynamodbstreams")
    total = 0
    for spec in TABLES.values():
        arn = tables.describe_table(TableName=spec.dynamo_name(prefix))["Table"]["LatestStreamArn"]
        kwargs: dict[str, Any] = {"StreamArn": arn}
        while True:
            desc = streams.describe_stream(**kwargs)["StreamDescription"]
            total += sum(1 for s in desc.get("Shards", [])
                         if "EndingSequenceNumber" not in s.get("SequenceNumberRange", {}))
            if not desc.get("LastEvaluatedShardId"):
                break
            kwargs["ExclusiveStartShardId"] = desc["LastEvaluatedShardId"]
    return total
