"""Container backends: where an attempt's container runs.

A backend is a port with adapters: `local` (a process on this machine, the embedded default),
`fargate` (an ECS task) and `fake` (scripted outcomes, for tests of the engine plumbing).
`outcome` maps how an attempt ended to an `AttemptOutcome`, the same way for every backend.

Imported by the worker (its attempt activity) and the backends themselves.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Protocol

from multinode.contract.connection import ConnectionSettings, connection_environment
from multinode.contract.records import AttemptOutcome, AttemptProgress, AttemptRequest
from multinode.contract.service_state import ServiceExit, ServiceRemoval, ServiceRun
from multinode.runtime import runner


class AttemptSession(Protocol):
    """What a backend may tell the engine, and learn from it, while it runs an attempt."""

    def heartbeat(self, progress: AttemptProgress) -> None:
        """Record liveness and the latest progress (no history cost)."""

    async def notify_started(self, started_at: float) -> None:
        """Tell the invocation's workflow that the function is running."""

    def interruption(self) -> str:
        """Why the activity was cancelled: "cancel", "timeout" (engine-side) or "shutdown"."""


class ServiceSession(Protocol):
    """What a backend may tell the engine while a service's process runs."""

    def heartbeat(self) -> None:
        """Record liveness (a run whose heartbeats stop is started again elsewhere)."""

    async def report(self, status: str, at: float, pid: int | None = None, address: str | None = None) -> None:
        """Tell the service's workflow what the process is doing (a ServiceStatus value)."""

    async def worker_stopping(self) -> None:
        """Returns when the worker begins to stop: the run must end and go back to the engine."""


class ServiceUnsupportedError(Exception):
    """This backend cannot run services: the service is FAILED with this message."""


class InfrastructureError(Exception):
    """The attempt could not run for a reason outside the function (package store down, worker
    shutting down, launch failure). The engine retries it; it does not count as a failed
    attempt."""


class ContainerBackend(ABC):
    name: str

    @abstractmethod
    async def run_attempt(self, request: AttemptRequest, session: AttemptSession) -> AttemptOutcome:
        """Run one attempt to its end and report how it ended. Returns only once the
        attempt's container is gone."""

    async def run_service(self, run: ServiceRun, session: ServiceSession) -> ServiceExit:
        """Run one service's process until it ends on its own (its exit) or the activity is
        cancelled (stop it: SIGTERM, the grace period, the kill; then re-raise)."""
        raise ServiceUnsupportedError(f"the {self.name} backend does not run services")

    async def forget(self, invocation_id: str) -> None:  # noqa: B027 - optional: most keep nothing
        """Delete what the invocation's attempts left behind (logs, run documents)."""

    async def remove_service(self, removal: ServiceRemoval, heartbeat: Callable[[], None]) -> None:  # noqa: B027
        """Undeploy's last step, once the last run has ended: release what the backend keeps for
        the service beyond its process (the local backend keeps nothing; Fargate, its ECS
        service)."""

    async def close(self) -> None:  # noqa: B027 - optional hook: most backends hold nothing
        """Release what the backend holds (stop attempts still running)."""


def attempt_environment(request: AttemptRequest, connection: ConnectionSettings) -> dict[str, str]:
    """What every function process is told, whatever runs it: who it is, and how to reach the
    control plane for nested invocations (the worker's own connection, TLS included, so a nested
    call connects exactly as the worker does). Never the arguments, never a secret: the local
    backend adds the key and TLS material itself, a Fargate task gets them from its task
    definition's secrets."""
    invocation = request.invocation
    public, _secret = connection_environment(connection)  # secrets: each backend its own way
    return {
        "PYTHONUNBUFFERED": "1",
        **public,
        "MULTINODE_PROJECT": invocation.project_name,
        "MULTINODE_VERSION_ID": invocation.version_id,
        "MULTINODE_INVOCATION_ID": invocation.invocation_id,
        "MULTINODE_ATTEMPT": str(request.attempt_number),
        runner.ENV_FUNCTION: invocation.function_name,
    }
