"""Kinesis enhanced fan-out (EFO): this host's registered consumer and a pushed subscription per shard.

With EFO each registered consumer of a stream (20 a stream, 50 in On-demand Advantage) gets its own
2 MiB/s a shard, pushed in about 70 ms, instead of sharing 5 GetRecords calls a second a shard with
every other host. `ensure_consumer` registers this host's consumer at start: it asks first (most
starts find it registered), waits a random moment before registering (a fleet restarting together
must stay under AWS's limits: RegisterStreamConsumer takes 5 calls a second per account, and at most
5 consumers may be CREATING at once), and waits until the consumer is ACTIVE.

`EfoFeed` is the polling feed (`kinesis.py`) whose pages come, where it can, from one
SubscribeToShard subscription a shard (boto3 decodes its event stream). A subscription ends after
5 minutes; it is renewed from the last position it delivered, and AWS refuses a second subscription
of the same consumer and shard within 5 seconds of a successful one (ResourceInUseException: the
shard backs off and tries again). At a shard's end the last event has no continuation and names the
ChildShards. A call takes the next event and every event already received behind it (a shard
pushes as records arrive, often faster than a host polls). The events are kept as pages, so every
table of a shared stream is served from the one subscription; a position the subscription has not
covered (a table behind it after a restart) is read by polling until it catches up.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import structlog

from seo_sync.aws.kinesis import FetchedPage, KinesisApi, KinesisFeed, after_seq, parse_position
from seo_sync.aws.kinesis_records import unwrap
from seo_sync.aws.session import CAUGHT, ErrorContext
from seo_sync.aws.shapes import RecordsPage
from seo_sync.errors import SourceError, SourceThrottled

log = structlog.get_logger()
SUBSCRIPTION_SECONDS = 300.0  # AWS ends a subscription after 5 minutes
REGISTER_JITTER = 3.0  # seconds: the widest random wait before registering a consumer
ACTIVE_TIMEOUT = 120.0  # seconds a new consumer may take to become ACTIVE
BUFFERED = 0.02  # seconds: an event read sooner was already received (the reader is behind the push)
PUSHED = "pushed"  # in a position handed on from a subscription's page, where an iterator would be


class EfoApi(KinesisApi, Protocol):
    """The enhanced fan-out calls seo-sync makes on boto3's `kinesis` client, beside the polling ones."""

    def describe_stream_consumer(self, *, StreamARN: str, ConsumerName: str) -> Any:
        """DescribeStreamConsumer."""

    def register_stream_consumer(self, *, StreamARN: str, ConsumerName: str) -> Any:
        """RegisterStreamConsumer."""

    def subscribe_to_shard(self, *, ConsumerARN: str, ShardId: str, StartingPosition: dict[str, Any]) -> Any:
        """SubscribeToShard: {"EventStream": an iterable of {"SubscribeToShardEvent": {...}}}."""


def _code(e: Exception) -> str:
    return str((getattr(e, "response", None) or {}).get("Error", {}).get("Code", ""))


def ensure_consumer(client: EfoApi, ctx: ErrorContext, stream_arn: str, name: str, *,
                    rng: Callable[[], float] = random.random, sleep: Callable[[float], None] = time.sleep,
                    clock: Callable[[], float] = time.monotonic) -> str:
    """This host's consumer of `stream_arn`, registered if it is not, once ACTIVE; its ARN."""
    deadline = clock() + ACTIVE_TIMEOUT
    registered = False
    while True:
        try:
            desc = client.describe_stream_consumer(StreamARN=stream_arn, ConsumerName=name)["ConsumerDescription"]
        except CAUGHT as e:
            if _code(e) not in ("ResourceNotFoundException", "LimitExceededException"):
                raise ctx.translate(e, "DescribeStreamConsumer") from None
            desc = None
        if desc is not None and desc.get("ConsumerStatus") == "ACTIVE":
            return str(desc["ConsumerARN"])
        if desc is not None and desc.get("ConsumerStatus") == "DELETING":
            raise SourceError(f"consumer {name} of {stream_arn} is being deregistered",
                              hint="wait for it to go, then start again (or set kinesis.consumer_name)")
        if clock() > deadline:
            raise SourceError(f"consumer {name} of {stream_arn} did not become ACTIVE in {ACTIVE_TIMEOUT:.0f}s",
                              hint="see `seo-sync kinesis consumers`; AWS allows 5 consumers CREATING at once")
        if desc is None and not registered:
            sleep(rng() * REGISTER_JITTER)
            registered = _register(client, ctx, stream_arn, name)
        sleep(0.5 + rng())


