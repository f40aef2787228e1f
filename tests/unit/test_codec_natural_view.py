"""Numbers compare as numbers in SQLite, and JSON columns hold the natural JSON view a reader parses."""

from __future__ import annotations

import base64
import json
import sqlite3
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seo_sync import codec
from seo_sync.cache.reader import Reader
from seo_sync.cache.writer import Cache
from seo_sync.schema import EXTRA_COLUMN, TABLES, TYPES_COLUMN
from tests.support.strategies import attribute_values as values
from tests.support.strategies import numbers, same

QUESTIONNAIRES = TABLES["questionnaires"]
TEMPLATES = TABLES["prompt_templates"]


def natural(av: codec.AttributeValue) -> Any:
    """The natural JSON view of a value, built independently of the codec (numbers as Decimal)."""
    ((t, v),) = av.items()
    if t == "N":
        return Decimal(v)
    if t == "NS":
        return sorted(Decimal(x) for x in v)
    if t == "SS":
        return sorted(v)
    if t == "B":
        return base64.b64encode(v).decode()
    if t == "BS":
        return [base64.b64encode(x).decode() for x in sorted(v)]
    if t == "NULL":
        return None
    if t == "M":
        return {k: natural(x) for k, x in v.items()}
    if t == "L":
        return [natural(x) for x in v]
    return v


containers = st.one_of(
    st.dictionaries(st.text(max_size=12), values, max_size=5).map(lambda v: {"M": v}),
    st.lists(values, max_size=5).map(lambda v: {"L": v}),
)


@given(containers)
@settings(max_examples=300, deadline=None)
def test_a_json_column_is_the_natural_view_and_the_notes_give_the_item_back(av):
    """Any map or list, sets and binary anywhere inside: the column parses to the natural view, and round-trips."""
    item = {"business_id": {"S": "b"}, "data": av}
    row = codec.item_to_row(QUESTIONNAIRES, item)
    assert row[EXTRA_COLUMN] is None
    assert json.loads(row["data"], parse_float=Decimal, parse_int=Decimal) == natural(av)
    assert same(codec.row_to_item(QUESTIONNAIRES, row), item)


def test_a_nested_set_keeps_data_parseable_and_required_variables_a_json_array():
    """A string set inside `data` and a string-set `required_variables` are JSON arrays, not NULL or _extra."""
    q = {"business_id": {"S": "b"}, "data": {"M": {"services": {"SS": ["roof", "gutter"]}, "n": {"N": "2"}}}}
    row = codec.item_to_row(QUESTIONNAIRES, q)
    assert json.loads(row["data"]) == {"services": ["gutter", "roof"], "n": 2} and row[EXTRA_COLUMN] is None
    assert json.loads(row[TYPES_COLUMN]) == {"data": {"/services": "SS"}}
    t = {"business_id": {"S": "b"}, "template_id": {"S": "home#1"}, "required_variables": {"SS": ["name", "city"]}}
    row = codec.item_to_row(TEMPLATES, t)
    assert json.loads(row["required_variables"]) == ["city", "name"]
    assert codec.row_to_item(TEMPLATES, row)["required_variables"] == {"SS": ["city", "name"]}


@given(numbers)
@settings(max_examples=500, deadline=None)
def test_a_number_cell_is_integer_exact_real_or_exact_text_and_reads_back_the_same_text(text):
    """INTEGER when integral in 64 bits, REAL only when exact, else the exact TEXT; always the same text back."""
    item = {"business_id": {"S": "b"}, "completeness_score": {"N": text}}
    row = codec.item_to_row(QUESTIONNAIRES, item)
    cell = row["completeness_score"]
    if isinstance(cell, int):
        assert Decimal(cell) == Decimal(text) and -(2**63) <= cell < 2**63
    elif isinstance(cell, float):
        assert Decimal(repr(cell)) == Decimal(text)
    else:
        assert cell == text and Decimal(repr(float(text))) != Decimal(text)
    assert codec.row_to_item(QUESTIONNAIRES, row)["completeness_score"] == {"N": text}


@pytest.mark.parametrize(("text", "kind"), [("0.85", float), ("800.5", float), ("0.0000001", float), ("1e-7", float),
                                            ("1", int), ("-9223372036854775808", int), ("1E+2", int),
                                            ("0.12345678901234567890123", str), ("12345678901234567890", str)])
def test_the_numbers_a_person_types_are_stored_as_numbers(text, kind):
    """0.85, 800.5 and 1e-7 are REAL, integers INTEGER; only more digits than a double holds stay TEXT."""
    assert type(codec.number_cell(text)[0]) is kind


@given(st.lists(numbers, min_size=2, max_size=12))
@settings(max_examples=100, deadline=None)
def test_sqlite_orders_and_compares_numeric_cells_like_decimals(texts):
    """Among INTEGER and REAL cells, SQLite's ORDER BY and `<` agree with exact decimal order."""
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (i INTEGER, n)")  # `n` declared like a number column: no affinity
    cells = [codec.number_cell(x)[0] for x in texts]
    conn.executemany("INSERT INTO t VALUES (?, ?)", list(enumerate(cells)))
    numeric = [i for i, c in enumerate(cells) if not isinstance(c, str)]
    got = [r[0] for r in conn.execute("SELECT i FROM t WHERE typeof(n) != 'text' ORDER BY n, i")]
    assert [Decimal(texts[i]) for i in got] == sorted(Decimal(texts[i]) for i in numeric)
    pivot = Decimal(texts[0])
    if not isinstance(cells[0], str):
        below = {r[0] for r in conn.execute("SELECT i FROM t WHERE n < ?", (cells[0],))}
        assert below == {i for i in numeric if Decimal(texts[i]) < pivot}


def test_completeness_scores_compare_as_numbers_in_the_cache(tmp_path):
    """< 0.9, > 0.9, max() and ORDER BY DESC over 0.3 0.5 0.85 0.95 1 are numeric in a real cache file."""
    cache = Cache.open(tmp_path / "cache.db")
    scores = {"q1": "0.3", "q2": "0.5", "q3": "0.85", "q4": "0.95", "q5": "1"}
    for bid, score in scores.items():
        cache.replace_business(bid, {"questionnaires": [{"business_id": {"S": bid},
                                                         "completeness_score": {"N": score}}]})
    cache.close()
    reader = Reader.open(tmp_path / "cache.db")
    sql = reader.conn.execute
    assert [r[0] for r in sql("SELECT business_id FROM questionnaires WHERE completeness_score < 0.9 "
                              "ORDER BY 1")] == ["q1", "q2", "q3"]
    assert [r[0] for r in sql("SELECT business_id FROM questionnaires WHERE completeness_score > 0.9 "
                              "ORDER BY 1")] == ["q4", "q5"]
    assert sql("SELECT max(completeness_score) FROM questionnaires").fetchone()[0] == 1
    assert sql("SELECT business_id FROM questionnaires ORDER BY completeness_score DESC").fetchone()[0] == "q5"
    assert [it["completeness_score"]["N"] for it in reader.items(QUESTIONNAIRES)] == list(scores.values())
    reader.close()
