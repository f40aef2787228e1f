"""The systemd unit and its sysusers/tmpfiles snippets, checked by systemd's own tools.

The tools are part of the test contract: when one is missing the test FAILS (CI installs the
`systemd` package), it never skips.
"""

from __future__ import annotations

import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

SYSTEMD_DIR = Path(__file__).resolve().parents[2] / "systemd"
UNIT = SYSTEMD_DIR / "seo-sync.service"
SYSUSERS = SYSTEMD_DIR / "seo-sync.sysusers.conf"
TMPFILES = SYSTEMD_DIR / "seo-sync.tmpfiles.conf"
MAX_EXPOSURE = 2.0
INSTALLED_PYTHON = "/opt/seo-sync/venv/bin/python"  # the venv the README installs into


def _tool(name: str) -> str:
    path = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
    if path is None:
        pytest.fail(f"{name} is missing: install the `systemd` package (apt-get install systemd)")
    return path


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)


def _directives(text: str) -> dict[str, list[str]]:
    """Key → values of the unit (a key may repeat, e.g. SystemCallFilter)."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            key, value = line.split("=", 1)
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def _with_this_python(tmp_path: Path) -> Path:
    """The unit with ExecStart's interpreter (the install location, absent on a test machine) replaced
    by this test's Python, which can import seo_sync."""
    copy = tmp_path / "seo-sync.service"
    copy.write_text(UNIT.read_text().replace(f"{INSTALLED_PYTHON} ", f"{sys.executable} "))
    return copy


def test_unit_verifies(tmp_path: Path) -> None:
    """`systemd-analyze verify` accepts the unit without a warning."""
    res = _run(_tool("systemd-analyze"), "verify", str(_with_this_python(tmp_path)))
    output = res.stdout + res.stderr
    assert res.returncode == 0, output
    assert "seo-sync.service" not in output, output


def test_verify_would_catch_a_mistake(tmp_path: Path) -> None:
    """The verify check is not vacuous: typos are reported (with rc 0!), a missing binary fails."""
    broken = tmp_path / "seo-sync.service"
    text = UNIT.read_text().replace("WatchdogSec=", "WatchDogSec=").replace("ProtectSystem=strict",
                                                                           "ProtectSystem=stricter")
    broken.write_text(text)
    res = _run(_tool("systemd-analyze"), "verify", str(broken))
    output = res.stdout + res.stderr
    assert "Unknown key 'WatchDogSec'" in output and "stricter" in output
    assert "seo-sync.service" in output  # what test_unit_verifies looks for, since rc stays 0 here
    broken.write_text(_with_this_python(tmp_path).read_text().replace(f"{sys.executable} ", "/nonexistent/python3 "))
    assert _run(_tool("systemd-analyze"), "verify", str(broken)).returncode != 0


def test_security_exposure_at_most_2() -> None:
    """`systemd-analyze security --offline=true --threshold=20` passes and the exposure is <= 2.0."""
    res = _run(_tool("systemd-analyze"), "security", "--offline=true", "--threshold=20", "--no-pager", str(UNIT))
    assert res.returncode == 0, res.stdout + res.stderr
    m = re.search(r"Overall exposure level for seo-sync\.service:\s*([0-9.]+)", res.stdout)
    assert m is not None, res.stdout
    assert float(m.group(1)) <= MAX_EXPOSURE


