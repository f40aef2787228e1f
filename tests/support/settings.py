"""Settings for a test: its own data dir, an optional moto endpoint, nothing from the environment."""

from __future__ import annotations

from pathlib import Path

from seo_sync.config import Settings, load_settings


def make_settings(data_dir: Path, endpoint: str | None = None, **overrides: object) -> Settings:
    """Settings for a test: its own data dir, the moto endpoint, nothing from the environment."""
    aws = {"endpoint_url": endpoint, "region": "us-east-1"} if endpoint else {"region": "us-east-1"}
    # Tests ask for resyncs one after another: no floor between them unless a test sets one.
    data = {"data_dir": data_dir, "aws": aws, "control": {"min_resync_interval": 0.0}, **overrides}
    return load_settings(path=None, env={}, overrides=data)
