"""Settings: defaults < TOML file < SEO_SYNC_* environment < flags, validated by pydantic.

Nothing here reads the environment at import: `load_settings` takes the environment as an
argument, so tests and the CLI say exactly what they pass. Unknown keys are errors.
"""

from __future__ import annotations

import difflib
import os
import re
import socket
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from seo_sync.config_env import (
    ENV_PREFIX,
    config_path_from,
    deep_merge,
    env_origins,
    from_env,
    from_env_file,
)
from seo_sync.errors import ConfigError
from seo_sync.logs import mask_url
from seo_sync.schema import PREFIX_RE, TABLES

# The unit's TasksMax=64: the threads the settings allow must fit under it, with a margin.
TASKS_BUDGET = 56
# main, writer, the socket's selector, fast lane (4) and idle lane (1), scheduler + 2 workers, a one-off job
FIXED_THREADS = 13
KINESIS_ARN_RE = re.compile(r"arn:aws[a-z-]*:kinesis:[a-z0-9-]+:\d{12}:stream/[A-Za-z0-9_.-]{1,128}")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AwsSettings(_Section):
    """How to reach DynamoDB. Everything left unset comes from boto3's own configuration chain."""

    region: str | None = None
    endpoint_url: str | None = None
    profile: str | None = None
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None
    session_token: SecretStr | None = None
    connect_timeout: float = Field(3.0, gt=0, le=30)
    read_timeout: float = Field(10.0, gt=0, le=60)
    max_attempts: int = Field(3, ge=1, le=10)


class StreamSettings(_Section):
    """Tailing DynamoDB Streams."""

    idle_poll_interval: float = Field(1.0, ge=0.05, le=60)
    max_polls_per_second: float = Field(4.0, gt=0, le=5)
    get_records_limit: int = Field(1000, ge=1, le=1000)
    max_backoff: float = Field(300.0, ge=1)
    checkpoint_max_age_hours: float = Field(24.0, gt=0)
    lag_alarm: float = Field(60.0, gt=0, description="seconds of lag before the daemon is degraded")
    describe_interval: float = Field(30.0, ge=1, le=3600,
                                     description="seconds between DescribeTable + DescribeStream per table")


class SourceSettings(_Section):
    """Which change feed the daemon reads: DynamoDB Streams (one or two hosts) or Kinesis (a fleet)."""

    kind: Literal["dynamodb-streams", "kinesis"] = "dynamodb-streams"


class KinesisSettings(_Section):
    """Kinesis Data Streams for DynamoDB, read when `[source] kind = "kinesis"`."""

    mode: Literal["polling", "efo"] = "polling"
    stream_arn: str | None = Field(None, description="one stream that carries every table's changes")
    stream_arns: dict[str, str] = Field(default_factory=dict, description="table name -> its stream's ARN")
    consumer_name: str | None = Field(None, description="this host's enhanced fan-out consumer (default: host name)")
    polls_per_second: float = Field(1.0, gt=0, le=2, description="GetRecords calls a shard a second, this host")
    max_lateness: float = Field(2.0, ge=0, le=60, description="seconds a change may take to arrive in the stream: "
                                                             "a full sync's capture reads this far past its Scan")
    check_destination: bool = Field(True, description="check each table streams to its ARN (DescribeKinesis"
                                                      "StreamingDestination); off only where that call is missing")

    @field_validator("stream_arn")
    @classmethod
    def _arn_ok(cls, v: str | None) -> str | None:
        if v is not None and not KINESIS_ARN_RE.fullmatch(v):
            raise ValueError("is not a Kinesis stream ARN (arn:aws:kinesis:REGION:ACCOUNT:stream/NAME)")
        return v

    @field_validator("stream_arns")
    @classmethod
    def _arns_ok(cls, v: dict[str, str]) -> dict[str, str]:
        for name, arn in v.items():
            if name not in TABLES:
                raise ValueError(f"names no table: {name!r} (one of {', '.join(TABLES)})")
            if not KINESIS_ARN_RE.fullmatch(arn):
                raise ValueError(f"{name} = {arn!r} is not a Kinesis stream ARN")
        return v

    def arn_for(self, table: str) -> str | None:
        """The stream that carries `table`'s changes: its own, else the shared one."""
        return self.stream_arns.get(table) or self.stream_arn

    def consumer(self) -> str:
        """This host's consumer name."""
        return self.consumer_name or socket.gethostname()


