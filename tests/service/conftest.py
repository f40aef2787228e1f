"""Fixtures for service tests: a seeded moto server and a factory of daemon processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.harness import Daemon, seed


@pytest.fixture
def seeded(dynamo_endpoint: str, tmp_path: Path):
    """A clean moto server with the five tables and a small data set; returns the Source."""
    return seed(dynamo_endpoint, tmp_path / "seed")


@pytest.fixture
def start_daemon(dynamo_endpoint: str, tmp_path: Path) -> Iterator:
    """start_daemon(**kwargs) -> Daemon; every daemon started is stopped at the end of the test."""
    started: list[Daemon] = []

    def start(endpoint: str | None = None, data_dir: Path | None = None, **kwargs) -> Daemon:
        d = Daemon(endpoint or dynamo_endpoint, data_dir or tmp_path / "data", **kwargs)
        started.append(d)
        return d

    yield start
    for d in started:
        d.close()
