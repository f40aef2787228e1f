"""The repository stands alone: nothing points into the team's workspace, and every relative link in
its Markdown names a file the clone has."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Spelled in pieces so that this file does not match itself.
OUTSIDE = re.compile(re.escape("..") + "/" + "shared" + r"\b|/work/" + "shared" + r"\b")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def tracked_files() -> list[Path]:
    """The files git tracks in the repository."""
    out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    return [REPO / name for name in out.decode().split("\0") if name]


def test_no_tracked_file_points_into_the_team_workspace():
    """No tracked file names the workspace's shared folder, which a clone does not have."""
    hits = []
    for path in tracked_files():
        if not path.is_file():
            continue  # deleted in the working tree, not yet committed
        text = path.read_bytes().decode("utf-8", errors="replace")
        hits += [f"{path.relative_to(REPO)}:{text.count(chr(10), 0, m.start()) + 1}" for m in OUTSIDE.finditer(text)]
    assert hits == []


def test_relative_markdown_links_name_files_the_clone_has():
    """Every relative link in a tracked Markdown file resolves to a file or folder in the repository."""
    broken = []
    for path in tracked_files():
        if path.suffix != ".md" or not path.is_file():
            continue
        for target in LINK.findall(path.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:|#", target):  # a URL, a mail address or an anchor in the same page
                continue
            if not (path.parent / target.split("#")[0]).exists():
                broken.append(f"{path.relative_to(REPO)} -> {target}")
    assert broken == []


def test_the_checks_see_a_planted_pointer(tmp_path):
    """The pattern catches both spellings of the workspace path, and the link pattern reads a link."""
    assert OUTSIDE.search("see " + ".." + "/shared/DESIGN.md") and OUTSIDE.search("/work/" + "shared/x")
    assert not OUTSIDE.search("a shared folder")
    assert LINK.findall("see [the map](docs/architecture.md#layers).") == ["docs/architecture.md#layers"]