def test_unit_has_the_service_contract() -> None:
    """The directives the daemon's lifecycle relies on are there with the right values."""
    d = _directives(UNIT.read_text())
    expected = {
        "Type": ["notify"], "NotifyAccess": ["main"],
        "ExecStart": [f"{INSTALLED_PYTHON} -m seo_sync run --config /etc/seo-sync/seo-sync.toml"],
        "ExecReload": ["/bin/kill -HUP $MAINPID"], "Restart": ["on-failure"],
        "RestartPreventExitStatus": ["78"], "TimeoutStopSec": ["30s"], "User": ["seo-sync"],
        "Group": ["seo-sync"], "UMask": ["0027"], "RuntimeDirectory": ["seo-sync"],
        "StateDirectory": ["seo-sync seo-sync/backups"], "NoNewPrivileges": ["yes"],
        "ProtectSystem": ["strict"], "CapabilityBoundingSet": [""],
    }
    for key, value in expected.items():
        assert d.get(key) == value, key
    assert re.fullmatch(r"\d+s", d["WatchdogSec"][0])
    assert "DynamicUser" not in d  # state must stay traversable by the generation server's group


def test_every_sandboxing_directive_is_commented() -> None:
    """In the sandboxing part every blank-line-separated group of directives opens with its comment."""
    text = UNIT.read_text()
    sandbox = text[text.index("# --- sandboxing"):text.index("[Install]")].splitlines()
    commented = False  # inside a group that began with a comment
    directives = group = 0
    for line in (raw.strip() for raw in sandbox[1:]):
        if not line:
            commented = False
        elif line.startswith("#"):
            commented = True
        else:
            directives += 1
            group += 1
            assert commented, f"{line} has no comment above it"
            assert group <= 3, f"{line}: too many directives share one comment"
        if not line or line.startswith("#"):
            group = 0
    assert directives >= 30


def _install_users(root: Path, extra: str = "") -> None:
    (root / "etc").mkdir(parents=True, exist_ok=True)
    conf = root / "sysusers.conf"
    conf.write_text(SYSUSERS.read_text() + extra)
    res = _run(_tool("systemd-sysusers"), f"--root={root}", str(conf))
    assert res.returncode == 0, res.stderr


def test_sysusers_creates_the_service_user(tmp_path: Path) -> None:
    """The sysusers snippet creates user and group seo-sync, a system account without a login shell."""
    _install_users(tmp_path)
    passwd = {line.split(":")[0]: line.split(":") for line in (tmp_path / "etc/passwd").read_text().splitlines()}
    groups = {line.split(":")[0]: line.split(":") for line in (tmp_path / "etc/group").read_text().splitlines()}
    user = passwd["seo-sync"]
    assert int(user[2]) < 1000 and user[6] == "/usr/sbin/nologin" and user[5] == "/var/lib/seo-sync"
    assert user[3] == groups["seo-sync"][2]
    assert set(passwd) == {"seo-sync"}  # the commented member line creates no phantom user


def test_sysusers_member_line_adds_the_generation_server(tmp_path: Path) -> None:
    """The documented `m` line, once filled in, puts the generation server's user in the group."""
    line = next(x for x in SYSUSERS.read_text().splitlines() if x.startswith("#m "))
    _install_users(tmp_path, extra=line[1:] + "\n")
    members = next(g for g in (tmp_path / "etc/group").read_text().splitlines() if g.startswith("seo-sync:"))
    assert members.split(":")[3] == "seo-gen"


def test_tmpfiles_creates_the_directories(tmp_path: Path) -> None:
    """tmpfiles creates the unit's state and config directories, 0750, owned as the unit expects."""
    _install_users(tmp_path)
    res = _run(_tool("systemd-tmpfiles"), "--create", f"--root={tmp_path}", str(TMPFILES))
    assert res.returncode == 0, res.stderr
    uid = next(int(x.split(":")[2]) for x in (tmp_path / "etc/passwd").read_text().splitlines()
               if x.startswith("seo-sync:"))
    for rel, owner in (("var/lib/seo-sync", uid), ("var/lib/seo-sync/backups", uid), ("etc/seo-sync", 0)):
        st = (tmp_path / rel).stat()
        assert stat.S_IMODE(st.st_mode) == 0o750, rel
        assert st.st_uid == owner, rel
    state_dirs = _directives(UNIT.read_text())["StateDirectory"][0].split()
    for d in state_dirs:
        assert (tmp_path / "var/lib" / d).is_dir()
