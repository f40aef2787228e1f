"""Wheels and throwaway virtual environments for the packaging checks, all offline.

`build_wheel` builds the project's wheel from a clean copy of its sources with the build backend
installed in the running environment (no index, no build isolation). `fake_python_daemon_wheel`
writes a stand-in for PyPI's python-daemon: a distribution of that name whose one package is
`daemon` (an __init__ importing its own submodule, as the real one's does), which is all a clash
needs. `Venv` is a fresh environment without pip (the running pip installs into it) that borrows
the running environment's third-party packages, minus seo-sync and any `daemon`, so the installed
console script starts without downloading anything.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

# What a clean copy of the project needs to build: the metadata, the README it names, the sources.
BUILD_INPUTS = ("pyproject.toml", "README.md", "daemon")
# python-daemon's package as it matters here: an __init__ that imports its own submodule (and knows
# nothing of anyone else's names), and that submodule.
FAKE_DAEMON_FILES = {
    "daemon/__init__.py": '"""Stand-in for python-daemon (tests only)."""\n\nfrom .daemon import DaemonContext\n',
    "daemon/daemon.py": "class DaemonContext:\n    pass\n",
}


def build_wheel(repo: Path, out: Path) -> Path:
    """The project's wheel, built from a copy of its sources at `repo` into `out`."""
    src = out / "src"
    for name in BUILD_INPUTS:
        if (repo / name).is_dir():
            shutil.copytree(repo / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            src.mkdir(parents=True, exist_ok=True)
            shutil.copy2(repo / name, src / name)
    run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-index", "--no-build-isolation",
         "--wheel-dir", str(out), str(src)])
    [wheel] = out.glob("*.whl")
    return wheel


def top_level_names(wheel: Path) -> set[str]:
    """The names a wheel installs at the top of site-packages, leaving out its .dist-info."""
    with zipfile.ZipFile(wheel) as z:
        tops = {name.split("/")[0] for name in z.namelist()}
    return {t.removesuffix(".py") for t in tops if not t.endswith((".dist-info", ".data"))}


def fake_python_daemon_wheel(out: Path, version: str = "3.1.2") -> Path:
    """A wheel named python-daemon that installs the top-level package `daemon`, as the real one does."""
    dist_info = f"python_daemon-{version}.dist-info"
    files = {
        **FAKE_DAEMON_FILES,
        f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: python-daemon\nVersion: {version}\n",
        f"{dist_info}/WHEEL": "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        f"{dist_info}/top_level.txt": "daemon\n",
    }
    record = [f"{name},sha256={_digest(text)},{len(text.encode())}" for name, text in files.items()]
    files[f"{dist_info}/RECORD"] = "\n".join([*record, f"{dist_info}/RECORD,,"]) + "\n"
    wheel = out / f"python_daemon-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        for name, text in files.items():
            z.writestr(name, text)
    return wheel


def _digest(text: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()


class Venv:
    """A fresh virtual environment at `path` that borrows the running one's third-party packages."""

    def __init__(self, path: Path) -> None:
        self.path = path
        run([sys.executable, "-m", "venv", "--without-pip", str(path)])
        self.python = path / "bin" / "python"
        site = Path(run([str(self.python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]))
        borrowed = path / "borrowed"
        borrowed.mkdir()
        for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
            # Not the project (the editable install points at the working tree), not a `daemon`: the
            # environment under test must get those from the wheels it installs, or not at all.
            if not entry.name.lower().startswith(("seo_sync", "seo-sync", "__editable__", "daemon", "python_daemon")):
                (borrowed / entry.name).symlink_to(entry)
        # A path line in a .pth file joins sys.path after site-packages; the .pth files inside it
        # are not run, so the running environment's editable install stays out.
        (site / "borrowed.pth").write_text(f"{borrowed}\n")

    def pip(self, *args: str) -> str:
        """Run the running environment's pip against this environment."""
        return run([sys.executable, "-m", "pip", "--python", str(self.python), "--quiet", *args])

    def install(self, wheel: Path) -> None:
        """Install one wheel, without dependencies or an index."""
        self.pip("install", "--no-deps", "--no-index", str(wheel))

    def uninstall(self, distribution: str) -> None:
        """Uninstall one distribution."""
        self.pip("uninstall", "--yes", distribution)

    def works(self, *argv: str) -> subprocess.CompletedProcess[str]:
        """Run a command from this environment's bin/ (argv[0] is a script name there) with a clean environment."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
        return subprocess.run([str(self.path / "bin" / argv[0]), *argv[1:]], capture_output=True, text=True,
                              env=env, cwd=self.path, timeout=120)


def run(argv: list[str]) -> str:
    """Run a command that must succeed; its stripped stdout."""
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{argv} exited {proc.returncode}: {proc.stderr[-3000:]}"
    return proc.stdout.strip()
