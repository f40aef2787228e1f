"""The demo is a feature, not a fixture: tests import `seo_sync.demo` only to test the demo.

Everything else that needs moto (the embedded DynamoDB, the Kinesis relay) reaches it through
`tests/support/moto_server.py`, so the demo's launcher stays the one place that starts and patches
moto, and the demo can change without touching the rest of the suite.
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
# The door every other test uses, and the tests of the demo itself (its launcher, data, views, commands).
ALLOWED = {
    "support/moto_server.py",
    "component/test_embedded_dynamo.py",
    "component/test_cli_data.py",
    "component/test_cli_operator.py",
    "unit/test_demo_sample.py",
    "unit/test_screenshot.py",
}


def demo_importers(root: Path) -> set[str]:
    """Test-tree files (relative paths) with an import of seo_sync.demo or of a module in it."""
    out = set()
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [f"{node.module}.{a.name}" for a in node.names]
                     if isinstance(node, ast.ImportFrom) and node.module else [])
            if any(n == "seo_sync.demo" or n.startswith("seo_sync.demo.") for n in names):
                out.add(path.relative_to(root).as_posix())
    return out


def test_only_the_demo_tests_and_the_door_import_the_demo() -> None:
    """No test imports seo_sync.demo except the demo's own tests and tests/support/moto_server.py."""
    assert demo_importers(TESTS) - ALLOWED == set()


def test_a_planted_import_of_the_demo_is_found(tmp_path: Path) -> None:
    """The check finds `from seo_sync.demo.embedded import X` and `from seo_sync import demo` in a test file."""
    (tmp_path / "unit").mkdir()
    (tmp_path / "unit" / "test_a.py").write_text("from seo_sync.demo.embedded import EmbeddedDynamo\n")
    (tmp_path / "unit" / "test_b.py").write_text("def f():\n    from seo_sync import demo\n")
    (tmp_path / "unit" / "test_c.py").write_text("from seo_sync import codec\n")
    assert demo_importers(tmp_path) == {"unit/test_a.py", "unit/test_b.py"}
