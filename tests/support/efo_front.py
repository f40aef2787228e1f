"""An enhanced fan-out front for moto: SubscribeToShard and stream consumers where moto has neither.

moto serves Kinesis by polling but not SubscribeToShard, and its consumers neither refuse a second
registration of a name nor stop at AWS's 20 a stream. `EfoFront` is a loopback HTTP server that a
daemon takes as its AWS endpoint. It forwards every request to moto unchanged, except:

- RegisterStreamConsumer, DescribeStreamConsumer, ListStreamConsumers, DeregisterStreamConsumer: the
  front keeps the consumers itself, as AWS does (a name registered twice is ResourceInUseException,
  a 21st consumer of a stream LimitExceededException; a new consumer is CREATING for
  `consumer_creating` seconds, then ACTIVE).
- SubscribeToShard: answered here in the AWS event-stream framing (`eventstream_server.frame`), as a
  chunked HTTP/1.1 body that botocore's event-stream reader decodes chunk by chunk: an
  `initial-response`, then a SubscribeToShardEvent as soon as records arrive, each with the records,
  the ContinuationSequenceNumber and MillisBehindLatest, and at a closed shard's end one last event
  with no continuation and the ChildShards. The subscription ends after `lifetime` seconds (AWS: 5
  minutes; tests make it short so renewals happen), and AWS's refusal of a second subscription of the
  same consumer and shard within 5 seconds of the last one is answered as ResourceInUseException.
  AWS does not document how often an event comes while the shard is idle; the front sends an empty
  one every `idle_event` seconds, so a reader with a short read timeout stays connected.

One reader thread a shard tails moto with GetRecords every `poll` seconds into a list held in
memory, and at once when records are put through the front (a relay or writer that puts to the
front's endpoint), since AWS pushes a record as it arrives, not on a timer of its own. Every
subscription of that shard pushes from its own index in that list and sleeps on the shard's
Condition between records, so twenty subscribers cost one poller, not twenty.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import botocore.exceptions as bexc

from tests.support.eventstream_server import frame, kinesis_event, wire_record
from tests.support.moto_server import FAKE_CREDENTIALS

SUBSCRIBE = "Kinesis_20131202.SubscribeToShard"
CONSUMER_CALLS = ("RegisterStreamConsumer", "DescribeStreamConsumer", "ListStreamConsumers",
                  "DeregisterStreamConsumer")
MAX_CONSUMERS = 20  # registered consumers a stream (AWS; 50 in On-demand Advantage)
RESUBSCRIBE_SECONDS = 5.0  # AWS refuses a subscription of the same consumer and shard sooner than this
EVENT_RECORDS = 500  # records one pushed event carries at most
PUTS = ("PutRecord", "PutRecords")  # a writer putting through the front wakes the shards' readers
CLOSED_CHECK = 1.0  # seconds between looks at the listing for whether an idle shard was closed


class ApiError(Exception):
    """An AWS error answer: HTTP 400 with the JSON `__type`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Tail:
    """One shard of moto's stream as its reader thread has read it so far."""

    stream_arn: str
    shard_id: str
    records: list[dict[str, Any]] = field(default_factory=list)  # wire form, in sequence order
    seqs: list[int] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)
    closed: bool = False
    children: list[dict[str, Any]] = field(default_factory=list)
    caught_up: threading.Event = field(default_factory=threading.Event)  # read to moto's tip once
    wake: threading.Event = field(default_factory=threading.Event)  # a put passed through: read now
    cond: threading.Condition = field(default_factory=threading.Condition)

    def index(self, position: dict[str, Any]) -> tuple[int, int]:
        """Where a StartingPosition starts (the caller holds `cond`): an index in `records`, and the
        highest sequence number not to push (-1: none). The second matters for a position the reader
        has not reached yet (a daemon may have read a record from moto a moment before it did)."""
        kind = position.get("Type")
        if kind == "TRIM_HORIZON":
            return 0, -1
        if kind == "LATEST":
            return len(self.records), -1
        if kind == "AT_TIMESTAMP":
            when = float(position["Timestamp"])
            return next((i for i, t in enumerate(self.arrivals) if t >= when), len(self.records)), -1
        if kind in ("AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER"):
            floor = int(position["SequenceNumber"]) - (kind == "AT_SEQUENCE_NUMBER")
            return next((i for i, s in enumerate(self.seqs) if s > floor), len(self.records)), floor
        raise ApiError("InvalidArgumentException", f"StartingPosition Type {kind!r} is not one of AWS's five")


