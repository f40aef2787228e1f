"""The status socket fuzzed with hypothesis against the real daemon: every request line (commands,
arguments, JSON keys, raw bytes, sizes) gets one well-formed answer, health stays ok, and the cache
still equals DynamoDB afterwards."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seo_sync.schema import TABLES

REPO = Path(__file__).resolve().parents[2]
COMMANDS = ["status", "health", "metrics", "resync", "refresh", "refresh-business", "STATUS", "nope", "", "x" * 40]
ANSWER_TIMEOUT = 5.0  # generous on a loaded machine: the point is one answer, never a hang

json_keys = st.one_of(
    st.dictionaries(st.sampled_from(["business_id", "keyword_id", "area_id", "template_id", "__proto__", ""]),
                    st.one_of(st.text(max_size=30), st.integers(), st.none(), st.lists(st.text(max_size=5))),
                    max_size=3),
    st.lists(st.text(max_size=20), max_size=3))
arguments = st.one_of(st.sampled_from([*TABLES, "", "businesses x", "seo_keywords"]),
                      json_keys.map(json.dumps), st.text(max_size=60))
lines = st.one_of(
    st.tuples(st.sampled_from(COMMANDS), st.lists(arguments, max_size=3)).map(
        lambda t: " ".join([t[0], *t[1]]).encode("utf-8", "surrogatepass")),
    st.binary(max_size=300),
    st.integers(min_value=3000, max_value=6000).map(lambda n: b"refresh keywords " + b"[" * n),
)


def _ask(path: Path, line: bytes) -> bytes:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(ANSWER_TIMEOUT)
    try:
        s.connect(str(path))
        try:
            s.sendall(line.replace(b"\n", b" ") + b"\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused before reading all of it (too large): the answer is still there
        chunks = []
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        s.close()


def test_every_request_line_gets_one_well_formed_answer(seeded, start_daemon) -> None:
    """Hypothesis request lines against the daemon: one JSON answer (or metrics text) each; health ok after."""
    daemon = start_daemon(extra_env={"SEO_SYNC_CONTROL__MIN_RESYNC_INTERVAL": "3600"})
    daemon.wait_ready()

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(lines)
    def one_request(line: bytes) -> None:
        if line.strip().lower().startswith(b"debug"):
            return  # the test-only fault commands this harness enables are not the public protocol
        answer = _ask(daemon.socket_path, line)
        assert answer.endswith(b"\n") and answer.count(b"\n") >= 1, (line, answer[:200])
        text = answer.decode("utf-8")
        if text.startswith("# HELP"):
            return
        data = json.loads(text)
        assert isinstance(data, dict), (line, text[:200])
        if "error" in data:
            assert data["ok"] is False and isinstance(data.get("kind"), str), (line, data)

    one_request()
    assert daemon.request("health")["ok"], daemon.request("health")
    assert daemon.proc.poll() is None
    res = subprocess.run([sys.executable, "-m", "seo_sync", "verify"], cwd=REPO, env=daemon.env,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
