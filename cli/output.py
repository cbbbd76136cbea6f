"""What the commands print: tables for people, JSON for scripts (`--json`). Times are UTC and
say so: `2025-01-31 12:00:00 UTC` in tables, ISO 8601 with a `Z` in JSON."""

from __future__ import annotations

import json
from dataclasses import fields, is_dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any

import click

from multinode import Attempt, FunctionOptions
from multinode.admin import (
    FunctionSpec,
    InvocationDescription,
    ProjectDescription,
    ProjectListing,
    ServiceDescription,
    VersionManifest,
)

# A moment: a datetime, or epoch seconds (how a VersionManifest keeps its creation time).
Moment = datetime | float | None


def _datetime(moment: datetime | float) -> datetime:
    return moment if isinstance(moment, datetime) else datetime.fromtimestamp(moment, tz=UTC)


def format_utc(moment: Moment) -> str:
    """`2025-01-31 12:00:00 UTC`, or `-`."""
    if moment is None:
        return "-"
    return _datetime(moment).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def iso_utc(moment: Moment) -> str | None:
    """ISO 8601 with a `Z`: `2025-01-31T12:00:00.123Z`."""
    if moment is None:
        return None
    return _datetime(moment).astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def options_json(options: FunctionOptions) -> dict[str, Any]:
    return {
        "cpu": options.cpu,
        "memory": options.memory,
        "memory_mib": options.memory_mib,
        "timeout_seconds": options.timeout_seconds,
        "max_concurrency": options.max_concurrency,
        "max_retries": options.max_retries,
    }


def _attempt_json(attempt: Attempt) -> dict[str, Any]:
    return {
        "number": attempt.number,
        "outcome": attempt.outcome,
        "started_at": iso_utc(attempt.started_at),
        "ended_at": iso_utc(attempt.ended_at),
        "exit_code": attempt.exit_code,
        "logs_at": attempt.logs_at,
        "error": to_json(attempt.error),
    }


def _invocation_json(described: InvocationDescription) -> dict[str, Any]:
    invocation = described.invocation
    return {
        "invocation_id": invocation.invocation_id,
        "project_name": invocation.project_name,
        "function_name": invocation.function_name,
        "version_id": invocation.version_id,
        "status": invocation.status.value,
        "terminated": invocation.terminated,
        "created_at": iso_utc(invocation.created_at),
        "ended_at": iso_utc(invocation.ended_at),
        "parent_invocation_id": invocation.parent_invocation_id,
        "children": to_json(described.children),
        "attempts": [_attempt_json(a) for a in described.attempts],
        "num_failed_attempts": invocation.num_failed_attempts,
        "error": to_json(invocation.error_details),
        "status_history": [{"status": status.value, "at": iso_utc(at)} for status, at in invocation.status_history],
        "web_ui_url": described.web_ui_url,
    }


def to_json(value: Any) -> Any:
    """A JSON-ready form of what `multinode.admin` returns: times as ISO 8601 UTC (`Z`)."""
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, VersionManifest):
        return {
            "project_name": value.project_name,
            "version_id": value.version_id,
            "created_at": iso_utc(value.created_at),
            "package_sha256": value.package.sha256,
            "requirements_sha256": value.requirements_sha256,
            "functions": [to_json(spec) for spec in value.functions],
            "services": [
                {"name": spec.name, "kind": spec.kind, "port": spec.port, "cpu": spec.cpu,
                 "memory": spec.memory, "memory_mib": spec.memory_mib}
                for spec in value.services
            ],
        }
    if isinstance(value, FunctionSpec):
        return {"name": value.name, "is_generator": value.is_generator, "kind": value.function_kind.value,
                **options_json(value.options)}
    if isinstance(value, ProjectListing):
        return {
            "project_name": value.project_name,
            "latest_version_id": value.latest_version_id,
            "latest_version_created_at": iso_utc(value.latest_version.created_at),
            "created_at": iso_utc(value.created_at),
            "closing": value.closing,
            "functions": [spec.name for spec in value.latest_version.functions],
        }
    if isinstance(value, ProjectDescription):
        return {
            "project_name": value.project_name,
            "created_at": iso_utc(value.created_at),
            "closing": value.closing,
            "latest_version_id": value.latest.version_id,
            "versions": [to_json(v) for v in value.versions],
            "web_ui_url": value.web_ui_url,
        }
    if isinstance(value, InvocationDescription):
        return _invocation_json(value)
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    return value


def echo_json(value: Any) -> None:
    click.echo(json.dumps(to_json(value), indent=2, default=repr))


def table(rows: list[tuple[str, ...]]) -> None:
    """Columns as wide as their widest cell, two spaces apart; the first row is the header."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def functions_table(manifest: VersionManifest) -> None:
    rows: list[tuple[str, ...]] = [("FUNCTION", "KIND", "CPU", "MEMORY", "TIMEOUT", "MAX_CONCURRENCY", "MAX_RETRIES")]
    for spec in manifest.functions:
        o = spec.options
        rows.append((spec.name, spec.function_kind.value, f"{o.cpu:g}",
                     o.memory, f"{o.timeout_seconds:g} s", str(o.max_concurrency), str(o.max_retries)))
    if len(rows) > 1:
        table(rows)
    if manifest.services:
        services: list[tuple[str, ...]] = [("SERVICE", "KIND", "PORT", "CPU", "MEMORY")]
        for service in manifest.services:
            services.append((service.name, service.kind, str(service.port), f"{service.cpu:g}",
                             service.memory))
        table(services)


def plural(items: Any) -> str:
    """"s" unless there is exactly one of `items`."""
    return "" if len(items) == 1 else "s"


def _uptime(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    return f"{hours}h{rest // 60:02d}m{rest % 60:02d}s" if hours else f"{rest // 60}m{rest % 60:02d}s"


def services_table(services: list[ServiceDescription]) -> None:
    """Each service's state; the reason of a FAILED or UNHEALTHY one below the table."""
    if not services:
        return
    click.echo("")
    click.echo("services:")
    rows: list[tuple[str, ...]] = [("SERVICE", "STATUS", "VERSION", "ADDRESS", "RESTARTS", "UPTIME", "LAST EXIT",
                                    "LAST START (UTC)")]
    for s in services:
        rows.append((s.service_name, s.status.value, s.version_id or "-", s.address or f"port {s.port}",
                     str(s.restarts), _uptime(s.uptime_seconds), s.last_exit or "-", format_utc(s.last_started_at)))
    table(rows)
    for s in services:
        if s.reason:
            click.echo(f"{s.service_name} is {s.status.value}: {s.reason}")
    for s in services:
        click.echo(f"{s.service_name} in the Web UI: {s.web_ui_url}")
