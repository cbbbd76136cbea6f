"""The activity that runs one service's process (`multinode.RunService`): it hands the run to
the container backend and bridges it to the engine: heartbeats, the status reports the service's
workflow shows (signals), the worker's shutdown, and the translation of the backend's errors.

It returns when the process ends on its own; a cancel (new version, undeploy) stops the process
first. A worker that stops ends its runs at once (the process stopped gracefully) with a retryable
error, and the engine starts them again on the next worker; a worker that dies takes its
services' processes with it, and the engine notices by the missing heartbeats."""

from __future__ import annotations

import asyncio
import logging

from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from multinode.contract import names as _names
from multinode.contract.service_state import (
    SERVICE_UNSUPPORTED_ERROR,
    ServiceExit,
    ServiceRemoval,
    ServiceReport,
    ServiceRun,
)
from temporal_workers.backends import ContainerBackend, InfrastructureError, ServiceUnsupportedError

log = logging.getLogger("multinode.worker")


class _ServiceSession:
    def __init__(self, client: Client, run: ServiceRun) -> None:
        self._client = client
        self._run = run

    def heartbeat(self) -> None:
        activity.heartbeat()

    async def report(self, status: str, at: float, pid: int | None = None, address: str | None = None) -> None:
        try:
            await self._client.get_workflow_handle(self._run.workflow_id).signal(
                _names.SERVICE_REPORT_SIGNAL, ServiceReport(self._run.run, status, at, pid, address)
            )
        except Exception as exc:  # the status catches up with the next report or the run's end
            log.warning("could not report %s for %s: %s", status, self._run.workflow_id, exc)

    async def worker_stopping(self) -> None:
        await activity.wait_for_worker_shutdown()


class ServiceActivities:
    def __init__(self, client: Client, backend: ContainerBackend) -> None:
        self._client = client
        self._backend = backend

    @activity.defn(name=_names.RUN_SERVICE_ACTIVITY)
    async def run_service(self, run: ServiceRun) -> ServiceExit:
        info = activity.info()
        if info.attempt > 1:
            log.info("%s run %d: started again (its worker stopped or was lost)", run.workflow_id, run.run)
        try:
            return await self._backend.run_service(run, _ServiceSession(self._client, run))
        except ServiceUnsupportedError as exc:
            raise ApplicationError(str(exc), type=SERVICE_UNSUPPORTED_ERROR, non_retryable=True) from None
        except InfrastructureError as exc:
            raise ApplicationError(
                str(exc), type="InfrastructureError", category=ApplicationErrorCategory.BENIGN
            ) from None
        except asyncio.CancelledError:
            details = activity.cancellation_details()
            if details is not None and details.worker_shutdown and not details.cancel_requested:
                raise ApplicationError(
                    "the worker stopped; the service starts again on the next worker",
                    type="InfrastructureError", category=ApplicationErrorCategory.BENIGN,
                ) from None
            raise

    @activity.defn(name=_names.STOP_SERVICE_ACTIVITY)
    async def stop_service(self, removal: ServiceRemoval) -> None:
        """Undeploy's last step: what the backend keeps beyond the process goes (an ECS service)."""
        try:
            await self._backend.remove_service(removal, activity.heartbeat)
        except InfrastructureError as exc:
            raise ApplicationError(
                str(exc), type="InfrastructureError", category=ApplicationErrorCategory.BENIGN
            ) from None
