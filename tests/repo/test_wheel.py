"""The wheel installs one top-level package, `seo_sync`, and lives beside python-daemon (import name `daemon`).

The second distribution is a stand-in built here (tests/support/wheels.py): a wheel named
python-daemon whose one package is `daemon`, which is all the clash needs, so the check runs offline.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import pytest

from tests.support.wheels import Venv, build_wheel, fake_python_daemon_wheel, top_level_names

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel, built offline from a copy of the working tree."""
    return build_wheel(REPO, tmp_path_factory.mktemp("wheel"))


def test_the_wheel_installs_only_seo_sync_and_the_console_script(wheel):
    """The wheel's one top-level name is seo_sync, and its console script is seo-sync -> seo_sync.cli.main:main."""
    assert top_level_names(wheel) == {"seo_sync"}
    with zipfile.ZipFile(wheel) as z:
        [entry_points] = [n for n in z.namelist() if n.endswith(".dist-info/entry_points.txt")]
        assert "seo-sync = seo_sync.cli.main:main" in z.read(entry_points).decode()


# Imports every module of an installed package: a command module imported late (or a broken
# `__init__`) shows up here even where `--help` would not reach it.
IMPORT_ALL = ("import importlib, pkgutil, sys; pkg = importlib.import_module(sys.argv[1]); "
              "[importlib.import_module(m.name) for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.')]")


def _seo_sync_works(venv: Venv) -> None:
    for argv in (("seo-sync", "--help"), ("python", "-m", "seo_sync", "--help")):
        proc = venv.works(*argv)
        assert proc.returncode == 0 and re.search(r"^  run\s", proc.stdout, re.M), (argv, proc.stderr[-2000:])
    proc = venv.works("python", "-c", IMPORT_ALL, "seo_sync")
    assert proc.returncode == 0, proc.stderr[-2000:]


def _python_daemon_works(venv: Venv) -> None:
    proc = venv.works("python", "-c", "import daemon; print(daemon.DaemonContext.__name__)")
    assert proc.returncode == 0 and proc.stdout.strip() == "DaemonContext", proc.stderr[-2000:]


def test_seo_sync_and_python_daemon_install_side_by_side_and_uninstall_apart(tmp_path, wheel):
    """Either order of install leaves both working; uninstalling either one leaves the other working."""
    other = fake_python_daemon_wheel(tmp_path)
    venv = Venv(tmp_path / "venv")
    venv.install(wheel)
    venv.install(other)
    _seo_sync_works(venv)
    _python_daemon_works(venv)

    venv.uninstall("python-daemon")
    _seo_sync_works(venv)
    gone = venv.works("python", "-c", "import daemon")
    assert gone.returncode != 0 and "No module named 'daemon'" in gone.stderr

    venv.install(other)
    venv.uninstall("seo-sync")
    _python_daemon_works(venv)
    gone = venv.works("python", "-c", "import seo_sync")
    assert gone.returncode != 0 and "No module named 'seo_sync'" in gone.stderr
