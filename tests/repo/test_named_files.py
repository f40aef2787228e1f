"""Every file name that a comment or docstring in the package mentions is a file that exists.

A comment that points at `source.py` after source.py was split is worse than none: the reader goes
looking for it. Names are matched against the repository's tracked files, by path when the comment
gives one (`aws/shapes.py`, `docs/kinesis.md`) and by the file's own name otherwise.
"""

from __future__ import annotations

import ast
import io
import re
import subprocess
import tokenize
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "daemon" / "seo_sync"
# A file name as prose writes it: a path of word characters and dashes ending in one of the repo's
# source or document suffixes. `cache.db` and the like are data files the daemon makes, not files of
# the repository, so they are not looked for.
NAME = re.compile(r"(?<![\w./-])((?:[\w-]+/)*[\w-]+\.(?:py|md|ts|toml|service|sh))\b")


def _repo_files() -> list[str]:
    out = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    files = out.split()
    # Files added in the working tree and not yet committed count too (a new module named in a comment).
    extra = subprocess.run(["git", "ls-files", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout
    return files + extra.split()


def prose_of(source: str) -> list[tuple[int, str]]:
    """The comments and docstrings of a module's source, each with its line number."""
    found: list[tuple[int, str]] = []
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            found.append((tok.start[0], tok.string))
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                found.append((body[0].lineno, body[0].value.value))
    return found


def missing_names(source: str, files: list[str]) -> list[tuple[int, str]]:
    """The file names mentioned in `source`'s prose that match no file in `files`."""
    paths = set(files)
    bases = {f.rsplit("/", 1)[-1] for f in files}
    missing = []
    for line, text in prose_of(source):
        for name in NAME.findall(text):
            if "/" in name:
                known = any(p == name or p.endswith("/" + name) for p in paths)
            else:
                known = name in bases
            if not known:
                missing.append((line, name))
    return missing


def test_every_file_a_comment_names_exists() -> None:
    """No comment or docstring in the package names a file the repository does not hold."""
    files = _repo_files()
    stale = []
    for module in sorted(PACKAGE.rglob("*.py")):
        for line, name in missing_names(module.read_text(), files):
            stale.append(f"{module.relative_to(REPO)}:{line}: {name}")
    assert not stale, "comments name files that do not exist:\n" + "\n".join(stale)


def test_a_stale_name_is_caught() -> None:
    """The check finds a name planted in a comment and in a docstring, and passes a real one."""
    files = ["daemon/seo_sync/aws/shapes.py", "docs/kinesis.md"]
    source = '"""Read with gone.py beside it."""\n# see aws/shapes.py and docs/kinesis.md, not old/thing.py\n'
    assert sorted(n for _, n in missing_names(source, files)) == ["gone.py", "old/thing.py"]
