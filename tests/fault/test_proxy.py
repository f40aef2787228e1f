"""The TCP fault proxy in front of moto's server: passes, injects each fault, and recovers."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from seo_sync import codec
from seo_sync.aws.tables import Source
from seo_sync.errors import IncompleteAnswer, SourceUnavailable
from seo_sync.schema import TABLES
from tests.support.proxy import FaultProxy, _cut_answer, parse_command
from tests.support.settings import make_settings

pytestmark = pytest.mark.timeout(60)

SPEC = TABLES["businesses"]
CONNECT_TIMEOUT, READ_TIMEOUT, ATTEMPTS = 1.0, 1.0, 1
# session.client_config passes aws.max_attempts as botocore's retries["max_attempts"], which counts
# retries AFTER the first call (botocore/config.py; `total_max_attempts` counts all): a call makes
# ATTEMPTS or ATTEMPTS + 1 requests depending on which one source.py uses.
REQUESTS = (ATTEMPTS, ATTEMPTS + 1)
# Worst case of one call under a fault: every request waits out both timeouts, plus botocore's
# standard-mode backoff (< 1 s, then < 2 s) and generous room for a loaded CI box. This checks that
# the configured timeouts bound a call (botocore's default would be 60 s a request); not a speed test.
CALL_BOUND = max(REQUESTS) * (CONNECT_TIMEOUT + READ_TIMEOUT) + 3.0 + 5.0


@pytest.fixture
def proxy(dynamo_endpoint):
    """A fault proxy in front of a clean moto server holding the businesses table with one item."""
    direct = Source(make_settings_for(dynamo_endpoint).aws, "seo_")
    direct.create_table(SPEC)
    direct.put_item(SPEC, codec.item_from_python({"business_id": "acme", "name": "Acme", "_version": 1}))
    with FaultProxy(dynamo_endpoint) as p:
        yield p


def make_settings_for(endpoint, read_timeout=READ_TIMEOUT, attempts=ATTEMPTS):
    """Settings with tight timeouts so a fault surfaces in seconds."""
    return make_settings(Path("/nonexistent"), endpoint,
                         aws={"endpoint_url": endpoint, "region": "us-east-1", "connect_timeout": CONNECT_TIMEOUT,
                              "read_timeout": read_timeout, "max_attempts": attempts})


@pytest.fixture
def source(proxy):
    """A Source that reaches moto only through the proxy."""
    return Source(make_settings_for(proxy.endpoint).aws, "seo_")


def test_pass_mode_forwards_table_item_and_stream_calls(proxy, source):
    """In pass mode DescribeTable, GetItem and DescribeStream work through the proxy and nothing is injected."""
    info = source.describe_table(SPEC)
    assert source.get_item(SPEC, ("acme",))["name"] == {"S": "Acme"}
    assert source.streams.describe_stream(info.stream_arn).shards
    stats = proxy.stats()
    assert stats["requests"] >= 3 and stats["bytes_down"] > 0
    assert proxy.faults() == 0


@pytest.mark.parametrize("mode", ["reset", "drop", "blackhole"])
def test_fault_mode_fails_calls_within_the_timeouts_and_lifting_it_recovers(proxy, source, mode):
    """reset / drop / blackhole turn a call into SourceUnavailable in bounded time; pass makes the next call work."""
    source.describe_table(SPEC)  # an earlier call succeeded: the fault must hit the next one
    proxy.set_mode(mode)
    started = time.monotonic()
    with pytest.raises(SourceUnavailable) as exc:
        source.get_item(SPEC, ("acme",))
    elapsed = time.monotonic() - started
    assert proxy.endpoint.removeprefix("http://") in str(exc.value)
    assert proxy.stats()[f"fault_{mode}"] in REQUESTS  # every botocore attempt met the fault
    assert elapsed < CALL_BOUND
    proxy.set_mode("pass")
    assert source.get_item(SPEC, ("acme",))["_version"] == {"N": "1"}


def test_a_timed_blackhole_ends_by_itself_and_botocore_retries_through_it(proxy):
    """A 1 s blackhole swallows the first attempt; the retry after it succeeds and the mode is pass again."""
    src = Source(make_settings_for(proxy.endpoint, read_timeout=3.0, attempts=3).aws, "seo_")
    src.describe_table(SPEC)  # the first call's set-up is done: the blackhole's 1 s clock does not run out before
    proxy.blackhole(1.0)
    assert src.get_item(SPEC, ("acme",))["name"] == {"S": "Acme"}
    assert proxy.stats()["fault_blackhole"] >= 1
    assert proxy.mode == "pass"


def test_latency_mode_delays_but_does_not_fail(proxy, source):
    """Latency mode adds its delay to each request and the call still succeeds."""
    proxy.set_mode("latency", latency=0.3)
    started = time.monotonic()
    assert source.get_item(SPEC, ("acme",)) is not None
    assert time.monotonic() - started >= 0.3
    assert proxy.stats()["fault_latency"] == 1


def test_probability_injects_a_seeded_share_of_faults(dynamo_endpoint):
    """With probability 0.5 and a fixed seed, some but not all of 40 requests are reset, reproducibly."""
    outcomes = []
    for _ in range(2):
        with FaultProxy(dynamo_endpoint, seed=7) as p:
            p.set_mode("reset", probability=0.5)
            run = []
            for _ in range(40):
                conn = http.client.HTTPConnection(*p.listen, timeout=5)
                try:
                    conn.request("GET", "/moto-api/")
                    run.append(conn.getresponse().status)
                except OSError:
                    run.append("reset")
                finally:
                    conn.close()
            outcomes.append((run, p.stats()["fault_reset"]))
    (first, resets), (second, _) = outcomes
    assert first == second
    assert 0 < resets < 40 and first.count("reset") == resets


def test_connections_over_the_cap_are_rejected(dynamo_endpoint):
    """Beyond max_connections the proxy resets new connections instead of spawning threads."""
    with FaultProxy(dynamo_endpoint, max_connections=2) as p:
        p.set_mode("blackhole")  # holds the first two connections open
        held = [http.client.HTTPConnection(*p.listen, timeout=5) for _ in range(2)]
        for c in held:
            c.request("GET", "/moto-api/")
        while p.stats()["fault_blackhole"] < 2:
            time.sleep(0.01)
        extra = http.client.HTTPConnection(*p.listen, timeout=5)
        with pytest.raises(OSError):
            extra.request("GET", "/moto-api/")
            extra.getresponse()
        assert p.stats()["rejected"] == 1
        for c in held:
            c.close()


def test_proxy_refuses_non_loopback_addresses():
    """The proxy never forwards to, or listens on, anything but loopback."""
    with pytest.raises(ValueError):
        FaultProxy("http://10.0.0.1:80")
    with pytest.raises(ValueError):
        FaultProxy("http://127.0.0.1:80", listen_host="0.0.0.0")


def test_process_mode_is_controlled_over_stdin(dynamo_endpoint):
    """`python -m tests.support.proxy` prints its endpoint, applies stdin commands, and exits when stdin closes."""
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "-m", "tests.support.proxy", "--target", dynamo_endpoint], cwd=repo,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        endpoint = json.loads(proc.stdout.readline())["endpoint"]
        proc.stdin.write("reset\n")
        proc.stdin.flush()
        assert json.loads(proc.stdout.readline())["mode"] == "reset"
        host, port = endpoint.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=5)
        with pytest.raises(OSError):
            conn.request("GET", "/moto-api/")
            conn.getresponse()
        proc.stdin.write("stats\n")
        proc.stdin.flush()
        assert json.loads(proc.stdout.readline())["fault_reset"] == 1
        proc.stdin.close()
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_stdin_command_syntax_parses_mode_and_options():
    """The process mode's commands name a mode and key=value options."""
    assert parse_command("reset probability=0.2 duration=5 then=latency") == (
        "reset", {"probability": 0.2, "duration": 5.0, "then": "latency"})


