"""The activity that runs one attempt: it takes a slot of the function's quota (from this worker's
lease, unless the invocation already holds one from the semaphore), hands the attempt to the
container backend, bridges the backend to the engine (heartbeats, cancellation, the RUNNING
notice) and gives the slot back the moment the container is gone. When the worker stops, attempts
still running after its grace period (or at once, on a second signal) are handed back: they fail
with a retryable InfrastructureError, which the engine retries elsewhere without counting it. A
version that cannot be prepared (its package missing or corrupt, its requirements failing to
install) fails with a non-retryable error of that type: the invocation fails at once."""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import logging
import time

from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from multinode.contract import names as _names
from multinode.contract.records import AttemptOutcome, AttemptProgress, AttemptRequest, Outcome
from multinode.runtime.preparation import PERMANENT_ERRORS
from temporal_workers.activities.heartbeat_pacer import HeartbeatPacer
from temporal_workers.backends import ContainerBackend, InfrastructureError
from temporal_workers.backends.outcome import launch_failed
from temporal_workers.metrics import HANDED_BACK, NO_METRICS, WorkerMetrics
from temporal_workers.quota.lease_book import Admission
from temporal_workers.quota.leases import QuotaLeases

log = logging.getLogger("multinode.worker")

# How often an attempt waiting for a slot offers a heartbeat (the pacer sends one only every
# half heartbeat timeout, so a queue of waiting attempts does not load the control plane).
ADMISSION_HEARTBEAT_SECONDS = 1.0
# After a cancel hint (see temporal_workers.cancel_hints): how often, and how long, the attempt
# heartbeats so that the cancel's answer comes at once. The SDK sends at most one heartbeat per
# its throttle interval (300 ms), the latest.
HURRY_SECONDS = 0.1
HURRY_FOR_SECONDS = 2.0
# The longest an attempt queues in its worker for a slot of the worker's lease; after that it
# queues at the function's semaphore instead (keeping its place: both order by invocation id).
QUEUE_WAIT_SECONDS = 30.0
# Pauses before each try of a release.
RELEASE_DELAYS_SECONDS = (0.0, 0.2, 1.0, 5.0)


def _handed_back(reason: str) -> ApplicationError:
    # Retryable, and expected: the engine runs the attempt again, so no warning in the log.
    return ApplicationError(
        f"attempt handed back to the engine: {reason}",
        type="InfrastructureError",
        category=ApplicationErrorCategory.BENIGN,
    )


def _cannot_run(exc: Exception) -> ApplicationError:
    # Non-retryable: the engine does not run the activity again, and the invocation workflow
    # fails the invocation with this error's type (a name from multinode.errors) at once.
    return ApplicationError(str(exc), type=type(exc).__name__, non_retryable=True)


class _ActivitySession:
    def __init__(self, client: Client, workflow_id: str, attempt_number: int, owner: AttemptActivities) -> None:
        self._client = client
        self.workflow_id = workflow_id
        self._attempt_number = attempt_number
        self._owner = owner
        timeout = activity.info().heartbeat_timeout
        self._pacer = HeartbeatPacer.for_timeout(timeout.total_seconds() if timeout else None)
        self._held_timer: asyncio.TimerHandle | None = None
        # For heartbeats sent from outside the activity's own calls (a hurry, see `hurry`).
        self._loop = asyncio.get_running_loop()
        self._context = contextvars.copy_context()
        self._offered: AttemptProgress | None = None
        self._hurry_until = 0.0
        self._closed = False

    def heartbeat(self, progress: AttemptProgress) -> None:
        now = time.monotonic()
        self._offered = progress
        if self._pacer.offer(progress, now):
            activity.heartbeat(progress)
            return
        due = self._pacer.held_until()
        if due is not None and self._held_timer is None:
            # Scheduled from the activity, so the timer runs in its context.
            self._held_timer = asyncio.get_running_loop().call_later(max(0.0, due - now), self._send_held)

    def _send_held(self) -> None:
        self._held_timer = None
        held = self._pacer.take_held(time.monotonic())
        if held is not None:
            activity.heartbeat(held)

    def hurry(self) -> None:
        """A cancel may be on its way (any thread may call this): heartbeat every HURRY_SECONDS
        for HURRY_FOR_SECONDS, so its answer brings the cancel at once."""
        self._loop.call_soon_threadsafe(self._start_hurry, context=self._context)

    def _start_hurry(self) -> None:
        already = time.monotonic() < self._hurry_until
        self._hurry_until = time.monotonic() + HURRY_FOR_SECONDS
        if not already:
            self._hurried_heartbeat()

    def _hurried_heartbeat(self) -> None:
        if self._closed or time.monotonic() >= self._hurry_until:
            return
        if self._offered is not None:
            activity.heartbeat(self._offered)
        self._loop.call_later(HURRY_SECONDS, self._hurried_heartbeat)

    def close(self) -> None:
        """No heartbeat after the attempt's end: its outcome says it all."""
        self._closed = True
        if self._held_timer is not None:
            self._held_timer.cancel()
            self._held_timer = None

    async def notify_started(self, started_at: float) -> None:
        try:
            await self._client.get_workflow_handle(self.workflow_id).signal(
                _names.ATTEMPT_STARTED_SIGNAL, args=[started_at, self._attempt_number]
            )
        except Exception as exc:  # the status catches up with the outcome anyway
            log.warning("could not record RUNNING for %s: %s", self.workflow_id, exc)

    def interruption(self) -> str:
        if self._owner.handing_back:
            return "shutdown"
        details = activity.cancellation_details()
        if details is None or details.cancel_requested:
            return "cancel"
        if details.worker_shutdown:
            return "shutdown"
        return "timeout"


