"""Property tests of the codec: every AttributeValue type survives cache rows, SQLite and DynamoDB JSON."""

from __future__ import annotations

import base64
import json
import sqlite3
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seo_sync import codec
from seo_sync.cache.reader import Reader
from seo_sync.cache.writer import Cache
from seo_sync.errors import CodecError
from seo_sync.schema import EXTRA_COLUMN, TABLES, TableSpec
from tests.support.strategies import attribute_values, same

HOSTILE_NAMES = ['pk" = "pk" OR "pk', "x" * 65536, "a\x00b", "\u202eevil\u202c", "__proto__", "business_id\x00",
                 "_extra", "name; DROP TABLE businesses; --", "constructor"]
SPECS = list(TABLES.values())


key_text = st.text(min_size=1, max_size=40)


@st.composite
def items(draw: st.DrawFn, spec: TableSpec | None = None) -> tuple[TableSpec, codec.Item]:
    """A table and one of its items: keys, known columns (any type), `_version`, unknown and hostile names."""
    spec = spec or draw(st.sampled_from(SPECS))
    item: codec.Item = {k: {"S": draw(key_text)} for k in spec.key_names}
    known = [c.name for c in spec.columns] + ["_version"]
    names = st.one_of(st.sampled_from(known), st.sampled_from(HOSTILE_NAMES), st.text(min_size=1, max_size=20))
    for name, value in draw(st.dictionaries(names, attribute_values, max_size=8)).items():
        if name not in spec.key_names and name != "_deleted":
            item[name] = value
    return spec, item


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One real cache database for the module's SQLite round trips."""
    c = Cache.open(tmp_path_factory.mktemp("codec") / "cache.db")
    yield c
    c.close()


@given(items())
@settings(max_examples=200, deadline=None)
def test_item_to_row_and_back_is_identical(spec_item):
    """AttributeValue item -> cache row -> item is identical for every type, and no column comes from data."""
    spec, item = spec_item
    row = codec.item_to_row(spec, item)
    assert set(row) == set(spec.column_names)
    assert not any(isinstance(v, Decimal) for v in row.values())
    for name, v in row.items():  # a REAL only where the number's decimal survives the double exactly
        if isinstance(v, float):
            assert spec.column(name) is not None and Decimal(repr(v)) == Decimal(item[name]["N"])
    for col in spec.columns:  # a map, list or set with sets and binary inside stays in its JSON column
        if col.kind == "json" and col.name in item and next(iter(item[col.name])) in ("M", "L", "SS", "NS", "BS"):
            assert row[col.name] is not None and col.name not in json.loads(row[EXTRA_COLUMN] or "{}")
    assert same(codec.row_to_item(spec, row), item)


@given(items())
@settings(max_examples=100, deadline=None)
def test_item_through_sqlite_is_identical(cache, spec_item):
    """An item written to a real cache table and read back through a reader is identical."""
    spec, item = spec_item
    business = item["business_id"]["S"]
    cache.replace_business(business, {spec.name: [item]})
    got = Reader(cache.conn).get(spec, tuple(item[k]["S"] for k in spec.key_names))
    assert got is not None and same(got, item)


@given(attribute_values)
@settings(max_examples=200, deadline=None)
def test_dynamodb_json_round_trip(av):
    """AttributeValue -> DynamoDB JSON text -> AttributeValue is identical (binary as base64, sets canonical)."""
    text = json.dumps(codec.to_ddb_json(av))
    assert codec.canonical(codec.from_ddb_json(json.loads(text))) == codec.canonical(av)


@given(st.lists(st.text(max_size=8), min_size=1, max_size=6, unique=True), st.randoms())
def test_sets_come_out_in_one_canonical_order(members, rnd):
    """A set's member order never changes its DynamoDB JSON or an item's hash."""
    shuffled = list(members)
    rnd.shuffle(shuffled)
    a = {"business_id": {"S": "b"}, "tags": {"SS": members}}
    b = {"business_id": {"S": "b"}, "tags": {"SS": shuffled}}
    assert codec.item_to_ddb_json(a) == codec.item_to_ddb_json(b) and codec.item_hash(a) == codec.item_hash(b)


def test_number_and_binary_sets_sort_by_value():
    """NS sorts numerically (not as text) and BS by bytes."""
    assert codec.canonical({"NS": ["10", "-1.5", "2", "0.25"]}) == {"NS": ["-1.5", "0.25", "2", "10"]}
    assert codec.canonical({"BS": [b"\xff", b"\x00\x01", b"\x00"]}) == {"BS": [b"\x00", b"\x00\x01", b"\xff"]}


@pytest.mark.parametrize("text", ["12345678901234567890123456789012345678", "-12345678901234567890123456789012345678",
                                  "0.12345678901234567890123456789012345678", "9223372036854775807",
                                  "9223372036854775808", "-9223372036854775809",
                                  "1.23456789012345678901234567890123E+100",
                                  "9.9999999999999999999999999999999999999E+125", "1E-130", "-0", "1.50"])
