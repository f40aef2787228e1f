"""The demo as an operator meets it: Ctrl-C in a terminal, a second shell, output to a pipe.

Each test runs the real `seo-sync demo` process and waits on what it prints (with a deadline),
never on a fixed sleep.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

import pytest

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "daemon" / "seo_sync" / "demo" / "sample"
SAMPLE_IDS = [b["business_id"]["S"] for b in json.loads((SAMPLE / "businesses.json").read_text())]
DEADLINE = 90.0  # seconds; a demo boots in a few seconds on an idle machine


def _clean_env() -> dict[str, str]:
    """This environment without any AWS or seo-sync setting: the demo and the second shell start bare."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SEO_SYNC_"))}


class Output:
    """Everything a stream delivers, collected by a thread (a full pipe or pty would stall the demo)."""

    def __init__(self, read: Callable[[], bytes]) -> None:
        self._chunks: list[bytes] = []
        self._lock = threading.Lock()
        self._read = read
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while True:
            try:
                chunk = self._read()
            except OSError:  # a pty's master reads EIO once the last writer closed it
                return
            if not chunk:
                return
            with self._lock:
                self._chunks.append(chunk)

    @property
    def text(self) -> str:
        """What was read so far."""
        with self._lock:
            return b"".join(self._chunks).decode("utf-8", "replace")

    def wait_for(self, predicate: Callable[[str], bool], what: str, proc: subprocess.Popen[bytes]) -> str:
        """The text once `predicate` holds for it; fails at the deadline or when the demo exits first."""
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            text = self.text
            if predicate(text):
                return text
            if proc.poll() is not None:
                pytest.fail(f"the demo exited ({proc.returncode}) before {what}:\n{text[-3000:]}")
            time.sleep(0.1)
        pytest.fail(f"no {what} within {DEADLINE} s:\n{self.text[-3000:]}")

    def join(self) -> None:
        """Wait until the stream is closed and fully read."""
        self._thread.join(timeout=DEADLINE)


def _stream(pipe: IO[bytes] | None) -> Output:
    assert pipe is not None
    return Output(lambda: os.read(pipe.fileno(), 65536))


