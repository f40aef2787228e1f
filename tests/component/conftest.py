"""Fixtures shared by the component tests: a fresh cache file and a FakeStreams world."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from seo_sync.cache.writer import Cache
from seo_sync.cli.main import run
from tests.support.fake_streams import FakeWorld, create_tables


@pytest.fixture
def cache(tmp_path) -> Iterator[Cache]:
    """A fresh cache database."""
    c = Cache.open(tmp_path / "cache.db")
    yield c
    c.close()


@pytest.fixture
def world() -> FakeWorld:
    """A FakeStreams world holding the businesses table."""
    w = FakeWorld()
    create_tables(w, ["businesses"])
    return w


@pytest.fixture
def cli(config, capsys):
    """Run the CLI with the test's `config` fixture: returns (exit code, stdout, stderr)."""
    def invoke(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = run(["--config", str(config), *args])
        out, err = capsys.readouterr()
        return code, out, err
    return invoke


@pytest.fixture
def boto(dynamo_endpoint):
    """A plain boto3 DynamoDB client on the moto server (not seo-sync's)."""
    return boto3.client("dynamodb", endpoint_url=dynamo_endpoint, region_name="us-east-1")


@pytest.fixture
def config(tmp_path, dynamo_endpoint) -> Path:
    """A config file pointing at the moto server and an empty data dir."""
    path = tmp_path / "seo-sync.toml"
    path.write_text(f'data_dir = "{tmp_path / "data"}"\n[aws]\nendpoint_url = "{dynamo_endpoint}"\n'
                    'region = "us-east-1"\nmax_attempts = 2\n')
    return path