@pytest.mark.parametrize("mode", ["reset", "drop"])
def test_under_random_faults_every_call_succeeds_or_is_source_unavailable(proxy, source, mode):
    """With half the requests faulted, each Source call either works or raises SourceUnavailable, nothing else."""
    info = source.describe_table(SPEC)
    proxy.set_mode(mode, probability=0.5)
    outcomes = []
    for _ in range(8):
        try:
            source.get_item(SPEC, ("acme",))
            source.streams.describe_stream(info.stream_arn)
            outcomes.append("ok")
        except SourceUnavailable:
            outcomes.append("unavailable")
    assert set(outcomes) == {"ok", "unavailable"}
    assert proxy.stats()[f"fault_{mode}"] >= outcomes.count("unavailable")


@pytest.mark.parametrize("mode", ["cut_headers", "cut_body"])
def test_a_cut_answer_is_an_incomplete_answer_never_an_absent_item(proxy, source, mode):
    """An answer cut inside its headers (empty body, read as `{}` by botocore) or inside its body is
    IncompleteAnswer, retryable; never "absent"; lifting the cut gives the item again."""
    source.describe_table(SPEC)
    proxy.set_mode(mode, match="GetItem")
    for _ in range(5):
        with pytest.raises(IncompleteAnswer):
            source.get_item(SPEC, ("acme",))
    assert proxy.stats()[f"fault_{mode}"] >= 5
    proxy.set_mode("pass")
    assert source.get_item(SPEC, ("acme",))["_version"] == {"N": "1"}


def test_cut_points_fall_inside_the_headers_or_the_body():
    """cut_headers keeps the status line and never the blank line ending the headers; cut_body keeps
    the headers and less than the whole body."""
    answer = b"HTTP/1.1 200 OK\r\nDate: x\r\nContent-Length: 10\r\n\r\n0123456789"
    for share in (0.0, 0.5, 0.99):
        head = _cut_answer(answer, "cut_headers", share, complete=True)
        assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"\r\n\r\n" not in head
        body = _cut_answer(answer, "cut_body", share, complete=True)
        assert body.startswith(answer[:answer.index(b"\r\n\r\n") + 4]) and len(body) < len(answer)
    assert _cut_answer(answer[:30], "cut_body", 0.5, complete=False) is None  # waits for the rest