def test_38_digit_numbers_are_byte_exact_everywhere(cache, text):
    """A number keeps its exact text in a number column, in _extra, inside a JSON map, and through SQLite."""
    spec = TABLES["questionnaires"]
    item = {"business_id": {"S": "n38"}, "completeness_score": {"N": text}, "other": {"N": text},
            "data": {"M": {"n": {"N": text}, "l": {"L": [{"N": text}]}}}}
    cache.replace_business("n38", {spec.name: [item]})
    got = Reader(cache.conn).get(spec, ("n38",))
    assert got is not None
    assert got["completeness_score"] == {"N": text} and got["other"] == {"N": text}
    assert got["data"]["M"]["n"] == {"N": text} and got["data"]["M"]["l"]["L"][0] == {"N": text}
    assert codec.from_python(Decimal(text)) == {"N": str(Decimal(text))}


@pytest.mark.parametrize("text", ["123456789012345678901234567890123456789", "1234567890123456789012345678901234567890",
                                  "0.123456789012345678901234567890123456789", "1E+200", "NaN", "Infinity", "", "1e"])
def test_more_than_38_digits_or_non_numbers_are_rejected(text):
    """check_number, validate, DynamoDB JSON parsing and from_python all refuse what DynamoDB cannot hold."""
    with pytest.raises(CodecError):
        codec.check_number(text)
    with pytest.raises(CodecError):
        codec.validate({"N": text})
    with pytest.raises(CodecError):
        codec.from_ddb_json({"N": text})
    with pytest.raises(CodecError):
        codec.validate({"NS": ["1", text]})


def test_python_values_never_go_through_float():
    """A 40-digit int and a float are refused; a 38-digit Decimal stays exact."""
    with pytest.raises(CodecError):
        codec.from_python(10**39 + 1)
    with pytest.raises(CodecError):
        codec.from_python(0.1)
    assert codec.from_python(Decimal("0.10000000000000000000000000000000000001")) == {
        "N": "0.10000000000000000000000000000000000001"}


def test_binary_survives_every_byte_value(cache):
    """All 256 byte values in B and BS come back identical from the cache and from DynamoDB JSON."""
    blob = bytes(range(256))
    item = {"business_id": {"S": "bin"}, "logo": {"B": blob}, "parts": {"BS": [blob, b"", b"\x00"]}}
    cache.replace_business("bin", {"businesses": [item]})
    got = Reader(cache.conn).get(TABLES["businesses"], ("bin",))
    assert got is not None and got["logo"] == {"B": blob} and same(got, item)
    assert codec.to_ddb_json({"B": blob})["B"] == base64.b64encode(blob).decode()


def test_empty_maps_and_lists_stay_empty_not_absent(cache):
    """{} and [] round-trip as empty M and L, in a JSON column and in _extra, never as NULL or missing."""
    spec = TABLES["questionnaires"]
    item = {"business_id": {"S": "empty"}, "data": {"M": {}}, "misc": {"L": []}, "nested": {"M": {"e": {"M": {}}}}}
    cache.replace_business("empty", {spec.name: [item]})
    got = Reader(cache.conn).get(spec, ("empty",))
    assert got == {"business_id": {"S": "empty"}, "data": {"M": {}}, "misc": {"L": []},
                   "nested": {"M": {"e": {"M": {}}}}}


def test_hostile_attribute_names_go_to_extra_and_change_no_query(cache, tmp_path):
    """SQL-ish, 64 KB, NUL, RTL and __proto__ names land in _extra; columns and other rows are untouched."""
    spec = TABLES["businesses"]
    plain = {bid: {"business_id": {"S": bid}, "name": {"S": bid.upper()}} for bid in ("h1", "h2")}
    hostile = {"business_id": {"S": "h3"}, "name": {"S": "H3"},
               **{name: {"S": f"v{i}"} for i, name in enumerate(HOSTILE_NAMES)}}
    row = codec.item_to_row(spec, hostile)
    assert set(json.loads(row[EXTRA_COLUMN])) == set(HOSTILE_NAMES) and set(row) == set(spec.column_names)
    columns_before = [r[1] for r in cache.conn.execute('PRAGMA table_info("businesses")')]
    for bid, item in (*plain.items(), ("h3", hostile)):
        cache.replace_business(bid, {"businesses": [item]})
    reader = Reader(cache.conn)
    assert [r[1] for r in cache.conn.execute('PRAGMA table_info("businesses")')] == columns_before
    assert reader.get(spec, ("h1",)) == plain["h1"] and reader.get(spec, ("h2",)) == plain["h2"]
    got = reader.get(spec, ("h3",))
    assert got is not None and same(got, hostile)
    assert [r["business_id"] for r in reader.rows(spec) if r["business_id"].startswith("h")] == ["h1", "h2", "h3"]


def test_reader_connection_is_read_only(tmp_path):
    """A Reader cannot write: the generation server's view of the cache never changes it."""
    c = Cache.open(tmp_path / "cache.db")
    c.close()
    reader = Reader.open(tmp_path / "cache.db")
    with pytest.raises(sqlite3.OperationalError):
        reader.conn.execute("DELETE FROM businesses")
    reader.close()
