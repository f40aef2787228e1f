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
ChildShards. The events are kept as pages, so every table of a shared stream is served from the one
subscription; a position the subscription has not covered (a table behind it after a restart) is
read by polling until it catches up.

Pushed, not polled: each subscription is read on a thread of its own, which queues every event as
it comes and wakes whoever waits in `wait_pushed`. A poller waits there, not on a timer: a record
is handed on as soon as it is pushed, and a table at the subscription's tip is answered from
memory (nothing new, the same position) without a GetRecords call. `read_on_threads=False` reads
the subscription on the caller's thread instead, when asked: only for an event stream that never
blocks (the in-process fake that runs on its own clock).
"""

from __future__ import annotations

import queue
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import structlog

from seo_sync.aws.kinesis import FetchedPage, KinesisApi, KinesisFeed, after_seq, parse_position
from seo_sync.aws.kinesis_records import unwrap
from seo_sync.aws.session import CAUGHT, ErrorContext
from seo_sync.errors import SourceError, SourceThrottled
from seo_sync.feed import RecordsPage

log = structlog.get_logger()
SUBSCRIPTION_SECONDS = 300.0  # AWS ends a subscription after 5 minutes
REGISTER_JITTER = 3.0  # seconds: the widest random wait before registering a consumer
ACTIVE_TIMEOUT = 120.0  # seconds a new consumer may take to become ACTIVE
BUFFERED = 0.02  # seconds: an event read sooner was already received (the reader is behind the push)
PUSHED = "pushed"  # in a position handed on from a subscription's page, where an iterator would be
STOP_LOOK = 0.1  # seconds: the longest a wait for a push goes without looking at the stop event
ENDED = object()  # queued by a subscription's reader after its last event


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

    def __init__(self, events: Iterator[dict[str, Any]], start_key: str, started: float, stream: Any = None) -> None:
        self.events = events
        self.stream = stream  # what SubscribeToShard returned, closed when the feed lets go of it early
        self.key = start_key
        self.started = started
        self.ended = False
        self.heard_at = started  # clock() when its last event was taken
        self.behind_ms: int | None = None  # MillisBehindLatest of its last event
        # What its reader thread received and nobody took yet: events, then ENDED or the error that ended it.
        self.inbox: queue.Queue[Any] = queue.Queue()

    def close(self) -> None:
        """Let go of the event stream (its reader thread ends when the stream does)."""
        close = getattr(self.stream, "close", None)
        if callable(close):
            try:
                close()
            except Exception as e:  # closing a connection already gone is not an error of ours
                log.debug("kinesis_subscription_close_failed", error=str(e)[:160])


def _read_events(sub: Subscription, shard: tuple[str, str], pushed: Callable[[tuple[str, str]], None]) -> None:
    """A subscription's reader thread: queue every event as it is pushed, then ENDED or the error that
    ended the stream (the feed raises it to the next caller), waking the waiters each time."""
    try:
        for wrapper in sub.events:
            sub.inbox.put(wrapper)
            pushed(shard)
        sub.inbox.put(ENDED)
    except BaseException as e:
        sub.inbox.put(e)
    pushed(shard)


class EfoFeed(KinesisFeed):
    """The change feed by enhanced fan-out: one pushed subscription a shard, polling for stragglers."""

    def __init__(self, client: EfoApi, context: ErrorContext, prefix: str, consumer_for: Callable[[str], str], *,
                 min_interval: float = 1.0, clock: Callable[[], float] = time.monotonic,
                 max_lateness: float = 2.0, read_on_threads: bool = True) -> None:
        super().__init__(client, context, prefix, min_interval=min_interval, clock=clock, max_lateness=max_lateness)
        self.efo = client
        self.read_on_threads = read_on_threads
        self._pushed = threading.Condition()
        self._push_counts: dict[tuple[str, str], int] = {}  # events received a shard, all subscriptions together
        self.consumer_for = consumer_for  # stream ARN -> this host's consumer ARN (registered on first use)
        self.consumer_arns: dict[str, str] = {}
        self.subscriptions: dict[tuple[str, str], Subscription] = {}
        self.renewals = 0
        self.refused = 0  # subscriptions AWS refused as too soon after the last (ResourceInUseException)

    def get_records(self, iterator: str, limit: int = 1000, table: str | None = None) -> RecordsPage:
        """One page from the shard's subscription (opened or renewed as needed), else by polling. A
        position at the subscription's tip with nothing pushed since gets no records and stays where
        it is: what comes next is pushed, so nothing is polled for it."""
        arn, shard_id, key, real = parse_position(iterator)
        with self._shard_lock(arn, shard_id):
            sub = None
            if self.read_on_threads or self._shared_page(arn, shard_id, key)[0] is None:
                sub = self._pull(arn, shard_id, key, table, limit)
            served = self._shared_page(arn, shard_id, key)[0] is not None
            if not served and sub is not None and not sub.ended and sub.key == key:
                return RecordsPage([], iterator, sub.behind_ms, age=max(0.0, self.clock() - sub.heard_at))
        if not served and real == PUSHED:
            # A position the subscription handed on but no longer covers: poll from it.
            iterator = self.shard_iterator(arn, shard_id, "AFTER_SEQUENCE_NUMBER", key[6:], table)
        return super().get_records(iterator, limit, table)

    def wait_pushed(self, arn: str, seen: dict[str, int], timeout: float, stop: threading.Event) -> dict[str, int]:
        """Wait up to `timeout` seconds until a subscription of `arn` receives an event past `seen`
        (shard id -> events received, as this call returned it last time), or `stop` is set; the
        counts now. Read on the caller's thread, nothing is pushed meanwhile: it just waits."""
        if not self.read_on_threads:
            stop.wait(timeout)
            return {}
        deadline = time.monotonic() + timeout
        with self._pushed:
            while True:
                counts = {sid: n for (a, sid), n in self._push_counts.items() if a == arn}
                left = deadline - time.monotonic()
                if left <= 0 or stop.is_set() or any(seen.get(sid) != n for sid, n in counts.items()):
                    return counts
                self._pushed.wait(min(left, STOP_LOOK))

    def _on_push(self, shard: tuple[str, str]) -> None:
        with self._pushed:
            self._push_counts[shard] = self._push_counts.get(shard, 0) + 1
            self._pushed.notify_all()

    def _pull(self, arn: str, shard_id: str, key: str, table: str | None, limit: int = 1000) -> Subscription | None:
        """Take what the shard's subscription received into the pages, subscribing at `key` if none is
        open and no page serves `key`; the open subscription (None: none, this position is polled)."""
        sub = self.subscriptions.get((arn, shard_id))
        if sub is not None and self.read_on_threads:
            self._take(arn, shard_id, sub, limit, table)
        if sub is not None and (sub.ended or self.clock() - sub.started >= SUBSCRIPTION_SECONDS):
            if self._shared_page(arn, shard_id, key)[0] is not None:
                return sub  # served from what it delivered; renewed when a position needs more
            key = sub.key if not sub.ended or sub.key else key
            del self.subscriptions[(arn, shard_id)]
            sub.close()
            self.renewals += 1
            sub = None
        if sub is None:
            if after_seq(key) is None:
                return None  # a first position (LATEST, TRIM_HORIZON): polling takes it to a sequence number
            sub = self._subscribe(arn, shard_id, key, table)
            self.subscriptions[(arn, shard_id)] = sub
        elif self.read_on_threads or (sub.key != key and self._shared_page(arn, shard_id, key)[0] is None):
            return sub  # already taken; or elsewhere in the shard, where polling serves it (reading here would wait)
        if not self.read_on_threads:
            self._take(arn, shard_id, sub, limit, table)
        return sub

    def _take(self, arn: str, shard_id: str, sub: Subscription, limit: int, table: str | None) -> None:
        """Turn the subscription's events into pages: every event its reader thread queued, or (read on
        this thread) the next one and those already received behind it."""
        while not sub.ended:
            events = self._drain(sub, limit, table)
            if not events:
                return
            self._add_page(arn, shard_id, sub, events)
            if not self.read_on_threads:
                return

    def _add_page(self, arn: str, shard_id: str, sub: Subscription, events: list[dict[str, Any]]) -> None:
        """Keep events taken from a subscription as one page, and move the subscription past them."""
        event = events[-1]
        sub.heard_at, sub.behind_ms = self.clock(), event.get("MillisBehindLatest")
        records = [unwrap(r) for e in events for r in e.get("Records", [])]
        end = int(records[-1][1]["dynamodb"]["SequenceNumber"]) if records else None
        cont = event.get("ContinuationSequenceNumber")
        shown = self.shards.setdefault(shard_id, {"calls": 0})
        shown.update(behind_latest_ms=sub.behind_ms, subscription_renewals=self.renewals)
        if not records and cont is not None:
            return  # nothing new: a table at the tip is answered from the subscription itself
        page = FetchedPage(sub.key, after_seq(sub.key), records, end, None if cont is None else PUSHED,
                           sub.heard_at, sub.behind_ms)
        self._pages.setdefault((arn, shard_id), []).append(page)
        if end is not None:
            sub.key = f"after:{end}"
        if cont is None:
            sub.ended = True
            log.info("kinesis_shard_end", shard=shard_id, children=[c.get("ShardId") for c in
                                                                    event.get("ChildShards", [])])

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
        """Events of the subscription up to `limit` records: those its reader thread queued, or, read
        on this thread, the next one (waiting for it) and every one already received behind it.
        Reading stops at an empty event, the shard's end, `limit` records, or (on this thread) an
        event that had to be waited for (the reader is caught up)."""
        events: list[dict[str, Any]] = []
        count = 0
        while count < limit:
            began = self.clock()
            try:
                wrapper = self._next_event(sub)
            except StopIteration:
                sub.ended = True
                break
            except queue.Empty:
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
            if not event.get("Records") or event.get("ContinuationSequenceNumber") is None:
                break
            if not self.read_on_threads and self.clock() - began > BUFFERED:
                break
        return events

    def _next_event(self, sub: Subscription) -> dict[str, Any]:
        """The subscription's next event: from its reader thread's queue (queue.Empty when none is
        there yet), or read here. StopIteration at the end of the stream; the stream's error raised."""
        if not self.read_on_threads:
            return next(sub.events)
        item = sub.inbox.get_nowait()
        if item is ENDED:
            raise StopIteration
        if isinstance(item, BaseException):
            sub.ended = True  # whatever the error, the next call subscribes again
            raise item
        return dict(item)

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
        sub = Subscription(iter(resp["EventStream"]), key, self.clock(), resp["EventStream"])
        if self.read_on_threads:
            threading.Thread(target=_read_events, args=(sub, (arn, shard_id), self._on_push),
                             name=f"efo-{shard_id}", daemon=True).start()
        return sub

    def status(self) -> dict[str, Any]:
        """The polling feed's status, in EFO mode, with subscription renewals and refusals."""
        out = super().status()
        out.update(mode="efo", consumers=dict(self.consumer_arns), subscriptions=len(self.subscriptions),
                   renewals=self.renewals, refused=self.refused)
        return out