def _readme_socket_example(socket_path: str) -> list[str]:
    """The README's Python example of asking the status socket, pointed at `socket_path`."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## The status socket"):readme.index("## Troubleshooting")]
    assert "socat" not in readme  # not installed on most hosts; the examples need only seo-sync or Python
    line = next(ln for ln in section.splitlines() if ln.startswith("python3 -c "))
    argv = shlex.split(line.replace("/run/seo-sync/status.sock", socket_path))
    return [sys.executable, *argv[1:]]


def _start_demo(data_dir: Path, **streams: int) -> subprocess.Popen[bytes]:
    # A session of its own, as a shell gives a job: the test signals the demo's whole process group.
    return subprocess.Popen([sys.executable, "-m", "seo_sync", "--data-dir", str(data_dir), "demo", "--port", "0"],
                            cwd=REPO, env=_clean_env(), stdin=subprocess.DEVNULL, start_new_session=True,
                            **streams)  # type: ignore[call-overload]


def _interrupt_group(proc: subprocess.Popen[bytes]) -> int:
    """SIGINT to the demo's process group, as the terminal sends on Ctrl-C; the demo's exit code."""
    os.killpg(proc.pid, signal.SIGINT)
    try:
        return proc.wait(timeout=DEADLINE)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.mark.parametrize("moment", ["while it boots", "while it streams"])
def test_ctrl_c_in_a_terminal_ends_with_exit_0_and_the_summary(tmp_path: Path, moment: str) -> None:
    """Ctrl-C (SIGINT to the process group) on a terminal stops the daemon once: exit 0 and the summary."""
    master, slave = os.openpty()
    proc = _start_demo(tmp_path / "d", stdout=slave, stderr=slave)
    os.close(slave)
    out = Output(lambda: os.read(master, 65536))
    try:
        if moment == "while it boots":
            out.wait_for(lambda t: "Ctrl-C stops the demo" in t, "the demo's banner", proc)
        else:
            out.wait_for(lambda t: "daemon: streaming" in t, "the live view showing the daemon streaming", proc)
        code = _interrupt_group(proc)
        out.join()
    finally:
        os.close(master)
    text = out.text
    assert code == 0, text[-3000:]
    assert "demo stopped (" in text and "rows in cache" in text, text[-3000:]
    if moment == "while it streams":
        assert "daemon exit code 0" in text, text[-3000:]


@pytest.mark.slow
def test_a_second_shell_reaches_the_demo_with_only_what_it_printed(tmp_path: Path) -> None:
    """status, list-businesses and verify succeed from another process given only the demo's export lines."""
    proc = _start_demo(tmp_path / "d", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = _stream(proc.stdout), _stream(proc.stderr)
    try:
        banner = out.wait_for(lambda t: "(or: . " in t, "the export lines", proc)
        env = {k: v for k, v in _clean_env().items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
        for line in banner.splitlines():
            if line.strip().startswith("export "):
                name, _, value = shlex.split(line.strip())[1].partition("=")
                env[name] = value
        assert {"AWS_ENDPOINT_URL", "AWS_REGION", "SEO_SYNC_DATA_DIR", "SEO_SYNC_SOCKET"} <= env.keys(), banner

        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([sys.executable, "-m", "seo_sync", *args], cwd=tmp_path, env=env,
                                  capture_output=True, text=True, timeout=60)

        deadline = time.monotonic() + DEADLINE
        while cli("health").returncode != 0:
            assert time.monotonic() < deadline and proc.poll() is None, err.text[-3000:]
            time.sleep(0.2)
        status = cli("status")
        assert status.returncode == 0, status.stdout + status.stderr
        assert "NOT reachable" not in status.stdout and "daemon: streaming" in status.stdout
        listing = cli("list-businesses")
        assert listing.returncode == 0, listing.stderr
        first_cells = [line.split("\t")[0] for line in listing.stdout.splitlines()[1:]]
        assert sorted(first_cells) == sorted(SAMPLE_IDS)  # piped: whole ids, one a line
        # The demo's writer keeps writing: a key written a moment ago may still be on its way to the
        # cache (verify re-checks differing keys for a few seconds; a loaded machine can lag longer).
        verify = cli("verify", "--json")
        while verify.returncode != 0 and time.monotonic() < deadline + DEADLINE:
            verify = cli("verify", "--json")
        assert verify.returncode == 0, verify.stdout + verify.stderr
        assert json.loads(verify.stdout)["identical"] is True
        asked = subprocess.run(_readme_socket_example(env["SEO_SYNC_SOCKET"]), capture_output=True, text=True,
                               timeout=30, env=env)
        assert asked.returncode == 0 and 'seo_sync_state{state="streaming"} 1' in asked.stdout, asked.stderr
        # Its output is a pipe: plain progress lines arrive while it runs, not only at the end.
        out.wait_for(lambda t: t.count("| daemon streaming |") >= 2, "two progress lines", proc)
        code = _interrupt_group(proc)
        out.join()
        err.join()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert code == 0, err.text[-3000:]
    summary = out.text[out.text.rindex("| daemon streaming |"):]
    assert "\ndemo stopped (daemon exit code 0) after " in summary, out.text[-3000:]
    assert "\ntable\trows in cache\trecords applied\nbusinesses\t" in summary, out.text[-3000:]


def test_ctrl_c_with_the_stdout_reader_gone_prints_the_summary_on_the_terminal(tmp_path: Path) -> None:
    """`make demo | tee` then Ctrl-C: tee dies first, so what follows (summary included) goes to the terminal."""
    master, slave = os.openpty()
    tee = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=slave, start_new_session=True)
    assert tee.stdin is not None
    proc = _start_demo(tmp_path / "d", stdout=tee.stdin, stderr=slave)
    tee.stdin.close()
    os.close(slave)
    out = Output(lambda: os.read(master, 65536))
    try:
        out.wait_for(lambda t: t.count("| daemon streaming |") >= 1, "a progress line through the reader", proc)
        tee.kill()  # the reader of the demo's stdout is gone before the demo hears of the Ctrl-C
        tee.wait(timeout=DEADLINE)
        code = _interrupt_group(proc)
        out.join()
    finally:
        os.close(master)
        if tee.poll() is None:
            tee.kill()
    text = out.text
    assert code == 0, text[-3000:]
    assert "demo stopped (daemon exit code 0)" in text and "Traceback" not in text and "BrokenPipe" not in text
