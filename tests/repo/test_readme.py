"""The README is checked against the code: its two opening commands, the CLI table, the socket commands."""

from __future__ import annotations

import re
from pathlib import Path

from seo_sync.cli.main import root

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text(encoding="utf-8")


def test_readme_starts_with_the_demo_and_test_commands():
    """The first code block is exactly `make demo` and `make test`, and both targets exist."""
    block = re.search(r"```sh\n(.*?)```", README, re.S)
    assert block is not None
    commands = [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.strip()]
    assert commands == ["make demo", "make test"]
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^demo:", makefile, re.M) and re.search(r"^test:", makefile, re.M)


def test_ci_runs_the_readme_test_command():
    """.ci/run runs `make test` and nothing else clever."""
    lines = [ln for ln in (REPO / ".ci" / "run").read_text().splitlines() if ln and not ln.startswith("#")]
    assert "make test" in lines


def test_every_cli_command_is_documented():
    """Each command of `seo-sync --help` has a row in the README's command table."""
    first_cells = re.findall(r"^\| ([^|]*`[^|]*)\|", README, re.M)
    documented = {name for cell in first_cells for name in re.findall(r"`([a-z-]+)", cell)}
    missing = set(root.commands) - documented
    assert not missing, f"commands missing from the README: {sorted(missing)}"


def test_every_socket_command_is_documented():
    """status, health, resync, refresh and metrics each have a row in the socket table."""
    for command in ("status", "health", "resync", "refresh", "metrics"):
        assert f"| `{command}" in README
