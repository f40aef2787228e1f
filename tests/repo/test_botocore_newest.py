"""The fast response path's contract tests against the newest botocore on the package index.

pyproject.toml gives boto3 and botocore lower bounds only, so a host may run a botocore newer than
the one constraints.txt pins for CI. This runs the hook's contract tests (tests/unit/test_raw_responses.py
and the self-check's, tests/unit/test_raw_check.py) in a scratch venv holding the newest boto3,
botocore and s3transfer the index offers. A failure here says: the next botocore breaks the fast
path (the daemon would fall back to botocore's parser, correct but slower). When the index cannot
be reached the test is skipped and says so: it did not check anything.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.wheels import Venv

REPO = Path(__file__).resolve().parents[2]
SDK = ("boto3", "botocore", "s3transfer")
CONTRACT_TESTS = ("tests/unit/test_raw_responses.py", "tests/unit/test_raw_check.py")

pytestmark = [pytest.mark.slow, pytest.mark.index]


def _newest_wheels(dest: Path) -> list[Path]:
    """The newest wheels of the SDK from the package index, or a skip that says the index was not reached."""
    proc = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                           "--dest", str(dest), *SDK], capture_output=True, text=True, timeout=240)
    if proc.returncode != 0:
        pytest.skip(f"NOT CHECKED: the package index could not be reached for the newest {', '.join(SDK)}: "
                    f"{proc.stderr.strip()[-500:]}")
    return sorted(dest.glob("*.whl"))


def test_the_fast_path_contract_holds_with_the_newest_botocore(tmp_path: Path) -> None:
    """test_raw_responses.py and test_raw_check.py pass in a venv with the index's newest boto3 and botocore."""
    wheels = _newest_wheels(tmp_path / "wheels")
    assert {w.name.split("-")[0] for w in wheels} == set(SDK), wheels
    venv = Venv(tmp_path / "venv")
    venv.pip("install", "--no-deps", "--no-index", *map(str, wheels))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "HYPOTHESIS"))}
    env.update(PYTHONPATH=f"{REPO / 'daemon'}{os.pathsep}{REPO}", HYPOTHESIS_PROFILE="contract")
    version = subprocess.run([str(venv.python), "-c", "import botocore; print(botocore.__version__)"],
                             capture_output=True, text=True, env=env, timeout=60, cwd=REPO)
    newest = next(w.name.split("-")[1] for w in wheels if w.name.startswith("botocore-"))
    assert version.stdout.strip() == newest, version.stderr
    proc = subprocess.run([str(venv.python), "-m", "pytest", "-q", "-p", "no:cacheprovider", *CONTRACT_TESTS],
                          capture_output=True, text=True, env=env, timeout=600, cwd=REPO)
    assert proc.returncode == 0, f"botocore {newest}:\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}"
