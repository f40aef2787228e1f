"""The test tree's own rules: helpers live in tests/support, and no test module imports another test
module or a conftest (a test module that doubles as a library runs its neighbour's tests' imports
and breaks when that file moves)."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
TIERS = ("unit", "component", "service", "fault", "repo", "bench", "support")


def _names_a_test_module(name: str) -> bool:
    """True for a dotted name inside the tests package that goes through a test module or a conftest."""
    return any(part.startswith("test_") or part == "conftest" for part in name.split(".")[1:])


def imported_modules(path: Path, root: Path) -> list[tuple[str, int]]:
    """(dotted module, line) for every import in the file at `path`, relative ones resolved against `root`."""
    package = ".".join((root.name, *path.relative_to(root).parent.parts))
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1]) if node.level else ""
            module = ".".join(p for p in (base, node.module or "") if p)
            found.append((module, node.lineno))
            found += [(f"{module}.{alias.name}", node.lineno) for alias in node.names]
    return found


def imports_of_test_modules(root: Path) -> list[str]:
    """Imports, anywhere under `root` (the tests package), of a test module or a conftest: one per line."""
    out: dict[tuple[Path, int], str] = {}
    for path in sorted(root.rglob("*.py")):
        for module, line in imported_modules(path, root):
            if module.split(".")[0] == root.name and _names_a_test_module(module):
                out.setdefault((path, line), f"{path.relative_to(root)}:{line} imports {module}")
    return sorted(out.values())


def test_no_test_module_imports_another_test_module_or_a_conftest():
    """Test modules share code through tests/support only: nothing imports a test_* module or a conftest."""
    assert imports_of_test_modules(TESTS) == []


def test_support_holds_no_tests():
    """tests/support is imported, never collected: no test_* module, no conftest, no test_* function."""
    support = TESTS / "support"
    assert not [p.name for p in support.glob("test_*.py")] and not (support / "conftest.py").exists()
    for path in support.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = [n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)]
        assert not [n for n in names if n.startswith(("test_", "Test"))], path.name


def test_every_folder_is_a_known_tier_with_an_init():
    """Each folder under tests/ is one of the tiers and a package (so same-named files in two tiers do not clash)."""
    folders = sorted(p.name for p in TESTS.iterdir() if p.is_dir() and p.name != "__pycache__")
    assert set(folders) <= set(TIERS), folders
    assert all((TESTS / f / "__init__.py").exists() for f in folders)


def test_an_import_of_a_test_module_or_a_conftest_is_reported(tmp_path):
    """Absolute and relative imports of a test module or a conftest are found; a support import is not."""
    root = tmp_path / "tests"
    (root / "unit").mkdir(parents=True)
    (root / "unit" / "test_a.py").write_text("from tests.unit.test_b import helper\nfrom tests.support.x import y\n")
    (root / "unit" / "test_c.py").write_text("from .conftest import put\n")
    (root / "unit" / "test_d.py").write_text("def f():\n    from tests import conftest\n")
    assert imports_of_test_modules(root) == [
        "unit/test_a.py:1 imports tests.unit.test_b",
        "unit/test_c.py:1 imports tests.unit.conftest",
        "unit/test_d.py:2 imports tests.conftest",
    ]