def _register(client: EfoApi, ctx: ErrorContext, stream_arn: str, name: str) -> bool:
    """RegisterStreamConsumer; False when AWS asked to slow down (the caller tries again)."""
    try:
        client.register_stream_consumer(StreamARN=stream_arn, ConsumerName=name)
        log.info("kinesis_consumer_registered", stream=stream_arn, consumer=name)
        return True
    except CAUGHT as e:
        code, text = _code(e), str(e)
        if code == "ResourceInUseException":
            return True  # another start of this host registered it meanwhile
        if code == "LimitExceededException" and "consumer" in text.lower() and "rate" not in text.lower():
            raise SourceError(f"{stream_arn} has as many registered consumers as AWS allows (20, or 50 in "
                              "On-demand Advantage)",
                              hint="deregister decommissioned hosts with `seo-sync kinesis consumers "
                                   "--deregister NAME`, or use polling mode") from None
        if code == "LimitExceededException":
            return False
        raise ctx.translate(e, "RegisterStreamConsumer") from None


class Subscription:
    """One SubscribeToShard: its events, the position it has reached, and when it must be renewed."""

    def __init__(self, events: Iterator[dict[str, Any]], start_key: str, started: float) -> None:
        self.events = events
        self.key = start_key
        self.started = started
        self.ended = False


