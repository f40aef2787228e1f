"""Shared fixtures: the embedded moto server, settings pointed at it, and helpers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.config import Settings, load_settings
from daemon.demo import FAKE_CREDENTIALS, EmbeddedDynamo

for _k, _v in FAKE_CREDENTIALS.items():
    os.environ[_k] = _v
os.environ["AWS_ACCOUNT_ID_ENDPOINT_MODE"] = "disabled"
for _k in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "SEO_SYNC_CONFIG"):
    os.environ.pop(_k, None)


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


def make_settings(data_dir: Path, endpoint: str | None = None, **overrides: object) -> Settings:
    """Settings for a test: its own data dir, the moto endpoint, nothing from the environment."""
    aws = {"endpoint_url": endpoint, "region": "us-east-1"} if endpoint else {"region": "us-east-1"}
    data = {"data_dir": data_dir, "aws": aws, **overrides}
    return load_settings(path=None, env={}, overrides=data)


@pytest.fixture
def settings(tmp_path: Path, dynamo_endpoint: str) -> Settings:
    """Settings for a clean moto server and an empty data dir."""
    return make_settings(tmp_path / "data", dynamo_endpoint)
