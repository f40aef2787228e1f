"""Health reasons: the same error of every table folded into one line, errors shown while starting."""

from __future__ import annotations

from seo_sync.schema import TABLES
from seo_sync.service.reasons import fold_table_errors, health_reasons, repair_reason

ENDPOINT = "http://127.0.0.1:1 (us-east-1)"


def _unreachable(prefix: str = "seo_") -> dict[str, dict[str, object]]:
    """Every table in error because DynamoDB cannot be reached (the daemon's own wording)."""
    return {name: {"state": "error", "error": f"DescribeTable on {prefix}{name} at {ENDPOINT}: cannot connect "
                                              "(EndpointConnectionError)"} for name in TABLES}


def test_the_same_error_of_every_table_is_one_line() -> None:
    """Five tables failing alike give one short line naming the error once, not a 700-character list."""
    reasons = health_reasons(_unreachable(), prefix="seo_", lag_alarm=60, ready=True, boot_synced=True,
                             had_complete_cache=True)
    assert reasons == [f"all tables: DescribeTable at {ENDPOINT}: cannot connect (EndpointConnectionError)"]
    assert len("; ".join(reasons)) < 120


def test_different_errors_stay_apart_and_a_shared_one_lists_its_tables() -> None:
    """Two tables sharing an error are listed by name; a table with its own error keeps its own line."""
    errors = {"keywords": "GetRecords on seo_keywords: throttled",
              "businesses": "GetRecords on seo_businesses: throttled",
              "questionnaires": "DescribeTable on seo_questionnaires: table missing"}
    assert fold_table_errors(errors, "seo_") == [
        "2 tables (keywords, businesses): GetRecords on <table>: throttled",
        "questionnaires: DescribeTable on seo_questionnaires: table missing"]


def test_while_starting_the_errors_are_shown_after_starting() -> None:
    """Before READY, health says it is starting *and* why: the connection error, folded."""
    tables = _unreachable("prod_")
    tables["keywords"] = {"state": "starting"}
    reasons = health_reasons(tables, prefix="prod_", lag_alarm=60, ready=False, boot_synced=False,
                             had_complete_cache=False)
    assert reasons[0].startswith("starting")
    assert reasons[1] == ("4 tables (businesses, questionnaires, service_areas, prompt_templates): DescribeTable "
                          f"at {ENDPOINT}: cannot connect (EndpointConnectionError)")


def test_lag_and_an_unfinished_boot_sync_are_reasons_and_a_healthy_daemon_has_none() -> None:
    """Lag past the alarm and a boot sync not finished after READY are reasons; otherwise none."""
    ok = {name: {"state": "streaming", "lag_seconds": 0.3} for name in TABLES}
    assert health_reasons(ok, prefix="seo_", lag_alarm=60, ready=True, boot_synced=True, had_complete_cache=True) == []
    ok["keywords"]["lag_seconds"] = 75.0
    assert health_reasons(ok, prefix="seo_", lag_alarm=60, ready=True, boot_synced=False, had_complete_cache=False) == [
        "keywords: lag 75s", "boot sync not finished; cache not initialized"]


def test_pending_repair_reads_are_a_reason_and_one_waiting_over_a_minute_is_named():
    """Any known repair pending keeps health from ok; one waiting past a minute is said to be stuck."""
    assert repair_reason(0, 0.0) == []
    assert repair_reason(2, 5.0) == ["2 repair reads pending (keys the cache may hold differently from DynamoDB)"]
    (line,) = repair_reason(1, 75.0)
    assert "the oldest has waited 75s" in line