class AttemptActivities:
    def __init__(
        self, client: Client, backend: ContainerBackend, leases: QuotaLeases, metrics: WorkerMetrics = NO_METRICS
    ) -> None:
        self._client = client
        self._backend = backend
        self._leases = leases
        self._metrics = metrics
        self._releases: set[asyncio.Future[None]] = set()
        self._running: set[asyncio.Task[object]] = set()
        self._sessions: dict[str, _ActivitySession] = {}  # by workflow id
        # Set when the worker begins to stop. Attempts it holds (running, or queued here for a
        # slot) go on through the grace period; those still there at its end are handed back.
        self.stopping = False
        # Set when the worker hands back every attempt still running (second signal).
        self.handing_back = False

    @property
    def running(self) -> int:
        return len(self._running)

    def hint_cancel(self, workflow_id: str) -> None:
        """A cancel was asked of this workflow (called from a workflow thread): if this worker
        runs its attempt, that attempt hurries its heartbeats to hear of it at once."""
        session = self._sessions.get(workflow_id)
        if session is not None:
            session.hurry()

    def hand_back_all(self) -> None:
        """Stop every running attempt now and hand it back to the engine."""
        self.stopping = self.handing_back = True
        for task in self._running:
            task.cancel()

    @activity.defn(name=_names.RUN_ATTEMPT_ACTIVITY)
    async def run_attempt(self, request: AttemptRequest) -> AttemptOutcome:
        info = activity.info()
        if info.attempt > 1:
            log.info(
                "%s attempt %d: engine retry %d (a previous run was handed back or lost)",
                request.invocation.invocation_id, request.attempt_number, info.attempt,
            )
        session = _ActivitySession(
            self._client, info.workflow_id or request.invocation.invocation_id, request.attempt_number, self
        )
        task = asyncio.current_task()
        if task is not None:
            self._running.add(task)
        self._sessions[session.workflow_id] = session
        try:
            return await self._run(request, session)
        except asyncio.CancelledError:
            # A worker shutdown cancels as a cancel request does; only a real request may end
            # the activity as cancelled.
            if session.interruption() != "shutdown":
                raise
            raise _handed_back("the worker is stopping") from None
        finally:
            session.close()
            if self._sessions.get(session.workflow_id) is session:
                del self._sessions[session.workflow_id]
            if task is not None:
                self._running.discard(task)

    async def _run(self, request: AttemptRequest, session: _ActivitySession) -> AttemptOutcome:
        invocation = request.invocation
        admission = None
        if request.lease:
            asked = time.monotonic()
            admission = await self._admit(request, session)
            if admission is None:
                return AttemptOutcome(Outcome.NO_SLOT, None, None, None, time.time())
            self._metrics.quota_admission(
                invocation.project_name, invocation.function_name, time.monotonic() - asked
            )
        try:
            outcome = await self._launch(request, session)
        finally:
            if admission is not None:
                self._leases.release(admission)
        if admission is None:
            self._release_quota(request)
        return dataclasses.replace(outcome, quota_released=True)

    async def _launch(self, request: AttemptRequest, session: _ActivitySession) -> AttemptOutcome:
        """The attempt on the backend, counted in the metrics."""
        invocation = request.invocation
        project, function = invocation.project_name, invocation.function_name
        self._metrics.attempt_started(project, function)
        ended = HANDED_BACK
        try:
            outcome = await self._backend.run_attempt(request, session)
            ended = outcome.outcome
        except PERMANENT_ERRORS as exc:
            ended = Outcome.FAILED
            log.warning("%s attempt %d cannot run: %s", invocation.invocation_id, request.attempt_number, exc)
            raise _cannot_run(exc) from None
        except InfrastructureError as exc:
            if self.stopping:
                raise _handed_back(str(exc)) from None
            raise ApplicationError(str(exc), type="InfrastructureError") from None
        finally:
            self._metrics.attempt_ended(project, function, ended)
        if launch_failed(outcome) and outcome.error is not None:
            # Every launch would fail alike: the invocation fails now, not max_retries later.
            raise ApplicationError(outcome.error.message, type=outcome.error.type, non_retryable=True)
        if outcome.started_at is not None:
            # PENDING since the invocation's creation for its first attempt; for a later one,
            # since the engine scheduled it (after the previous attempt's end).
            info = activity.info()
            pending_since = (
                invocation.created_at if request.attempt_number == 1 else info.scheduled_time.timestamp()
            )
            self._metrics.pending_to_running(project, function, outcome.started_at - pending_since)
        return outcome

    async def _admit(self, request: AttemptRequest, session: _ActivitySession) -> Admission | None:
        """A slot from this worker's lease, perhaps after queueing for it here. Heartbeats
        while it waits: an attempt that went quiet would be timed out and run again elsewhere
        while this one still starts."""
        invocation = request.invocation
        # Well inside the attempt's own deadline, which counts from this activity's start.
        budget = activity.info().start_to_close_timeout
        max_wait = min(QUEUE_WAIT_SECONDS, budget.total_seconds() / 2) if budget else QUEUE_WAIT_SECONDS
        admitting = asyncio.ensure_future(self._leases.admit(
            invocation.project_name, invocation.function_name, invocation.options.max_concurrency,
            invocation.invocation_id, max_wait, request.attempt_number,
        ))
        try:
            # An admission from the lease takes no time: only a real wait heartbeats (each
            # heartbeat is a write on the control plane).
            while not (await asyncio.wait([admitting], timeout=ADMISSION_HEARTBEAT_SECONDS))[0]:
                session.heartbeat(AttemptProgress(request.attempt_number, "preparing", None))
        except asyncio.CancelledError:
            admitting.cancel()
            admitting.add_done_callback(self._leases.release_if_admitted)
            raise
        return admitting.result()

    @activity.defn(name=_names.FORGET_INVOCATION_ACTIVITY)
    async def forget_invocation(self, invocation_id: str) -> None:
        """Delete what the invocation's attempts left where their containers ran."""
        await self._backend.forget(invocation_id)

    def _release_quota(self, request: AttemptRequest) -> None:
        """Hand the slot to the next waiter now that the container is gone, without holding
        back the attempt's completion for it. The release names its attempt, so it frees
        nothing if it lands after the invocation asked again for its next attempt; if it is
        lost, that next attempt reuses the slot, or the semaphore reaps it once the invocation
        has ended."""
        task = asyncio.ensure_future(self._send_release(request))
        self._releases.add(task)
        task.add_done_callback(self._releases.discard)

    async def _send_release(self, request: AttemptRequest) -> None:
        invocation = request.invocation
        quota = _names.quota_workflow_id(invocation.project_name, invocation.function_name)
        for delay in RELEASE_DELAYS_SECONDS:
            await asyncio.sleep(delay)
            try:
                await self._client.get_workflow_handle(quota).signal(
                    _names.QUOTA_RELEASE_SIGNAL, args=[invocation.invocation_id, request.attempt_number]
                )
                return
            except Exception as exc:  # the slot is reclaimed anyway; see _release_quota
                log.warning("could not release the quota slot of %s: %s", invocation.invocation_id, exc)
