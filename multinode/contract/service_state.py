"""The records of a service's control loop: what is wanted of it (its target), what was seen of
it (observed), what one run of its process ended with, and what the process's supervisor tells
the loop while it runs.

The control loop is one `multinode.Service` workflow per (project, service); these records are
its input (carried across continue-as-new), its memo (read by `describe` without a worker) and
its activity's input and result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from multinode.contract.records import PackageRef
from multinode.contract.services import ServiceSpec, ServiceStatus

# The error type of a run on a backend that cannot run services: the service is FAILED with its
# message, never retried.
SERVICE_UNSUPPORTED_ERROR = "ServiceUnsupported"


@dataclass(frozen=True)
class ServiceTarget:
    """The desired state: which version runs (and its package), and whether it runs at all."""

    project_name: str
    version_id: str
    spec: ServiceSpec
    package: PackageRef
    requirements_sha256: str | None
    running: bool = True
    secrets_uri: str | None = None  # the version's `.env`, see VersionManifest


@dataclass
class ServiceObserved:
    """What the control loop saw last; its memo (`MEMO_SERVICE`) and its query's answer."""

    project_name: str
    service_name: str
    status: str = ServiceStatus.STOPPED.value
    version_id: str | None = None
    port: int | None = None
    address: str | None = None
    # Why it is FAILED or UNHEALTHY (with the tail of its log when it never got healthy).
    reason: str | None = None
    # Restarts after its process ended on its own (not after a deploy or a worker restart).
    restarts: int = 0
    # "exit code 1", "signal 9 (SIGKILL)": how its process last ended on its own.
    last_exit: str | None = None
    last_exit_code: int | None = None
    last_started_at: float | None = None
    # Since when its port has accepted connections (None while it does not): for the uptime.
    running_since: float | None = None
    pid: int | None = None


@dataclass
class RestartState:
    """The restart rules' memory (see `temporal_workers.workflows.service_restarts`)."""

    # Consecutive ends without a long enough stretch of health: sets the next delay.
    failures: int = 0
    # Consecutive runs that never got healthy: past the limit, the service is FAILED.
    never_healthy: int = 0


@dataclass(frozen=True)
class ServiceState:
    """The workflow's input, carried across continue-as-new."""

    project_name: str
    service_name: str
    target: ServiceTarget | None = None
    observed: ServiceObserved | None = None
    restart: RestartState = field(default_factory=RestartState)
    run: int = 0


@dataclass(frozen=True)
class ServiceRun:
    """One run of a service's process: the activity's input. `run` numbers the runs of one
    service, so a late report from an earlier run is ignored."""

    workflow_id: str
    run: int
    target: ServiceTarget


@dataclass(frozen=True)
class ServiceExit:
    """How one run ended by itself (a stop asked by the control loop ends the activity as
    cancelled instead); the activity's result."""

    ended_at: float
    started_at: float | None = None
    exit_code: int | None = None
    ever_healthy: bool = False
    healthy_seconds: float = 0.0
    # The process could not be started at all (port taken, version not preparable): why.
    start_error: str | None = None
    # Started but never healthy within the start-up time: why, with the tail of its log.
    unhealthy_reason: str | None = None
    log_tail: str = ""


@dataclass(frozen=True)
class ServiceReport:
    """The supervisor's news while a run goes on (a signal): STARTING with its pid, RUNNING once
    its port accepts connections, UNHEALTHY when it stops to."""

    run: int
    status: str
    at: float
    pid: int | None = None
    address: str | None = None


def describe_exit(exit_code: int | None) -> str:
    """`exit code 1`, `signal 9 (SIGKILL)`."""
    if exit_code is None:
        return "unknown exit"
    if exit_code < 0:
        import signal

        try:
            name = signal.Signals(-exit_code).name
        except ValueError:
            name = "unknown"
        return f"signal {-exit_code} ({name})"
    return f"exit code {exit_code}"


def service_log_path(home: Path, project_name: str, service_name: str) -> Path:
    """Where the local backend appends a service's output (every run, each after a header line)."""
    return home / "services" / project_name / f"{service_name}.log"


@dataclass(frozen=True)
class ServiceRemoval:
    """Undeploy's last step (`multinode.StopService`): release what the backend keeps for the
    service beyond its process (on Fargate, its ECS service)."""

    project_name: str
    service_name: str


def service_stream_prefix(project_name: str, service_name: str) -> str:
    """The awslogs stream prefix of a service's tasks on Fargate: its streams are
    `<prefix>/service/<task id>` (names hold no dots, so the pair reads back unambiguously)."""
    return f"multinode-service.{project_name}.{service_name}"


def service_logs_key(project_name: str, service_name: str) -> str:
    """Under the package store's prefix: where the Fargate backend records the log group of a
    service's tasks, for `multinode logs --service-name` (JSON: log_group, stream_prefix)."""
    return f"services/{project_name}/{service_name}/logs.json"