class EfoFront:
    """A threaded HTTP front for moto that adds enhanced fan-out (see the module docstring)."""

    def __init__(self, moto_endpoint: str, *, lifetime: float = 300.0, idle_event: float = 1.0,
                 poll: float = 0.05, consumer_creating: float = 0.0, region: str = "us-east-1") -> None:
        self.moto = moto_endpoint
        self.lifetime = lifetime
        self.idle_event = idle_event
        self.poll = poll
        self.consumer_creating = consumer_creating
        self.kinesis = boto3.client("kinesis", endpoint_url=moto_endpoint, region_name=region,
                                    aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                                    aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"])
        self.lock = threading.Lock()
        self.consumers: dict[str, dict[str, Any]] = {}  # consumer ARN -> its description and creation time
        self.subscribed_at: dict[tuple[str, str], float] = {}
        self.tails: dict[tuple[str, str], Tail] = {}
        self.subscriptions = 0  # accepted
        self.refused = 0  # ResourceInUseException: too soon after the last of the same consumer and shard
        self.ended = 0  # subscriptions that ran their lifetime to the end
        self.active = 0
        self.pushed = 0  # records written to subscribers, all subscriptions together
        self.stop = threading.Event()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="efo-front", daemon=True)

    def __enter__(self) -> EfoFront:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for tail in list(self.tails.values()):
            with tail.cond:
                tail.cond.notify_all()
        self.httpd.shutdown()
        self.httpd.server_close()

    def stats(self) -> dict[str, int]:
        """Subscriptions accepted, refused, ended by their lifetime, open now; records pushed; consumers."""
        with self.lock:
            return {"subscriptions": self.subscriptions, "refused": self.refused, "ended": self.ended,
                    "active": self.active, "pushed": self.pushed, "consumers": len(self.consumers)}

    # -- HTTP ------------------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        front = self
        upstream = threading.local()  # one kept-alive connection to moto per serving thread

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers, body and each event go out as separate writes: without TCP_NODELAY the second
            # small write of an answer waits for the peer's delayed ACK (tens of ms on loopback).
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                target = self.headers.get("x-amz-target", "")
                action = target.rpartition(".")[2] if target.startswith("Kinesis_") else ""
                try:
                    if target == SUBSCRIBE:
                        front.subscribe(self, json.loads(body or b"{}"))
                    elif action in CONSUMER_CALLS:
                        self.answer(200, front.consumer_call(action, json.loads(body or b"{}")))
                    else:
                        self.forward(body)
                        if action in PUTS:
                            front.wake_tails()
                except ApiError as e:
                    self.answer(400, {"__type": e.code, "message": str(e)})
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the subscriber went away (a daemon killed -9)

            do_GET = do_POST  # moto's other endpoints, forwarded alike

            def answer(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/x-amz-json-1.1")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def forward(self, body: bytes) -> None:
                conn = getattr(upstream, "conn", None)
                for attempt in (0, 1):  # a kept-alive connection moto closed meanwhile is opened again
                    if conn is None:
                        host, _, port = front.moto.rpartition("/")[2].partition(":")
                        conn = upstream.conn = http.client.HTTPConnection(host, int(port), timeout=30)
                    try:
                        conn.request(self.command, self.path, body, dict(self.headers.items()))
                        resp = conn.getresponse()
                        data = resp.read()
                        break
                    except (http.client.HTTPException, OSError):
                        conn.close()
                        conn = upstream.conn = None
                        if attempt:
                            raise
                self.send_response(resp.status)
                for name, value in resp.getheaders():
                    if name.lower() not in ("content-length", "transfer-encoding", "connection", "date", "server"):
                        self.send_header(name, value)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                return

        return Handler

    # -- consumers -------------------------------------------------------------------------------

    def _describe(self, c: dict[str, Any]) -> dict[str, Any]:
        status = "ACTIVE" if time.monotonic() - c["created"] >= self.consumer_creating else "CREATING"
        return {"ConsumerName": c["name"], "ConsumerARN": c["arn"], "ConsumerStatus": status,
                "ConsumerCreationTimestamp": c["epoch"], "StreamARN": c["stream"]}

    def _find(self, body: dict[str, Any]) -> dict[str, Any]:
        for c in self.consumers.values():
            if c["arn"] == body.get("ConsumerARN") or (c["stream"] == body.get("StreamARN")
                                                        and c["name"] == body.get("ConsumerName")):
                return c
        raise ApiError("ResourceNotFoundException", f"Consumer {body.get('ConsumerName') or body.get('ConsumerARN')}"
                                                    " not found")

    def consumer_call(self, action: str, body: dict[str, Any]) -> dict[str, Any]:
        """The four consumer calls, as AWS answers them."""
        with self.lock:
            if action == "DescribeStreamConsumer":
                return {"ConsumerDescription": self._describe(self._find(body))}
            stream = body.get("StreamARN")
            mine = [c for c in self.consumers.values() if c["stream"] == stream]
            if action == "ListStreamConsumers":
                return {"Consumers": [self._describe(c) for c in mine]}
            if action == "DeregisterStreamConsumer":
                del self.consumers[self._find(body)["arn"]]
                return {}
            name = str(body["ConsumerName"])
            if any(c["name"] == name for c in mine):
                raise ApiError("ResourceInUseException", f"Consumer {name} under stream {stream} already exists")
            if len(mine) >= MAX_CONSUMERS:
                raise ApiError("LimitExceededException", f"Stream {stream} has {len(mine)} registered consumers, "
                                                         f"the maximum of {MAX_CONSUMERS}")
            epoch = time.time()
            arn = f"{stream}/consumer/{name}:{int(epoch)}"
            self.consumers[arn] = {"name": name, "arn": arn, "stream": stream, "epoch": epoch,
                                   "created": time.monotonic()}
            return {"Consumer": self._describe(self.consumers[arn])}

    # -- subscriptions ---------------------------------------------------------------------------

    def subscribe(self, handler: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        """Answer one SubscribeToShard: refused, or an event stream until its lifetime ends."""
        consumer_arn, shard_id = str(body.get("ConsumerARN")), str(body.get("ShardId"))
        now = time.monotonic()
        with self.lock:
            consumer = self.consumers.get(consumer_arn)
            if consumer is None:
                raise ApiError("ResourceNotFoundException", f"Consumer {consumer_arn} not found")
            if self._describe(consumer)["ConsumerStatus"] != "ACTIVE":
                raise ApiError("ResourceInUseException", f"Consumer {consumer_arn} is not ACTIVE")
            last = self.subscribed_at.get((consumer_arn, shard_id))
            if last is not None and now - last < RESUBSCRIBE_SECONDS:
                self.refused += 1
                raise ApiError("ResourceInUseException", f"Another active subscription exists for {shard_id} of "
                                                         f"{consumer_arn}, or one ended less than 5 s ago")
            self.subscribed_at[(consumer_arn, shard_id)] = now
        tail = self._tail(consumer["stream"], shard_id)
        if not tail.caught_up.wait(10):
            raise ApiError("ResourceNotFoundException", f"Shard {shard_id} of {consumer['stream']} could not be read")
        with tail.cond:
            pos, floor = tail.index(body.get("StartingPosition") or {})
            # Where the continuation stands before any record is pushed: just before `pos`, or the
            # asked sequence number when the reader has not reached it yet.
            read = int(tail.records[pos - 1]["SequenceNumber"]) if pos else -1
            before = str(max(read, floor)) if max(read, floor) >= 0 else ""
        handler.send_response(200)
        handler.send_header("content-type", "application/vnd.amazon.eventstream")
        handler.send_header("transfer-encoding", "chunked")
        handler.end_headers()
        with self.lock:
            self.subscriptions += 1
            self.active += 1
        try:
            self._push(handler, tail, pos, floor, now + self.lifetime, before)
        finally:
            with self.lock:
                self.active -= 1

    def _push(self, handler: BaseHTTPRequestHandler, tail: Tail, pos: int, floor: int, ends: float,
              last_seq: str) -> None:
        """Write events from `pos` of the shard until the subscription's end (or the shard's)."""
        def chunk(data: bytes) -> None:
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            handler.wfile.flush()

        chunk(frame("initial-response", {}))
        sent = time.monotonic()
        while not self.stop.is_set():
            now = time.monotonic()
            if now >= ends:
                with self.lock:
                    self.ended += 1
                break
            with tail.cond:
                if pos >= len(tail.records) and not tail.closed:
                    tail.cond.wait(max(0.0, min(ends, sent + self.idle_event) - now))
                while pos < len(tail.seqs) and tail.seqs[pos] <= floor:
                    pos += 1
                batch = tail.records[pos:pos + EVENT_RECORDS]
                at_end = tail.closed and pos + len(batch) >= len(tail.records)
                newest = tail.arrivals[-1] if tail.arrivals else 0.0
                children = list(tail.children)
            if not batch and not at_end and time.monotonic() - sent < self.idle_event:
                continue
            pos += len(batch)
            if batch:
                last_seq = batch[-1]["SequenceNumber"]
            behind = 0 if not batch or pos >= len(tail.records) else int(max(0.0, newest - batch[-1]
                                                                                ["ApproximateArrivalTimestamp"]) * 1000)
            event = kinesis_event([], None if at_end else (last_seq or "0"), wired=batch, behind_ms=behind)
            if at_end:
                event["ChildShards"] = children
            chunk(frame("SubscribeToShardEvent", event))
            sent = time.monotonic()
            with self.lock:
                self.pushed += len(batch)
            if at_end:
                break
        handler.wfile.write(b"0\r\n\r\n")
        handler.wfile.flush()

    def wake_tails(self) -> None:
        """Records were put through the front: every shard's reader reads moto now instead of at its
        next tick, as AWS pushes a record when it arrives rather than on a timer of its own."""
        with self.lock:
            tails = list(self.tails.values())
        for tail in tails:
            tail.wake.set()

    def _tail(self, stream_arn: str, shard_id: str) -> Tail:
        """The shard's tail, its reader thread started on first use."""
        with self.lock:
            tail = self.tails.get((stream_arn, shard_id))
            if tail is None:
                tail = self.tails[(stream_arn, shard_id)] = Tail(stream_arn, shard_id)
                tail.wake.set()  # the first read comes at once, not a tick later
                threading.Thread(target=self._read, args=(tail,), name=f"efo-tail-{shard_id}", daemon=True).start()
        return tail

    def _read(self, tail: Tail) -> None:
        """Tail the shard on moto with GetRecords into memory, waking every subscription on new records."""
        iterator: str | None = None
        listed = 0.0
        while not self.stop.is_set():
            tail.wake.wait(self.poll)
            tail.wake.clear()
            try:
                if iterator is None:
                    kw: dict[str, Any] = {"StreamARN": tail.stream_arn, "ShardId": tail.shard_id}
                    if tail.seqs:
                        kw.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=str(tail.seqs[-1]))
                    else:
                        kw.update(ShardIteratorType="TRIM_HORIZON")
                    iterator = self.kinesis.get_shard_iterator(**kw)["ShardIterator"]
                resp = self.kinesis.get_records(ShardIterator=iterator, Limit=10000, StreamARN=tail.stream_arn)
            except (bexc.BotoCoreError, bexc.ClientError):
                iterator = None  # moto restarted or the iterator is gone: start again after the last record
                continue
            iterator = resp.get("NextShardIterator")
            records = resp.get("Records", [])
            if not records and iterator is not None and time.monotonic() - listed >= CLOSED_CHECK:
                # moto gives a closed shard's reader a next iterator forever (AWS gives none at its
                # end); its listing does show the shard's EndingSequenceNumber, so look there.
                listed = time.monotonic()
                if self._is_closed(tail):
                    iterator = None
            children = self._children(tail) if iterator is None else []
            with tail.cond:
                for r in records:
                    arrival = r["ApproximateArrivalTimestamp"]
                    when = arrival.timestamp() if isinstance(arrival, datetime) else float(arrival)
                    tail.records.append(wire_record(r["SequenceNumber"], r["Data"], r["PartitionKey"], when))
                    tail.seqs.append(int(r["SequenceNumber"]))
                    tail.arrivals.append(when)
                if iterator is None:
                    tail.closed, tail.children = True, children
                if records or iterator is None:
                    tail.cond.notify_all()
            if resp.get("MillisBehindLatest", 0) == 0 or not records:
                tail.caught_up.set()
            if iterator is None:
                return

    def _is_closed(self, tail: Tail) -> bool:
        shards = self.kinesis.list_shards(StreamARN=tail.stream_arn).get("Shards", [])
        return any(s["ShardId"] == tail.shard_id and "EndingSequenceNumber" in s.get("SequenceNumberRange", {})
                   for s in shards)

    def _children(self, tail: Tail) -> list[dict[str, Any]]:
        """The shards made from this closed one, as ChildShards: from ListShards, which names the parents."""
        shards = self.kinesis.list_shards(StreamARN=tail.stream_arn).get("Shards", [])
        return [{"ShardId": s["ShardId"], "HashKeyRange": s["HashKeyRange"],
                 "ParentShards": [p for p in (s.get("ParentShardId"), s.get("AdjacentParentShardId")) if p]}
                for s in shards if tail.shard_id in (s.get("ParentShardId"), s.get("AdjacentParentShardId"))]