class FullSyncSettings(_Section):
    """Full sync: parallel Scan into a shadow table."""

    scan_segments: int = Field(4, ge=1, le=64)
    batch_size: int = Field(500, ge=1, le=10000)
    scan_page_bytes: int = Field(256 * 1024, ge=4096, le=1_048_576,
                                 description="target JSON bytes of one Scan page (bounds memory per segment)")
    spill_threshold: int = Field(5000, ge=100, description="stream records held in memory before spilling")


class ServiceSettings(_Section):
    """The daemon process."""

    boot_ready_timeout: float = Field(30.0, ge=0)
    stop_timeout: float = Field(20.0, gt=0)
    socket_group: str | None = None
    socket_timeout: float = Field(1.0, gt=0, le=10)
    socket_max_clients: int = Field(16, ge=1, le=256)
    busy_timeout_ms: int = Field(5000, ge=0, le=60000)
    debug_commands: bool = Field(False, description="test-only socket commands that simulate hangs")


class ControlSettings(_Section):
    """Budgets on the socket commands that cost DynamoDB reads or full syncs (see the example config)."""

    refresh_reads_per_second: float = Field(20.0, gt=0, le=10000)
    refresh_burst: int = Field(100, ge=1, le=100000)
    business_refresh_reads_per_second: float = Field(20.0, gt=0, le=10000)
    business_refresh_burst: int = Field(50, ge=5, le=100000)
    min_resync_interval: float = Field(60.0, ge=0, le=86400)


class MaintenanceSettings(_Section):
    """Scheduled jobs (cron expressions in the daemon's local time zone)."""

    prune_backups_cron: str = "17 3 * * *"
    reset_delete_counters_cron: str = "0 * * * *"
    expire_tombstones_cron: str = "*/30 * * * *"
    wal_checkpoint_cron: str = "*/5 * * * *"
    quick_check_cron: str = "43 4 * * *"
    tombstone_ttl_hours: float = Field(48.0, gt=0)
    trim_changes_cron: str = "*/5 * * * *"
    change_log_max_age_hours: float = Field(24.0, gt=0)
    change_log_max_rows: int = Field(1_000_000, ge=1000)
    change_log_diff_limit: int = Field(10_000, ge=0)


class VerifySettings(_Section):
    """Repair reads and anti-entropy: how the cache is checked against DynamoDB.

    The defaults cost little: a rolling verify reads each table once per period with an eventually
    consistent Scan (half a read unit per 4 KB). Five tables of a few thousand items of ~1 KB are
    about 25 MB a pass, ~3,100 read units; four passes a day for 30 days are ~375,000 read units,
    under $0.10 a month at on-demand prices ($0.125-0.25 per million). Repair reads are consistent
    GetItems, one read unit each, and only happen on a doubt.
    """

    repair_reads_per_second: float = Field(10.0, gt=0, le=1000)
    repair_burst: int = Field(20, ge=1, le=1000)
    anti_entropy_period_hours: float = Field(6.0, ge=0, description="0 switches the rolling verify off")
    anti_entropy_items_per_second: float = Field(20.0, gt=0, le=10000)
    anti_entropy_tick_seconds: float = Field(5.0, ge=0.05, le=3600)


class ProtectionSettings(_Section):
    """Delete protection."""

    max_deletes_per_hour: int = Field(10, ge=0)
    backup_retention_days: float = Field(30.0, gt=0)


