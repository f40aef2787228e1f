"""The fast response path's self-check (aws/raw_check.py): on with a botocore it agrees with, off otherwise.

An incompatible botocore is simulated two ways: one whose `before-parse` event no longer passes
`customized_response_dict`, and one whose parser reads a timestamp differently from what the fast
path does. Either way a client made afterwards keeps botocore's parser, with one warning and the
reason in `raw_check.state()` (the status document's `fast_responses`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.hooks
import botocore.parsers
import pytest
from structlog.testing import capture_logs

from seo_sync.aws import raw_check, raw_responses
from seo_sync.aws.tables import Source
from tests.support.settings import make_settings


@pytest.fixture(autouse=True)
def fresh_check() -> Iterator[None]:
    """Each test checks from scratch, and leaves no result behind for the next module."""
    raw_check.forget()
    yield
    raw_check.forget()


def _hooked(client: Any) -> bool:
    """True when the fast path's handler is registered on `client`'s before-parse event."""
    service = client.meta.service_model.service_id.hyphenize()
    op = "Scan" if service == "dynamodb" else "GetRecords"
    handlers = client.meta.events._emitter._handlers.prefix_search(f"before-parse.{service}.{op}")
    return raw_responses._before_parse in handlers


def _source(tmp_path: Path) -> Source:
    return Source(make_settings(tmp_path, "http://127.0.0.1:9").aws, "seo_")


def test_the_installed_botocore_passes_and_clients_get_the_fast_path(tmp_path: Path) -> None:
    """With the botocore CI installs, both canned pages agree: the clients are hooked and state says on."""
    with capture_logs() as logs:
        src = _source(tmp_path)
    assert _hooked(src.ddb) and _hooked(src.streams.client)
    assert raw_check.state()["on"] is True and raw_check.state()["reason"] is None
    assert not [e for e in logs if e["event"] == "fast_response_path_off"]


def test_a_botocore_without_the_hook_argument_falls_back_with_one_warning(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """before-parse without customized_response_dict: no client hooked, one warning, the reason in state."""
    emit = botocore.hooks.HierarchicalEmitter.emit

    def without_argument(self: Any, event_name: str, **kwargs: Any) -> Any:
        if event_name.startswith("before-parse."):
            kwargs.pop("customized_response_dict", None)
        return emit(self, event_name, **kwargs)

    monkeypatch.setattr(botocore.hooks.HierarchicalEmitter, "emit", without_argument)
    with capture_logs() as logs:
        first, second = _source(tmp_path), _source(tmp_path)
    assert not any(_hooked(c) for c in (first.ddb, first.streams.client, second.ddb, second.streams.client))
    warnings = [e for e in logs if e["event"] == "fast_response_path_off"]
    assert len(warnings) == 1 and warnings[0]["log_level"] == "warning", logs
    state = raw_check.state()
    assert state["on"] is False and "customized_response_dict" in state["reason"]
    assert "Scan" in state["reason"] and "GetRecords" in state["reason"]


def test_a_botocore_that_parses_differently_falls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore's parser reading timestamps unlike the fast path: GetRecords falls back, named in the reason."""
    monkeypatch.setattr(botocore.parsers, "DEFAULT_TIMESTAMP_PARSER", lambda value: f"ts:{value}")
    with capture_logs() as logs:
        src = _source(tmp_path)
    assert not _hooked(src.streams.client)
    state = raw_check.state()
    assert state["on"] is False and "GetRecords" in state["reason"] and "differs" in state["reason"], state
    assert len([e for e in logs if e["event"] == "fast_response_path_off"]) == 1


def test_a_failing_check_means_no_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """An exception inside the check (here: the fast path finds nothing to hook) turns it off, saying why."""
    monkeypatch.setattr(raw_responses, "install", lambda client: False)
    reason = raw_check.fast_path_ok("dynamodb")
    assert reason is not None and "self-check failed" in reason and "nothing to hook" in reason


def test_test_doubles_and_other_services_are_left_alone() -> None:
    """A client-shaped double is not hooked and not checked; a service without canned pages checks out."""
    assert raw_check.install_checked(object()) is False
    assert raw_check.state()["checked"] is False
    assert raw_check.fast_path_ok("kinesis") is None
