"""Shared fixtures: the embedded moto server and settings pointed at it (helpers live in tests/support)."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from seo_sync.config import Settings
from tests.support.moto_server import FAKE_CREDENTIALS, EmbeddedDynamo
from tests.support.settings import make_settings

# The default run (CI) is deterministic and never fails for speed on a loaded machine: property
# tests replay the same examples each run, without per-example deadlines or the too-slow check.
# HYPOTHESIS_PROFILE=explore searches new random examples (run it by hand, e.g. after a codec change).
hypothesis_settings.register_profile("repeatable", deadline=None, derandomize=True,
                                     suppress_health_check=[HealthCheck.too_slow])
hypothesis_settings.register_profile("explore", deadline=None, max_examples=2000,
                                     suppress_health_check=[HealthCheck.too_slow])
# A short run of the same property tests (tests/repo/test_botocore_newest.py: the newest botocore).
hypothesis_settings.register_profile("contract", deadline=None, derandomize=True, max_examples=25,
                                     suppress_health_check=[HealthCheck.too_slow])
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))

for _k, _v in FAKE_CREDENTIALS.items():
    os.environ[_k] = _v
os.environ["AWS_ACCOUNT_ID_ENDPOINT_MODE"] = "disabled"
for _k in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "SEO_SYNC_CONFIG"):
    os.environ.pop(_k, None)

# The tests press Ctrl-C the way a terminal does: SIGINT to a process in the foreground. A shell
# without job control that starts the run in the background (`make test &` in a script) sets SIGINT
# to "ignore", every child inherits that across exec, and Python then installs no KeyboardInterrupt
# at all. A handler, unlike an ignore, is reset to the default at exec: with one here, every process
# the tests start gets SIGINT as it would from a terminal, however the run itself was started.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests marked slow run first: spread over the cores (`make test` uses pytest-xdist), a
    minute-long test taken last would leave the other workers idle while it finishes."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[EmbeddedDynamo]:
    """One moto HTTP server for the whole run (reset per test by `dynamo_endpoint`)."""
    server = EmbeddedDynamo().start()
    yield server
    server.stop()


@pytest.fixture
def dynamo_endpoint(moto_server: EmbeddedDynamo) -> str:
    """A clean moto server's endpoint URL."""
    moto_server.reset()
    return moto_server.endpoint


@pytest.fixture
def settings(tmp_path: Path, dynamo_endpoint: str) -> Settings:
    """Settings for a clean moto server and an empty data dir."""
    return make_settings(tmp_path / "data", dynamo_endpoint)
