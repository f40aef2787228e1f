"""The demo's sample data: package data found from any directory; a missing or empty file is an error."""

from __future__ import annotations

from pathlib import Path

import pytest

from seo_sync.demo.embedded import load_sample_items, sample_folder
from seo_sync.errors import BadInput, ExitCode, NotFound
from seo_sync.schema import TABLES


def test_the_sample_is_package_data_with_items_for_every_table(monkeypatch: pytest.MonkeyPatch,
                                                               tmp_path: Path) -> None:
    """From an unrelated working directory the package's sample folder holds items for all five tables."""
    monkeypatch.chdir(tmp_path)
    items = load_sample_items()
    assert list(items) == list(TABLES) and all(items[t] for t in TABLES)
    assert Path(str(sample_folder())).parent.name == "demo"


def test_a_missing_sample_file_is_an_error_not_an_empty_demo(tmp_path: Path) -> None:
    """A folder lacking one table's file raises NotFound (exit 66) naming the file, instead of loading nothing."""
    for name in list(TABLES)[:-1]:
        (tmp_path / f"{name}.json").write_text('[{"business_id": {"S": "b"}}]')
    with pytest.raises(NotFound) as err:
        load_sample_items(tmp_path)  # a Path is a Traversable
    assert f"{list(TABLES)[-1]}.json" in err.value.message and err.value.exit_code == ExitCode.NOINPUT


def test_an_empty_sample_file_is_an_error(tmp_path: Path) -> None:
    """A sample file holding no items raises BadInput instead of a table left empty."""
    for name in TABLES:
        (tmp_path / f"{name}.json").write_text("[]" if name == "keywords" else '[{"business_id": {"S": "b"}}]')
    with pytest.raises(BadInput, match=r"keywords\.json holds no items"):
        load_sample_items(tmp_path)
