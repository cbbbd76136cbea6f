"""The supervisor of one attempt on Fargate: it uploads the arguments, launches the task (retrying
throttling and capacity shortage), watches it and its progress, turns a cancel, the timeout or
the engine's interruption into StopTask, and classifies the task once it has stopped."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from multinode.contract.records import AttemptOutcome, AttemptProgress, AttemptRequest, ErrorInfo, Outcome
from multinode.runtime.fargate_run import INPUT_NAME, OUTCOME_NAME, PROGRESS_NAME, TASK_NAME, RunLocation
from temporal_workers.backends import AttemptSession, InfrastructureError
from temporal_workers.backends.fargate.ecs import (
    refusal_message,
    timestamp,
    transient_failures,
    transient_refusal,
)
from temporal_workers.backends.fargate.fence import stop_leftovers
from temporal_workers.backends.fargate.outcome import classify
from temporal_workers.backends.fargate.request import (
    client_token,
    container_environment,
    engine_attempt,
    run_task_params,
    task_overrides,
)
from temporal_workers.backends.outcome import LAUNCH_FAILED, attempt_outcome, not_started, not_started_error

if TYPE_CHECKING:
    from temporal_workers.backends.fargate.backend import FargateBackend

log = logging.getLogger("multinode.worker")

T = TypeVar("T")
Json = dict[str, Any]

STOP_CANCEL = "multinode: cancel"
STOP_TIMEOUT = "multinode: timeout"


class LaunchRefused(Exception):
    """Fargate refused the launch for a reason no retry mends (the message says which)."""


@dataclass
class Watch:
    """What the supervisor knows of its task so far."""

    launched: float
    started_at: float | None = None
    deadline: float | None = None
    progress: str | None = None
    has_progress: bool = False
    progress_etag: str | None = None
    # The task's next observation, asked of the worker's shared DescribeTasks round.
    observation: asyncio.Future[Json | None] | None = None
    next_progress: float = 0.0
    background: list[asyncio.Future[None]] = field(default_factory=list)


class AttemptSupervisor:
    """One attempt's run: launch, supervise, classify."""

    def __init__(self, backend: FargateBackend, request: AttemptRequest, session: AttemptSession) -> None:
        self.backend = backend
        self.request = request
        self.session = session
        self.timings = backend.timings
        self.cluster = backend.config.cluster
        invocation = request.invocation
        self.location = RunLocation.for_attempt(
            backend.config.package_store, invocation.invocation_id, request.attempt_number
        )
        self.engine_attempt = engine_attempt()
        self.run_token = client_token(invocation.invocation_id, request.attempt_number, self.engine_attempt, 0)
        self.cancel_requested = False
        self.abandoned: str | None = None
        self.interrupt: str | None = None
        self.phase = "preparing"

    # ----- interruption-aware waiting -----------------------------------------------------

    def _note_interruption(self) -> None:
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
        reason = self.session.interruption()
        if reason == "cancel":
            self.cancel_requested = True
        else:
            self.abandoned = reason

    async def call(self, function: Callable[..., T], *args: Any) -> T:
        """Run a blocking AWS call in a thread. A cancellation meanwhile is recorded and the
        call still finishes: its effect (a launched task) must be known to be undone."""
        future: asyncio.Future[T] = asyncio.ensure_future(asyncio.to_thread(function, *args))
        while True:
            try:
                return await asyncio.shield(future)
            except asyncio.CancelledError:
                if future.cancelled():
                    raise
                self._note_interruption()

    async def sleep(self, seconds: float, until: asyncio.Future[Any] | None = None) -> None:
        """Sleep, or less if `until` is done first."""
        try:
            if until is None:
                await asyncio.sleep(max(0.0, seconds))
            else:
                await asyncio.wait([until], timeout=max(0.0, seconds))
        except asyncio.CancelledError:
            self._note_interruption()

    def heartbeat(self, watch: Watch | None = None) -> None:
        started_at = watch.started_at if watch else None
        value, has_value = (watch.progress, watch.has_progress) if watch else (None, False)
        self.session.heartbeat(
            AttemptProgress(self.request.attempt_number, self.phase, started_at, value, has_value)
        )

    # ----- the run ------------------------------------------------------------------------

    async def run(self) -> AttemptOutcome:
        self.heartbeat()
        try:
            environment = container_environment(
                self.request, self.backend.settings, self.location, self.run_token,
                self.timings.progress_interval,
            )
            params = run_task_params(
                self.request, self.backend.config, task_overrides(self.request, environment)
            )
        except ValueError as exc:  # overrides too large, or no Fargate size fits
            # Permanent: no launch can succeed, and no user code has run.
            return not_started(exc)
        if self.engine_attempt > 1:
            await stop_leftovers(self)
        await self._upload_input()
        self.check_abandoned()
        if self.cancel_requested:
            return attempt_outcome(Outcome.CANCELLED, None, started_at=None)
        try:
            task_arn = await self._launch(params)
        except LaunchRefused as exc:
            return not_started_error(ErrorInfo(type=LAUNCH_FAILED, message=str(exc)))
        if task_arn is None:
            self.check_abandoned()
            return attempt_outcome(Outcome.CANCELLED, None, started_at=None)
        log.info("%s attempt %d: task %s", self.request.invocation.invocation_id,
                 self.request.attempt_number, task_arn)
        await self._record_task(task_arn)
        self.backend.track(task_arn, True)
        try:
            return await self._supervise(task_arn)
        finally:
            self.backend.track(task_arn, False)

    def check_abandoned(self) -> None:
        if self.abandoned is not None:
            raise InfrastructureError(f"attempt interrupted by the engine ({self.abandoned})")

    async def _upload_input(self) -> None:
        invocation = self.request.invocation
        document = {"args": invocation.args, "kwargs": invocation.kwargs}
        try:
            await self.call(self.backend.store.put_json, self.location.bucket,
                            self.location.key(INPUT_NAME), document)
        except (ClientError, BotoCoreError) as exc:
            raise InfrastructureError(f"uploading the arguments failed: {exc}") from exc

    async def _record_task(self, task_arn: str) -> None:
        document = {"task_arn": task_arn, "log_group": self.backend.config.log_group}
        try:
            await self.call(self.backend.store.put_json, self.location.bucket,
                            self.location.key(TASK_NAME), document)
        except (ClientError, BotoCoreError) as exc:  # only the logs' address is lost
            log.warning("could not record the task of %s: %s", self.request.invocation.invocation_id, exc)

    async def _launch(self, params: Json) -> str | None:
        """RunTask until a task exists; None if cancelled before one did."""
        invocation = self.request.invocation
        delays = self.timings.launch_delays
        launch = 1
        problem = ""
        for try_number in range(len(delays) + 1):
            self.check_abandoned()
            if self.cancel_requested:
                return None
            params["clientToken"] = client_token(
                invocation.invocation_id, self.request.attempt_number, self.engine_attempt, launch
            )
            try:
                response = await self.call(self.backend.ecs.run_task, params)
            except ClientError as exc:
                if not transient_refusal(exc):
                    error = exc.response.get("Error", {})
                    raise LaunchRefused(refusal_message(
                        f"{error.get('Code', 'error')}: {error.get('Message', '')}"
                    )) from exc
                problem = str(exc)  # the same token again: the call may have gone through
            except BotoCoreError as exc:
                problem = str(exc)
            else:
                tasks = response.get("tasks") or []
                if tasks:
                    return str(tasks[0]["taskArn"])
                failures = list(response.get("failures") or [])
                problem = "; ".join(f"{f.get('reason', '')} {f.get('detail', '')}".strip() for f in failures)
                if not transient_failures(failures):
                    raise LaunchRefused(refusal_message(problem or "no task and no reason"))
                launch += 1  # nothing started: a fresh token, or AWS may answer with this failure again
            if try_number < len(delays):
                log.warning("%s attempt %d: launch retry in %gs: %s", invocation.invocation_id,
                            self.request.attempt_number, delays[try_number], problem)
                self.heartbeat()
                await self.sleep(delays[try_number])
        raise InfrastructureError(f"no task could be launched after {len(delays) + 1} tries: {problem}")

    async def _stop(self, task_arn: str, reason: str) -> bool:
        try:
            await self.call(self.backend.ecs.stop_task, self.cluster, task_arn, reason)
        except (ClientError, BotoCoreError) as exc:
            log.warning("StopTask %s (%s) failed: %s", task_arn, reason, exc)
            return False
        return True

    async def _supervise(self, task_arn: str) -> AttemptOutcome:
        watch = Watch(launched=time.monotonic())
        try:
            while True:
                stopped = await self._observe(task_arn, watch)
                if stopped is not None:
                    return stopped
                await self._react(task_arn, watch)
                self.heartbeat(watch)
                await self.sleep(self._next_wake(watch) - time.monotonic(), watch.observation)
        finally:
            if watch.observation is not None:  # nobody will read it: the shared round skips it
                watch.observation.cancel()

    def _next_wake(self, watch: Watch) -> float:
        now = time.monotonic()
        wake = min(now + self.timings.tick, watch.next_progress)
        if self.interrupt is None and watch.deadline is not None:
            wake = min(wake, watch.deadline)
        return wake

    async def _observe(self, task_arn: str, watch: Watch) -> AttemptOutcome | None:
        """Look at the task and its progress when due; the outcome once it has stopped."""
        now = time.monotonic()
        if now >= watch.next_progress:
            watch.next_progress = now + self.timings.progress_interval
            await self._poll_progress(watch)
        if watch.observation is None:
            watch.observation = self.backend.observer.observe(task_arn)
        if not watch.observation.done():
            return None
        observation, watch.observation = watch.observation, None
        try:
            task = observation.result()
        except (ClientError, BotoCoreError) as exc:
            log.warning("DescribeTasks %s failed (will look again): %s", task_arn, exc)
            return None
        if task is None:
            if now - watch.launched > self.timings.visibility_grace:
                # ECS no longer knows the task (or never showed it): the engine's fault, not the
                # function's. Stopped first in case it is only invisible, so that the engine's
                # retry is the only copy that runs.
                await self._stop(task_arn, "multinode: the task vanished from DescribeTasks")
                raise InfrastructureError(f"the task {task_arn} vanished: ECS no longer describes it")
            return None
        status = task.get("lastStatus")
        if status == "STOPPED":
            return await self._finish(task, watch)
        if watch.started_at is None and status in ("RUNNING", "DEACTIVATING", "STOPPING"):
            self._mark_running(task, watch)
        return None

    def _mark_running(self, task: Mapping[str, Any], watch: Watch) -> None:
        watch.started_at = timestamp(task.get("startedAt")) or time.time()
        # Counted from when the worker sees it running, never earlier than the container's own
        # start: so when the worker stops it for the timeout, the container agrees it is one.
        timeout = self.request.invocation.options.timeout_seconds
        watch.deadline = time.monotonic() + timeout + self.timings.timeout_margin
        if self.interrupt is None:
            self.phase = "running"
            watch.background.append(asyncio.ensure_future(self.session.notify_started(watch.started_at)))

    async def _poll_progress(self, watch: Watch) -> None:
        try:
            changed = await self.call(
                self.backend.store.get_json_if_changed,
                self.location.bucket, self.location.key(PROGRESS_NAME), watch.progress_etag,
            )
        except (ClientError, BotoCoreError, ValueError, TypeError) as exc:
            log.debug("reading progress failed (will look again): %s", exc)
            return
        if changed is None:
            return
        watch.progress_etag, document = changed
        if document.get("token") == self.run_token:
            watch.progress, watch.has_progress = document.get("value"), True

    async def _react(self, task_arn: str, watch: Watch) -> None:
        if self.abandoned is not None:
            # The engine gave up on this attempt (worker shutting down, or it timed the attempt
            # out): stop now, the engine runs it again elsewhere.
            await self._stop(task_arn, f"multinode: engine interruption ({self.abandoned})")
            self.check_abandoned()
        now = time.monotonic()
        if self.interrupt is None and self.cancel_requested:
            await self._interrupt(task_arn, "cancel", STOP_CANCEL)
        elif self.interrupt is None and watch.deadline is not None and now >= watch.deadline:
            await self._interrupt(task_arn, "timeout", STOP_TIMEOUT)
        elif watch.started_at is None and now - watch.launched > self.timings.start_timeout:
            await self._stop(task_arn, "multinode: the task did not start in time")
            raise InfrastructureError(
                f"the task did not start within {self.timings.start_timeout:g} s"
            )

    async def _interrupt(self, task_arn: str, kind: str, reason: str) -> None:
        self.interrupt, self.phase = kind, "stopping"
        if not await self._stop(task_arn, reason):
            # Not stopped (throttled, or the task is not visible yet): asked again next tick.
            self.interrupt = None

    async def _finish(self, task: Json, watch: Watch) -> AttemptOutcome:
        document = await self._read_outcome()
        if watch.started_at is None and task.get("startedAt") is not None:
            watch.started_at = timestamp(task.get("startedAt"))
        await _settle(watch.background)
        return classify(self.request, task, document, self.interrupt, watch.started_at,
                        (watch.progress, watch.has_progress))

    async def _read_outcome(self) -> Json | None:
        # The function has already run: a passing S3 hiccup must not cost a whole new attempt.
        problem: Exception | None = None
        for delay in (*self.timings.launch_delays[:3], None):
            try:
                document = await self.call(
                    self.backend.store.get_json, self.location.bucket, self.location.key(OUTCOME_NAME)
                )
            except (ClientError, BotoCoreError, ValueError, TypeError) as exc:
                problem = exc
                if delay is not None:
                    await self.sleep(delay)
                continue
            if document is None or document.get("token") != self.run_token:
                return None
            return document
        raise InfrastructureError(f"reading the attempt's outcome failed: {problem}")


async def _settle(futures: list[asyncio.Future[None]]) -> None:
    # The RUNNING notice must not outlive the attempt, nor its failure go unobserved.
    pending = [f for f in futures if not f.done()]
    if pending:
        await asyncio.wait(pending, timeout=1.0)
    for future in futures:
        if future.done() and not future.cancelled() and future.exception() is not None:
            log.warning("RUNNING notice failed: %s", future.exception())
