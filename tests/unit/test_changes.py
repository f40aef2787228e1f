"""changes.py: a stream record becomes an upsert, a delete, or a dead letter with a reason; never raises."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from seo_sync.changes import TTL_PRINCIPAL, collapse, created_at_of, to_change
from seo_sync.schema import BUSINESSES, KEYWORDS


def rec(event: str, keys: dict | None = None, new: dict | None = None, old: dict | None = None,
        seq: str = "1000000000000000000100", **extra) -> dict:
    dyn: dict = {"SequenceNumber": seq, "ApproximateCreationDateTime": datetime(2026, 1, 1, tzinfo=UTC)}
    if keys is not None:
        dyn["Keys"] = keys
    if new is not None:
        dyn["NewImage"] = new
    if old is not None:
        dyn["OldImage"] = old
    return {"eventName": event, "dynamodb": dyn, **extra}


K = {"business_id": {"S": "b1"}}


def item(version: int | None = None, **attrs) -> dict:
    out = {"business_id": {"S": "b1"}, "name": {"S": "Acme"}, **attrs}
    if version is not None:
        out["_version"] = {"N": str(version)}
    return out


def test_insert_and_modify_are_upserts_carrying_version():
    """INSERT and MODIFY with a new image become upserts with the image's _version."""
    for ev in ("INSERT", "MODIFY"):
        c = to_change(BUSINESSES, rec(ev, K, item(3)))
        assert (c.kind, c.key, c.version, c.event) == ("upsert", ("b1",), 3, ev)
        assert c.item == item(3)


def test_soft_delete_is_a_delete_that_is_not_hard():
    """MODIFY with _deleted true deletes the row (soft delete) and keeps the version."""
    c = to_change(BUSINESSES, rec("MODIFY", K, item(4, _deleted={"BOOL": True})))
    assert (c.kind, c.hard, c.ttl, c.version) == ("delete", False, False, 4)


def test_hard_delete_takes_version_from_old_image():
    """REMOVE is a hard delete versioned by its old image; without one the version is None."""
    c = to_change(BUSINESSES, rec("REMOVE", K, old=item(7)))
    assert (c.kind, c.hard, c.version, c.ttl) == ("delete", True, 7, False)
    assert to_change(BUSINESSES, rec("REMOVE", K)).version is None


def test_ttl_delete_is_told_apart():
    """A REMOVE by DynamoDB's TTL service principal is flagged ttl."""
    r = rec("REMOVE", K, old=item(1), userIdentity={"type": "Service", "principalId": TTL_PRINCIPAL})
    assert to_change(BUSINESSES, r).ttl is True


def test_malformed_records_are_dead_letters_with_reasons():
    """Unknown events, missing keys, wrong keys, no NewImage and >38-digit numbers are dead."""
    cases = {
        "unknown eventName": rec("TRUNCATE", K, item()),
        "no Keys": rec("INSERT", None, item()),
        "does not match": rec("INSERT", {"other": {"S": "x"}}, item()),
        "no NewImage": rec("INSERT", K),
        "38 digits": rec("INSERT", K, item(score={"N": "1" * 40})),
        "differs": rec("INSERT", K, {**item(), "business_id": {"S": "b2"}}),
    }
    for words, r in cases.items():
        c = to_change(BUSINESSES, r)
        assert c.kind == "dead", words
        assert words.lower() in (c.reason or "").lower(), (words, c.reason)
        assert c.raw and c.seq == "1000000000000000000100"


def test_a_string_or_decimal_version_is_valid_data_without_a_version():
    """An item whose _version is S or a decimal N is an upsert (or delete) carrying no version, never dead."""
    for odd in ({"S": "7"}, {"S": "seven"}, {"N": "2.5"}, {"N": "99999999999999999999"}):
        c = to_change(BUSINESSES, rec("MODIFY", K, item(_version=odd)))
        assert (c.kind, c.version) == ("upsert", None), odd
        assert c.row is not None and '"_version"' in c.row[-2]  # kept exact in _extra
        gone = to_change(BUSINESSES, rec("REMOVE", K, old=item(_version=odd)))
        assert (gone.kind, gone.version) == ("delete", None), odd
        soft = to_change(BUSINESSES, rec("MODIFY", K, item(_version=odd, _deleted={"BOOL": True})))
        assert (soft.kind, soft.version) == ("delete", None), odd


def test_key_must_match_composite_schema():
    """A keywords record needs both business_id and keyword_id as non-empty strings."""
    c = to_change(KEYWORDS, rec("INSERT", K, item()))
    assert c.kind == "dead"
    keys = {"business_id": {"S": "b1"}, "keyword_id": {"S": "k#en"}}
    ok = to_change(KEYWORDS, rec("INSERT", keys, {**keys, "keyword": {"S": "x"}}))
    assert ok.kind == "upsert" and ok.key == ("b1", "k#en")


def test_created_at_accepts_datetime_seconds_and_moto_milliseconds():
    """ApproximateCreationDateTime as datetime, whole seconds, or moto's milliseconds, all as seconds."""
    assert created_at_of({"dynamodb": {"ApproximateCreationDateTime": 1_700_000_000}}) == 1_700_000_000.0
    assert created_at_of({"dynamodb": {"ApproximateCreationDateTime": 1_700_000_000_500}}) == 1_700_000_000.5
    dt = datetime(2026, 1, 1, tzinfo=UTC)
    assert created_at_of({"dynamodb": {"ApproximateCreationDateTime": dt}}) == dt.timestamp()
    assert created_at_of({}) is None


def test_collapse_keeps_last_change_per_key_and_every_dead_letter():
    """collapse keeps stream order, the last change of each key, and all dead letters."""
    a1 = to_change(BUSINESSES, rec("INSERT", K, item(1), seq="1"))
    dead = to_change(BUSINESSES, rec("BOGUS", K, item(), seq="2"))
    a2 = to_change(BUSINESSES, rec("MODIFY", K, item(2), seq="3"))
    kb = {"business_id": {"S": "b2"}}
    b1 = to_change(BUSINESSES, rec("INSERT", kb, {**item(1), "business_id": {"S": "b2"}}, seq="4"))
    assert [c.seq for c in collapse([a1, dead, a2, b1])] == ["2", "3", "4"]


json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5), st.binary(max_size=5))
json_any = st.recursive(json_leaf, lambda kids: st.one_of(st.lists(kids, max_size=3),
                                                          st.dictionaries(st.text(max_size=4), kids, max_size=3)),
                        max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(event=st.sampled_from(["INSERT", "MODIFY", "REMOVE", "X", None]), keys=json_any, new=json_any, old=json_any)
def test_fuzzed_records_never_raise(event, keys, new, old):
    """Any shape of record yields a Change; a non-dead one always has a well-formed key."""
    r = {"eventName": event, "dynamodb": {"Keys": keys, "NewImage": new, "OldImage": old, "SequenceNumber": "5"}}
    c = to_change(BUSINESSES, r)
    assert c.kind in ("upsert", "delete", "dead")
    if c.kind != "dead":
        assert len(c.key) == 1 and isinstance(c.key[0], str) and c.key[0]