class Settings(_Section):
    """Every setting of seo-sync; see config/seo-sync.example.toml for one paragraph each."""

    data_dir: Path = Path("data")
    table_prefix: str = "seo_"
    socket: Path | None = None
    log_format: Literal["json", "console", "auto"] = "auto"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    use_dynamodb: bool = True
    aws: AwsSettings = AwsSettings()
    stream: StreamSettings = StreamSettings()
    source: SourceSettings = SourceSettings()
    kinesis: KinesisSettings = KinesisSettings()
    fullsync: FullSyncSettings = FullSyncSettings()
    service: ServiceSettings = ServiceSettings()
    control: ControlSettings = ControlSettings()
    maintenance: MaintenanceSettings = MaintenanceSettings()
    protection: ProtectionSettings = ProtectionSettings()
    verify: VerifySettings = VerifySettings()

    @field_validator("table_prefix")
    @classmethod
    def _prefix_ok(cls, v: str) -> str:
        if not PREFIX_RE.fullmatch(v):
            raise ValueError("may hold only A-Z a-z 0-9 _ . - (at most 64)")
        return v

    @model_validator(mode="after")
    def _kinesis_complete(self) -> Settings:
        if self.source.kind == "kinesis":
            missing = [t for t in TABLES if not self.kinesis.arn_for(t)]
            if missing:
                raise ValueError(f"source.kind is kinesis but no stream ARN for {', '.join(missing)}: set "
                                 "kinesis.stream_arn, or kinesis.stream_arns for each table")
        return self

    @model_validator(mode="after")
    def _threads_fit(self) -> Settings:
        if self.peak_threads() > TASKS_BUDGET:
            raise ValueError(f"service.socket_max_clients ({self.service.socket_max_clients}) and fullsync.scan_"
                             f"segments ({self.fullsync.scan_segments}) let the daemon run {self.peak_threads()} "
                             f"threads, over {TASKS_BUDGET} (the unit's TasksMax=64 less a margin): lower one")
        return self

    def peak_threads(self) -> int:
        """The most threads at once: the fixed ones, a poller and a capture a table, the socket's pool, one Scan."""
        return FIXED_THREADS + len(TABLES) * 2 + self.service.socket_max_clients + self.fullsync.scan_segments

    @property
    def cache_path(self) -> Path:
        """The cache database file."""
        return self.data_dir / "cache.db"

    @property
    def protection_path(self) -> Path:
        """The protection ledger database file."""
        return self.data_dir / "protection.db"

    @property
    def backup_dir(self) -> Path:
        """Where delete backups are written."""
        return self.data_dir / "backups"

    @property
    def socket_path(self) -> Path:
        """The status socket path (default: inside the data directory)."""
        return self.socket if self.socket is not None else self.data_dir / "seo-sync.sock"

    def redacted(self) -> dict[str, Any]:
        """The settings as plain data with every secret masked (credentials inside the endpoint URL too)."""
        data = self.model_dump(mode="json")  # SecretStr dumps as '**********'
        data["aws"]["endpoint_url"] = mask_url(self.aws.endpoint_url)
        return data


def _known_keys(parent: tuple[str | int, ...]) -> list[str]:
    """The setting names valid at `parent` (() is the top level, ("stream",) that section)."""
    model: type[BaseModel] = Settings
    for part in parent:
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field is not None else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


def _did_you_mean(loc: tuple[str | int, ...], from_env: str | None) -> str:
    """', did you mean …?' for an unknown key close to a known one ('' when none is close)."""
    close = difflib.get_close_matches(str(loc[-1]), _known_keys(loc[:-1]), n=1, cutoff=0.6)
    if not close:
        return ""
    if from_env is not None:
        parts = [str(p).upper() for p in (*loc[:-1], close[0])]
        return f"; did you mean {ENV_PREFIX}{'__'.join(parts)}?"
    return f"; did you mean {'.'.join(str(p) for p in (*loc[:-1], close[0]))!r}?"


def _describe(err: ValidationError, origins: Mapping[tuple[str, ...], str] | None = None) -> str:
    lines = []
    for e in err.errors():
        loc = tuple(e["loc"])
        where = ".".join(str(p) for p in loc)
        value = e.get("input")
        shown = "(hidden)" if any(s in where for s in ("secret", "token", "key_id")) else repr(value)[:80]
        env_name = (origins or {}).get(tuple(str(p) for p in loc))
        if env_name is not None:
            where = f"{where} (environment variable {env_name})"
        if e["type"] == "extra_forbidden":
            lines.append(f"unknown setting {where}{_did_you_mean(loc, env_name)}")
        else:
            lines.append(f"{where} = {shown}: {e['msg']}")
    return "; ".join(lines)


def load_settings(
    path: Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    env_file: Path | None = None,
) -> Settings:
    """Build Settings from the layers; raises ConfigError naming the field, the value and why."""
    env = dict(os.environ) if env is None else env
    data: dict[str, Any] = {}
    file_path = config_path_from(env, path)
    if file_path is not None:
        try:
            with open(file_path, "rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"config file {file_path} does not exist",
                              hint="pass --config PATH or copy config/seo-sync.example.toml") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"config file {file_path} is not valid TOML: {e}") from None
        except OSError as e:
            raise ConfigError(f"cannot read config file {file_path}: {e.strerror}") from None
    if env_file is not None:
        data = deep_merge(data, from_env_file(env_file))
    if env.get("AWS_REGION") and not env.get("AWS_DEFAULT_REGION"):
        # boto3 itself only reads AWS_DEFAULT_REGION; the platform's .env uses AWS_REGION.
        data = deep_merge({"aws": {"region": env["AWS_REGION"]}}, data)
    data = deep_merge(data, from_env(env))
    data = deep_merge(data, {k: v for k, v in (overrides or {}).items() if v is not None})
    try:
        return Settings.model_validate(data)
    except ValidationError as e:
        where = f" (from {file_path})" if file_path else ""
        raise ConfigError(f"invalid configuration{where}: {_describe(e, env_origins(env))}",
                          hint="fix the value, or run `seo-sync check-config`") from None
