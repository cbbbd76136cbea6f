"""Services as an operator sees them: their state (status, version, address, restarts, uptime),
read from their control loops' memos (no worker needed), a wait for a new version's services to
come up (what deploy prints), and their logs."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from multinode._client import Client, default_client
from multinode.admin.links import invocation_url
from multinode.admin.logs import LocalLogSource
from multinode.contract import names
from multinode.contract.connection import ConnectionSettings, multinode_home
from multinode.contract.ids import check_name
from multinode.contract.service_state import ServiceObserved, service_log_path
from multinode.contract.services import ServiceStatus
from multinode.errors import MultinodeError

# How long deploy waits for a new version's services to be RUNNING (or FAILED) by default.
SERVICE_START_WAIT_SECONDS = 90.0
_POLL_SECONDS = 0.25


@dataclass(frozen=True)
class ServiceDescription:
    project_name: str
    service_name: str
    status: ServiceStatus
    version_id: str | None
    port: int | None
    address: str | None
    restarts: int
    last_exit: str | None  # "exit code 1", "signal 9 (SIGKILL)"
    last_exit_code: int | None
    last_started_at: datetime | None
    running_since: datetime | None
    uptime_seconds: float | None  # while RUNNING
    reason: str | None  # why it is FAILED or UNHEALTHY
    pid: int | None
    web_ui_url: str  # its control loop's page: summary, current state, every run


def _moment(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, tz=UTC)


def _description(observed: ServiceObserved, settings: ConnectionSettings) -> ServiceDescription:
    running = observed.status == ServiceStatus.RUNNING.value and observed.running_since is not None
    return ServiceDescription(
        project_name=observed.project_name,
        service_name=observed.service_name,
        status=ServiceStatus(observed.status),
        version_id=observed.version_id,
        port=observed.port,
        address=observed.address,
        restarts=observed.restarts,
        last_exit=observed.last_exit,
        last_exit_code=observed.last_exit_code,
        last_started_at=_moment(observed.last_started_at),
        running_since=_moment(observed.running_since),
        uptime_seconds=max(0.0, time.time() - observed.running_since)
        if running and observed.running_since is not None else None,
        reason=observed.reason,
        pid=observed.pid,
        web_ui_url=invocation_url(names.service_workflow_id(observed.project_name, observed.service_name), settings),
    )


async def _describe(client: Client, project_name: str) -> list[ServiceDescription]:
    engine = await client.engine()
    latest, _closing = await engine.project_state(project_name)  # raises for a missing project
    found = []
    for spec in latest.services:
        observed = await engine.services.observe(project_name, spec.name)
        found.append(_description(observed or ServiceObserved(project_name, spec.name, port=spec.port),
                                  client.settings))
    return found


def describe_services(project_name: str, *, client: Client | None = None) -> list[ServiceDescription]:
    """The services of a project's latest version with their current state, by name."""
    check_name(project_name, "project name")
    client = client or default_client()
    return client.run(_describe(client, project_name))


def wait_for_services(
    project_name: str,
    version_id: str,
    *,
    timeout_seconds: float = SERVICE_START_WAIT_SECONDS,
    client: Client | None = None,
) -> list[ServiceDescription]:
    """The project's services once each runs `version_id` and is RUNNING or FAILED, or as they
    are when `timeout_seconds` run out (a service still STARTING then is still starting)."""
    client = client or default_client()

    async def wait() -> list[ServiceDescription]:
        import asyncio

        deadline = time.monotonic() + timeout_seconds
        while True:
            services = await _describe(client, project_name)
            settled = all(
                s.version_id == version_id and s.status in (ServiceStatus.RUNNING, ServiceStatus.FAILED)
                for s in services
            )
            if settled or time.monotonic() >= deadline:
                return services
            await asyncio.sleep(_POLL_SECONDS)

    return client.run(wait())


@dataclass(frozen=True)
class ServiceLogStream:
    project_name: str
    service_name: str
    source: str  # where the lines come from
    chunks: Iterator[str]  # the text, as written (every run, each after a header line)


def read_service_logs(project_name: str, service_name: str, *, follow: bool = False) -> ServiceLogStream:
    """Everything the service's processes wrote (stdout and stderr): the local backend's file, or
    on Fargate (an s3:// package store) the CloudWatch streams of every task it ran; with
    `follow`, the stream goes on with new text until interrupted."""
    check_name(project_name, "project name")
    check_name(service_name, "service name")
    path = service_log_path(multinode_home(), project_name, service_name)
    source = LocalLogSource(path)
    store = os.environ.get("MULTINODE_PACKAGE_STORE", "")
    if not source.exists() and store.startswith("s3://"):
        from multinode.admin.cloudwatch import fargate_service_logs, read_service_streams

        found = fargate_service_logs(store, project_name, service_name)
        if found is not None:
            group, prefix = found
            lines = read_service_streams(group, prefix, follow=follow)
            ended = (line if line.endswith("\n") else line + "\n" for line in lines)
            return ServiceLogStream(project_name, service_name, f"CloudWatch Logs {group}/{prefix}/*", ended)
    if not source.exists():
        raise MultinodeError(
            f"no logs found for service {service_name!r} of project {project_name!r} (looked at "
            f"{path}; logs are kept where the service runs)"
        )
    chunks = source.chunks(follow=follow, attempt_ended=lambda: False)
    return ServiceLogStream(project_name, service_name, str(path), chunks)
