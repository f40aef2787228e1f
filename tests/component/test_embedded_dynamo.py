"""The embedded DynamoDB keeps DynamoDB's promise that a conditional write is atomic.

moto's threaded server evaluates a write's condition and then stores the item without a lock, so two
racing conditional puts can both pass. Tests of optimistic locking (and the demo) rely on the real
promise, so `seo_sync.demo.embedded.serialize_moto_writes` runs moto's writes one at a time. This test widens the
gap between moto's condition check and its write to 200 ms, which makes the race certain without it.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import boto3
import pytest
from moto.dynamodb.models import table as moto_table

from seo_sync.demo import embedded


@pytest.fixture
def client(dynamo_endpoint: str) -> Any:
    """A plain boto3 client on the embedded server with one table holding `k=a, v=1`."""
    ddb = boto3.client("dynamodb", endpoint_url=dynamo_endpoint, region_name="us-east-1")
    ddb.create_table(TableName="race", KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
                     BillingMode="PAY_PER_REQUEST")
    ddb.put_item(TableName="race", Item={"k": {"S": "a"}, "v": {"N": "1"}})
    return ddb


@pytest.fixture
def slow_condition_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto sleeps 200 ms between passing a condition and storing the item."""
    real = moto_table.get_filter_expression

    def slow(*args: Any, **kwargs: Any) -> Any:
        op = real(*args, **kwargs)
        check = op.expr

        def expr(item: Any) -> Any:
            passed = check(item)
            time.sleep(0.2)
            return passed

        op.expr = expr
        return op

    monkeypatch.setattr(moto_table, "get_filter_expression", slow)


def _race(ddb: Any, writers: int) -> list[str]:
    """`writers` threads put `v=2` on condition `v=1` at once; each returns "won" or the error code."""
    barrier = threading.Barrier(writers)
    outcomes = [""] * writers

    def put(i: int) -> None:
        barrier.wait()
        try:
            ddb.put_item(TableName="race", Item={"k": {"S": "a"}, "v": {"N": "2"}, "w": {"N": str(i)}},
                         ConditionExpression="v = :one", ExpressionAttributeValues={":one": {"N": "1"}})
            outcomes[i] = "won"
        except ddb.exceptions.ConditionalCheckFailedException:
            outcomes[i] = "lost"

    threads = [threading.Thread(target=put, args=(i,)) for i in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return outcomes


def test_racing_conditional_puts_exactly_one_wins(client: Any, slow_condition_check: None) -> None:
    """Four writers race from the same version through a slowed condition check: one wins, three lose."""
    outcomes = _race(client, 4)
    assert sorted(outcomes) == ["lost", "lost", "lost", "won"]
    stored = client.get_item(TableName="race", Key={"k": {"S": "a"}}, ConsistentRead=True)["Item"]
    assert stored["w"]["N"] == str(outcomes.index("won"))


def test_serializing_is_idempotent() -> None:
    """A second call wraps nothing twice (each EmbeddedDynamo calls it)."""
    from moto.dynamodb.models import DynamoDBBackend

    embedded.serialize_moto_writes()
    before = {name: getattr(DynamoDBBackend, name) for name in embedded._MOTO_WRITES}
    embedded.serialize_moto_writes()
    assert before == {name: getattr(DynamoDBBackend, name) for name in embedded._MOTO_WRITES}
    assert all(getattr(method, "seo_sync_serialized", False) for method in before.values())
