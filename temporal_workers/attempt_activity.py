"""The activity that runs one attempt: it hands the attempt to the container backend and bridges
the backend to the engine (heartbeats, cancellation, the RUNNING notice)."""

from __future__ import annotations

import dataclasses
import logging

from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from multinode import _names
from multinode._wire import AttemptOutcome, AttemptProgress, AttemptRequest
from temporal_workers.backends import ContainerBackend, InfrastructureError

log = logging.getLogger("multinode.worker")


class _ActivitySession:
    def __init__(self, client: Client, workflow_id: str, attempt_number: int) -> None:
        self._client = client
        self._workflow_id = workflow_id
        self._attempt_number = attempt_number

    def heartbeat(self, progress: AttemptProgress) -> None:
        activity.heartbeat(progress)

    async def notify_started(self, started_at: float) -> None:
        try:
            await self._client.get_workflow_handle(self._workflow_id).signal(
                _names.ATTEMPT_STARTED_SIGNAL, args=[started_at, self._attempt_number]
            )
        except Exception as exc:  # the status catches up with the outcome anyway
            log.warning("could not record RUNNING for %s: %s", self._workflow_id, exc)

    def interruption(self) -> str:
        details = activity.cancellation_details()
        if details is None or details.cancel_requested:
            return "cancel"
        if details.worker_shutdown:
            return "shutdown"
        return "timeout"


class AttemptActivities:
    def __init__(self, client: Client, backend: ContainerBackend) -> None:
        self._client = client
        self._backend = backend

    @activity.defn(name=_names.RUN_ATTEMPT_ACTIVITY)
    async def run_attempt(self, request: AttemptRequest) -> AttemptOutcome:
        info = activity.info()
        if info.attempt > 1:
            log.info(
                "%s attempt %d: engine retry %d (a previous run was lost)",
                request.invocation.invocation_id, request.attempt_number, info.attempt,
            )
        session = _ActivitySession(
            self._client, info.workflow_id or request.invocation.invocation_id, request.attempt_number
        )
        try:
            outcome = await self._backend.run_attempt(request, session)
        except InfrastructureError as exc:
            raise ApplicationError(str(exc), type="InfrastructureError") from None
        return dataclasses.replace(outcome, quota_released=await self._release_quota(request))

    async def _release_quota(self, request: AttemptRequest) -> bool:
        """Hand the slot to the next waiter now that the container is gone, instead of one
        workflow task later; the workflow releases it itself if this fails."""
        invocation = request.invocation
        quota = _names.quota_workflow_id(invocation.project_name, invocation.function_name)
        try:
            await self._client.get_workflow_handle(quota).signal(
                _names.QUOTA_RELEASE_SIGNAL, invocation.invocation_id
            )
            return True
        except Exception as exc:  # best effort: the workflow's own release follows
            log.warning("could not release the quota slot of %s: %s", invocation.invocation_id, exc)
            return False
