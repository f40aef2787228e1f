"""Kinesis commands for a fleet: `kinesis enable` sets the streams up, `kinesis consumers` manages consumers.

Both run with the operator's AWS permissions (config/iam-kinesis-operator.json), never the
daemon's, and read the `[kinesis]` section of the config (`[source] kind` must be "kinesis").
"""

from __future__ import annotations

import click

from seo_sync.cli.kit import AppContext, pass_app, root
from seo_sync.config import Settings
from seo_sync.errors import ConfigError, ExitCode


def _kinesis_settings(app: AppContext) -> Settings:
    settings = app.settings()
    if settings.source.kind != "kinesis":
        raise ConfigError("[source] kind is not \"kinesis\"",
                          hint="set source.kind = \"kinesis\" and kinesis.stream_arn (or SEO_SYNC_SOURCE__KIND and "
                               "SEO_SYNC_KINESIS__STREAM_ARN), see docs/kinesis.md")
    return settings


@root.group()
def kinesis() -> None:
    """Kinesis Data Streams for DynamoDB, the change feed of a fleet (more than two hosts)."""


@kinesis.command()
@pass_app
def enable(app: AppContext) -> int:
    """Create the configured stream(s) and stream every table's changes to them (µs creation times)."""
    from seo_sync.aws import kinesis_admin
    from seo_sync.aws.kinesis_source import KinesisSource

    report = kinesis_admin.enable(KinesisSource(_kinesis_settings(app)))
    missing = report.get("destinations_unavailable")

    def human() -> None:
        for arn, outcome in report["streams"].items():
            click.echo(f"stream {arn}: {outcome}")
        app.table("streaming destinations", ["table", "stream", "destination"],
                  ((t, v["stream"], v["destination"]) for t, v in report["tables"].items()))
        if missing:
            click.echo(f"Streaming destinations were not enabled: {missing['endpoint']} does not serve "
                       f"{missing['call']} ({missing['why']}). Nothing puts the tables' changes into the "
                       "stream there. To try a fleet locally, `seo-sync demo --fleet N` runs a relay that "
                       "does it in DynamoDB's place; daemons you start yourself need "
                       "kinesis.check_destination = false (see \"Trying a fleet locally\" in the README).")

    app.emit(report, human)
    # The streams are ready but no table streams into them: not the success this command means on AWS.
    return int(ExitCode.FAILURE if missing else ExitCode.OK)


@kinesis.command()
@click.option("--deregister", "name", metavar="NAME", help="Deregister this consumer (a decommissioned host).")
@pass_app
def consumers(app: AppContext, name: str | None) -> int:
    """List the enhanced fan-out consumers of the configured stream(s), or deregister one."""
    from seo_sync.aws import kinesis_admin
    from seo_sync.aws.kinesis_source import KinesisSource

    source = KinesisSource(_kinesis_settings(app))
    if name:
        left = kinesis_admin.deregister(source, name)
        app.emit({"deregistered": name, "streams": left},
                 lambda: click.echo(f"{name}: deregistered from {', '.join(left) or 'no stream (not registered)'}"))
        return int(ExitCode.OK if left else ExitCode.FAILURE)
    found = kinesis_admin.consumers(source)

    def human() -> None:
        for arn, rows in found.items():
            app.table(f"{arn}: {len(rows)} consumers (AWS allows 20, 50 in On-demand Advantage)",
                      ["name", "status", "created"], ((c["name"], c["status"], c["created"]) for c in rows))

    app.emit(found, human)
    return int(ExitCode.OK)
