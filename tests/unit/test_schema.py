"""The five tables as the platform document declares them, and the id rules for file names."""

from __future__ import annotations

import pytest

from seo_sync.errors import BadInput
from seo_sync.schema import (
    EXTRA_COLUMN,
    TABLES,
    TYPES_COLUMN,
    VERSION_ATTR,
    check_safe_id,
    table,
    table_for_dynamo_name,
)

# The platform document's table schemas: keys, then the other attributes (minus _version/_deleted).
PLATFORM = {
    "businesses": (("business_id",), {"name", "industry", "phone", "email", "website", "created_at", "updated_at"}),
    "questionnaires": (("business_id",), {"data", "completeness_score", "created_at", "updated_at"}),
    "keywords": (("business_id", "keyword_id"), {"slug", "keyword", "language", "search_intent", "created_at"}),
    "service_areas": (("business_id", "area_id"), {"slug", "city", "state", "country", "county", "priority",
                                                  "created_at", "updated_at"}),
    "prompt_templates": (("business_id", "template_id"), {"page_type", "version", "template", "required_variables",
                                                          "optional_variables", "word_count_target", "is_active",
                                                          "created_at"}),
}


def test_the_five_tables_have_the_platform_keys_and_attributes():
    """Each table's keys and typed columns are exactly the platform document's attributes."""
    assert list(TABLES) == list(PLATFORM)
    for name, (keys, attrs) in PLATFORM.items():
        spec = TABLES[name]
        assert spec.key_names == keys
        assert {c.name for c in spec.columns} == attrs


def test_versioned_and_soft_deletable_follow_the_platform_document():
    """businesses and questionnaires carry _version; every table but questionnaires has _deleted."""
    assert {n for n, s in TABLES.items() if s.versioned} == {"businesses", "questionnaires"}
    assert {n for n, s in TABLES.items() if s.soft_deletable} == {"businesses", "keywords", "service_areas",
                                                                    "prompt_templates"}


def test_column_kinds_never_lose_a_number():
    """Number columns have no declared type (no affinity conversion); maps and lists are JSON text."""
    kinds = {(n, c.name): c.kind for n, s in TABLES.items() for c in s.columns}
    assert kinds[("questionnaires", "data")] == "json" and kinds[("prompt_templates", "required_variables")] == "json"
    assert kinds[("service_areas", "priority")] == "number" and kinds[("prompt_templates", "is_active")] == "bool"
    assert all(c.sql_type == "" for s in TABLES.values() for c in s.columns if c.kind == "number")


def test_cache_columns_are_unique_and_end_with_version_extra_and_types():
    """Keys first, then typed columns, then _version, _extra and _types; no name twice."""
    for spec in TABLES.values():
        cols = spec.column_names
        assert len(cols) == len(set(cols))
        assert cols[:len(spec.key_names)] == spec.key_names
        assert cols[-3:] == (VERSION_ATTR, EXTRA_COLUMN, TYPES_COLUMN)


@pytest.mark.parametrize("prefix", ["seo_", "staging_seo_", ""])
def test_dynamodb_names_use_the_prefix(prefix):
    """DynamoDB name = prefix + cache name, and the reverse lookup finds the spec."""
    for name, spec in TABLES.items():
        assert spec.dynamo_name(prefix) == prefix + name
        assert table_for_dynamo_name(prefix + name, prefix) is spec
    assert table_for_dynamo_name("other_table", prefix) is None


def test_table_lookup_by_name_entity_or_plural():
    """`table` accepts the cache name, the entity type, or a plural; anything else is BadInput with the choices."""
    assert table("keywords") is table("keyword") is TABLES["keywords"]
    assert table("service_area") is TABLES["service_areas"] and table("business") is TABLES["businesses"]
    with pytest.raises(BadInput) as exc:
        table("users")
    assert "users" in exc.value.message and "businesses" in (exc.value.hint or "")


def test_key_of_requires_non_empty_string_keys():
    """A missing, empty or non-string key attribute is BadInput naming the table and the attribute."""
    kw = TABLES["keywords"]
    assert kw.key_of({"business_id": "b", "keyword_id": "k#en", "x": 1}) == ("b", "k#en")
    for bad in ({"business_id": "b"}, {"business_id": "b", "keyword_id": ""}, {"business_id": 1, "keyword_id": "k"}):
        with pytest.raises(BadInput, match="keywords"):
            kw.key_of(bad)


@pytest.mark.parametrize("ok", ["acme", "rivera-plumbing", "A_b-9", "x" * 64])
def test_safe_ids_are_accepted(ok):
    """Ids of A-Z a-z 0-9 _ - up to 64 characters may name a file."""
    assert check_safe_id(ok) == ok


@pytest.mark.parametrize("bad", ["../../etc/x", "/etc/passwd", "a\x00b", "x" * 65, "x" * 300, ".", "..", "café",
                                 "a/b", "a\\b", "", " acme", "acme\n", "\uff41\uff43\uff4d\uff45"])
def test_hostile_ids_are_rejected_with_a_short_clear_message(bad):
    """Path traversal, absolute paths, NUL, long, dot, unicode and whitespace ids raise BadInput (exit 65)."""
    with pytest.raises(BadInput) as exc:
        check_safe_id(bad, "business id")
    assert "business id" in exc.value.message and "A-Z a-z 0-9 _ -" in (exc.value.hint or "")
    assert len(exc.value.message) < 140 and exc.value.exit_code == 65


@pytest.mark.parametrize("text", ['{"business_id": "b1", "keyword_id": "roof-repair#en"}',
                                  '{"keyword_id": "roof-repair#en", "business_id": "b1"}',
                                  '["b1", "roof-repair#en"]'])
def test_refresh_key_is_a_json_object_of_the_key_attributes_or_a_list_in_key_order(text):
    """The object (any attribute order) and the list give the same key tuple."""
    assert TABLES["keywords"].key_from_json(text) == ("b1", "roof-repair#en")


@pytest.mark.parametrize(("text", "words"), [("b1", "not JSON"), ('{"business_id": "b1"}', "the table's key is"),
                                             ('{"business_id": "b1", "keyword_id": "k", "x": "y"}', "the table's key"),
                                             ('["b1"]', "1 values"), ('"b1"', "object or list"),
                                             ('{"business_id": "b1", "keyword_id": 7}', "non-empty string"),
                                             ('["b1", ""]', "non-empty string")])
def test_a_bad_refresh_key_is_bad_input_with_an_example(text, words):
    """Not JSON, other attributes, wrong arity or non-strings: BadInput (exit 65) whose hint shows a key."""
    with pytest.raises(BadInput) as caught:
        TABLES["keywords"].key_from_json(text)
    assert words in caught.value.message and '"keyword_id": "roof-repair#en"' in (caught.value.hint or "")
    assert caught.value.exit_code == 65
