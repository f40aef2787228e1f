"""The README's install steps, run as written into a fresh venv; the unit runs what they install.

Fast and without the network beyond what `make` itself needs: the source is a copy of this
checkout (so a build never writes into it), and `pip install .` gets `--no-deps`: the new venv sees
this test environment's site-packages through a .pth file (appended to its path, so seo_sync and
its `seo-sync` script come from the new venv alone). The build itself runs as the README's does,
isolated, with setuptools from the package index `make` installs .venv from.
"""

from __future__ import annotations

import re
import shlex
import shutil
import site
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text(encoding="utf-8")
UNIT = (REPO / "systemd" / "seo-sync.service").read_text(encoding="utf-8")
PREFIX = "/opt/seo-sync"
NO_DEPS = ["--no-deps", "--quiet"]  # the dependencies come from this environment


def _install_steps() -> list[str]:
    """The lines of the systemd section's first block that create the venv and install into it."""
    section = README[README.index("## Running it for real under systemd"):]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None
    lines = [line.split("  #")[0].strip() for line in block.group(1).splitlines()]
    return [line for line in lines if line.startswith(("python3 -m venv", f"{PREFIX}/venv/bin/pip",
                                                       f"{PREFIX}/venv/bin/seo-sync --version"))]


def _copy_of_checkout(dest: Path) -> None:
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, dest / name)
    shutil.copytree(REPO / "daemon", dest / "daemon",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))


def test_the_readme_installs_into_a_venv_under_opt_and_the_unit_runs_it() -> None:
    """venv + pip install . + seo-sync --version, as the README says; ExecStart names that venv's python."""
    steps = _install_steps()
    assert [s.split()[0] for s in steps] == ["python3", f"{PREFIX}/venv/bin/pip", f"{PREFIX}/venv/bin/seo-sync"]
    assert UNIT.count(f"ExecStart={PREFIX}/venv/bin/python -m seo_sync run ") == 1


def test_the_install_steps_run_in_a_fresh_venv(tmp_path: Path) -> None:
    """The README's venv, pip install and --version lines work in a fresh venv; it runs its own copy."""
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    _copy_of_checkout(checkout)
    prefix = tmp_path / "opt-seo-sync"
    venv = prefix / "venv"
    outputs = []
    for step in _install_steps():
        argv = shlex.split(step.replace(PREFIX, str(prefix)))
        if argv[0] == "python3":
            argv[0] = sys.executable  # the interpreter this test's dependencies were built for
        if argv[1:3] == ["install", "."]:
            argv[2:2] = NO_DEPS
        res = subprocess.run(argv, cwd=checkout, capture_output=True, text=True, timeout=240)
        assert res.returncode == 0, f"{step}\n{res.stdout}\n{res.stderr}"
        outputs.append(res.stdout)
        if argv[1:3] == ["-m", "venv"]:
            own = next(venv.glob("lib/python3*/site-packages"))
            (own / "zz-test-dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    assert outputs[-1].startswith("seo-sync, version ")
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import seo_sync; print(seo_sync.__file__)"],
                           capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert where.stdout.startswith(str(venv)), where.stdout + where.stderr
