"""The wheel is the product: installed with [demo] into a fresh venv, `seo-sync demo` works from anywhere.

The wheel is built offline from a copy of the sources (tests/support/wheels.py); the venv is new and
borrows nothing: pip installs the wheel and its dependencies (pinned by constraints.txt, from pip's
cache or the package index) as an operator's `pip install 'seo-sync[demo]'` would. The demo then
runs in a directory outside the checkout, and the test waits on what it prints, never on a clock.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import pytest

from seo_sync.schema import TABLES
from tests.support.wheels import build_wheel, run

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "daemon" / "seo_sync" / "demo" / "sample"
DEADLINE = 180.0  # seconds for the demo to fill the cache and make an edit; seconds on an idle machine
# The piped demo's progress line once every table has rows and the writer has made an edit.
FILLED_AND_EDITING = re.compile(r"cache rows " + r" ".join(rf"{t}=[1-9]\d*" for t in TABLES)
                                + r" \|.*\| writer: [1-9]\d* edits")

# The install (pip, from its cache or the index) and the demo each may take minutes on a loaded machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


class Collected:
    """Everything a pipe delivers, read by a thread (a full pipe would stall the demo)."""

    def __init__(self, pipe: int) -> None:
        self._chunks: list[bytes] = []
        self._pipe = pipe
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while chunk := os.read(self._pipe, 65536):
            self._chunks.append(chunk)

    @property
    def text(self) -> str:
        """What was read so far."""
        return b"".join(list(self._chunks)).decode("utf-8", "replace")

    def join(self) -> None:
        """Wait until the writer closed the pipe."""
        self._thread.join(timeout=DEADLINE)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding the wheel and its [demo] dependencies, as an operator installs them; its bin/."""
    out = tmp_path_factory.mktemp("wheel-demo")
    wheel = build_wheel(REPO, out)
    with zipfile.ZipFile(wheel) as z:
        shipped = {n.removeprefix("seo_sync/demo/sample/") for n in z.namelist()
                   if n.startswith("seo_sync/demo/sample/")}
    assert {f"{t}.json" for t in TABLES} <= shipped, shipped
    venv = out / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--quiet",
         "-c", str(REPO / "constraints.txt"), f"{wheel}[demo]"])
    return venv / "bin"


def test_the_installed_demo_fills_five_tables_and_edits_from_any_directory(installed: Path,
                                                                         tmp_path: Path) -> None:
    """seo-sync demo from the wheel, run elsewhere: every table gets the sample's rows, the writer edits."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SEO_SYNC_", "PYTHON", "VIRTUAL_ENV"))}
    proc = subprocess.Popen([str(installed / "seo-sync"), "--json", "demo", "--port", "0"], cwd=elsewhere, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    assert proc.stdout is not None and proc.stderr is not None
    out, err = Collected(proc.stdout.fileno()), Collected(proc.stderr.fileno())
    try:
        deadline = time.monotonic() + DEADLINE
        while not FILLED_AND_EDITING.search(err.text):
            assert proc.poll() is None, f"the demo exited {proc.returncode}:\n{err.text[-3000:]}"
            assert time.monotonic() < deadline, f"no filled cache and edit within {DEADLINE} s:\n{err.text[-3000:]}"
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the demo stops its daemon and prints its summary
        code = proc.wait(timeout=DEADLINE)
        out.join()
        err.join()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert code == 0, err.text[-3000:]
    summary = json.loads(out.text)
    sample = {t: len(json.loads((SAMPLE / f"{t}.json").read_text(encoding="utf-8"))) for t in TABLES}
    assert summary["loaded"] == sample
    rows = {t: info["rows"] for t, info in summary["final_status"]["tables"].items()}
    assert set(rows) == set(TABLES) and all(n > 0 for n in rows.values()), rows
    assert summary["writer"]["edits"] >= 1 and summary["daemon_exit_code"] == 0, summary["writer"]
    assert (elsewhere / summary["cache"]).resolve() == elsewhere / "data" / "cache.db"  # relative to the cwd
    print(f"demo rows from the wheel: {rows}; writer {summary['writer']}")
