"""The Node reader's generated types (clients/node/src/generated/schema.ts) follow schema.py."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from click.testing import CliRunner

from seo_sync.cli.kit import root
from seo_sync.cli.main import run
from seo_sync.cli.schema import typescript
from seo_sync.schema import KEYWORDS, TABLES, Column

REPO = Path(__file__).resolve().parents[2]
CHECKED_IN = REPO / "clients" / "node" / "src" / "generated" / "schema.ts"


def test_checked_in_types_are_what_the_generator_writes():
    """schema.ts is exactly today's `seo-sync schema --typescript` (else: run `make node-types`)."""
    assert CHECKED_IN.read_text(encoding="utf-8") == typescript(), "run `make node-types` and commit the result"


def test_a_column_added_to_a_table_spec_changes_the_types():
    """A spec with one more column generates different TypeScript that names it in both interfaces."""
    grown = dataclasses.replace(KEYWORDS, columns=(*KEYWORDS.columns, Column("search_volume", "number")))
    specs = [grown if spec is KEYWORDS else spec for spec in TABLES.values()]
    text = typescript(specs)
    assert text != CHECKED_IN.read_text(encoding="utf-8")
    assert "search_volume: bigint | number | string | null;" in text  # KeywordRow
    assert "search_volume: CacheNumber | null;" in text  # Keyword
    assert 'search_volume: "number"' in text  # TABLES.keywords.columnKinds
    assert '"search_volume"' in text  # TABLES.keywords.columnNames


def test_every_column_of_every_table_is_in_the_types():
    """Each cache column name appears in the generated module, with its kind for typed columns."""
    text = typescript()
    for spec in TABLES.values():
        for name in spec.column_names:
            assert f'"{name}"' in text, f"{spec.name}.{name}"
        for column in spec.columns:
            assert f'{column.name}: "{column.kind}"' in text, f"{spec.name}.{column.name}"


def test_the_schema_command_writes_the_file(tmp_path: Path):
    """`seo-sync schema --typescript --output FILE` writes what typescript() returns; stdout too."""
    out = tmp_path / "schema.ts"
    assert run(["schema", "--typescript", "--output", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == typescript()
    result = CliRunner().invoke(root, ["schema", "--typescript"])
    assert result.exit_code == 0
    assert result.output == typescript()
