"""The suite's Ctrl-C tests hold however the run was started: a run launched in the background by a
shell without job control inherits SIGINT ignored, and the processes the tests start must not."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def test_a_ctrl_c_test_passes_in_a_run_that_inherited_sigint_ignored() -> None:
    """`changes --follow` ends on Ctrl-C even when pytest itself was started with SIGINT ignored."""
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:xdist",
                          "tests/component/test_cli_changes.py", "-k", "ctrl_c"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120, preexec_fn=_ignore_sigint,
                         env={**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT}/daemon"})
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert "1 passed" in res.stdout