class EfoFeed(KinesisFeed):
    """The change feed by enhanced fan-out: one pushed subscription a shard, polling for stragglers."""

    def __init__(self, client: EfoApi, context: ErrorContext, prefix: str, consumer_for: Callable[[str], str], *,
                 min_interval: float = 1.0, clock: Callable[[], float] = time.monotonic,
                 max_lateness: float = 2.0) -> None:
        super().__init__(client, context, prefix, min_interval=min_interval, clock=clock, max_lateness=max_lateness)
        self.efo = client
        self.consumer_for = consumer_for  # stream ARN -> this host's consumer ARN (registered on first use)
        self.consumer_arns: dict[str, str] = {}
        self.subscriptions: dict[tuple[str, str], Subscription] = {}
        self.renewals = 0
        self.refused = 0  # subscriptions AWS refused as too soon after the last (ResourceInUseException)

    def get_records(self, iterator: str, limit: int = 1000, table: str | None = None) -> RecordsPage:
        """One page from the shard's subscription (opened or renewed as needed), else by polling."""
        arn, shard_id, key, real = parse_position(iterator)
        with self._shard_lock(arn, shard_id):
            if self._shared_page(arn, shard_id, key)[0] is None:
                self._pull(arn, shard_id, key, table, limit)
            served = self._shared_page(arn, shard_id, key)[0] is not None
        if not served and real == PUSHED:
            # A position the subscription handed on but no longer covers: poll from it.
            iterator = self.shard_iterator(arn, shard_id, "AFTER_SEQUENCE_NUMBER", key[6:], table)
        return super().get_records(iterator, limit, table)

    def _pull(self, arn: str, shard_id: str, key: str, table: str | None, limit: int = 1000) -> None:
        """Read one event of the shard's subscription into the pages, subscribing at `key` if none is open."""
        sub = self.subscriptions.get((arn, shard_id))
        if sub is not None and (sub.ended or self.clock() - sub.started >= SUBSCRIPTION_SECONDS):
            key = sub.key if not sub.ended or sub.key else key
            del self.subscriptions[(arn, shard_id)]
            self.renewals += 1
            sub = None
        if sub is None:
            if after_seq(key) is None:
                return  # a first position (LATEST, TRIM_HORIZON): polling takes it to a sequence number
            sub = self._subscribe(arn, shard_id, key, table)
            self.subscriptions[(arn, shard_id)] = sub
        elif sub.key != key and self._shared_page(arn, shard_id, key)[0] is None:
            return  # this table is elsewhere in the shard: polling serves it
        events = self._drain(sub, limit, table)
        if not events:
            return
        event = events[-1]
        records = [unwrap(r) for e in events for r in e.get("Records", [])]
        end = int(records[-1][1]["dynamodb"]["SequenceNumber"]) if records else None
        cont = event.get("ContinuationSequenceNumber")
        page = FetchedPage(sub.key, after_seq(sub.key), records, end, None if cont is None else PUSHED,
                           self.clock(), event.get("MillisBehindLatest"))
        self._pages.setdefault((arn, shard_id), []).append(page)
        if end is not None:
            sub.key = f"after:{end}"
        if cont is None:
            sub.ended = True
            log.info("kinesis_shard_end", shard=shard_id, children=[c.get("ShardId") for c in
                                                                    event.get("ChildShards", [])])
        shown = self.shards.setdefault(shard_id, {"calls": 0})
        shown.update(behind_latest_ms=page.behind_ms, subscription_renewals=self.renewals)

    def _fetch(self, arn: str, shard_id: str, key: str, real: str, limit: int, table: str | None) -> FetchedPage:
        """One GetRecords call; a position a subscription handed on has no iterator, so it takes one first.
        (get_records turns such a position into an iterator when no page serves it, but a page can age
        out between that check and the polling feed's own, and a position told "too soon" may be read
        later for another table: either way GetRecords would be sent "pushed", which AWS refuses as
        an invalid iterator, and a refused position costs the table a full sync.)"""
        if real == PUSHED:
            real = parse_position(self.shard_iterator(arn, shard_id, "AFTER_SEQUENCE_NUMBER", key[6:], table))[3]
        return super()._fetch(arn, shard_id, key, real, limit, table)

    def _drain(self, sub: Subscription, limit: int, table: str | None) -> list[dict[str, Any]]:
        """The next event of the subscription (waiting for it), and every event already received
        behind it: a shard pushes as records arrive, often many small events between two calls, and
        one event a call would fall further behind at every call. Reading stops at an event that had
        to be waited for (the reader is caught up), an empty one, the shard's end, or `limit` records."""
        events: list[dict[str, Any]] = []
        count = 0
        while count < limit:
            began = self.clock()
            try:
                wrapper = next(sub.events)
            except StopIteration:
                sub.ended = True
                break
            except CAUGHT as e:
                sub.ended = True
                if events:
                    break  # keep what arrived; the renewal meets the error again if it lasts
                raise self._translate(e, "SubscribeToShard", table) from None
            event = wrapper.get("SubscribeToShardEvent")
            if event is None:
                if events:
                    continue
                break
            events.append(event)
            count += len(event.get("Records", []))
            if (not event.get("Records") or event.get("ContinuationSequenceNumber") is None
                    or self.clock() - began > BUFFERED):
                break
        return events

    def _subscribe(self, arn: str, shard_id: str, key: str, table: str | None) -> Subscription:
        if arn not in self.consumer_arns:
            self.consumer_arns[arn] = self.consumer_for(arn)
        consumer = self.consumer_arns[arn]
        position = {"Type": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": key[6:]}
        try:
            resp = self.efo.subscribe_to_shard(ConsumerARN=consumer, ShardId=shard_id, StartingPosition=position)
        except CAUGHT as e:
            if _code(e) == "ResourceInUseException":
                self.refused += 1
                raise SourceThrottled(f"SubscribeToShard {shard_id}: the last subscription ended under 5 s ago",
                                      hint="retrying shortly") from None
            raise self._translate(e, "SubscribeToShard", table) from None
        log.info("kinesis_subscribed", shard=shard_id, after=key[6:])
        return Subscription(iter(resp["EventStream"]), key, self.clock())

    def status(self) -> dict[str, Any]:
        """The polling feed's status, in EFO mode, with subscription renewals and refusals."""
        out = super().status()
        out.update(mode="efo", consumers=dict(self.consumer_arns), subscriptions=len(self.subscriptions),
                   renewals=self.renewals, refused=self.refused)
        return out
