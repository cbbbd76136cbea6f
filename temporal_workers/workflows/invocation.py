"""The invocation workflow: one per invocation, its id is the invocation id.

Thin and deterministic: it runs attempts as activities and keeps the invocation's record. User
values pass through it as opaque jsonpickle text and are never decoded here.

Retries have two layers. The activity's Temporal retry policy absorbs engine faults (a lost
task, a dead worker, a launch failure) without counting them; the loop below counts only
failures of the function itself against `max_retries`. An attempt that no retry can help (the
activity failed non-retryable: the version's package is missing or corrupt, its requirements do
not install) fails the invocation at once, whatever `max_retries` allows.

The workflow closes with the Temporal status that matches the invocation's: SUCCEEDED completes
with the record as its result (since COMPACT_RECORD_PATCH without attempts and transitions);
FAILED and TIMED_OUT fail with an `ApplicationError` naming the error; CANCELLED closes canceled.
The final record is in the memo either way (with every attempt's traceback), which is where
readers take it whole.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError

from multinode.contract import names, preview
from multinode.contract.invocation import InvocationStatus
from multinode.contract.records import (
    AttemptOutcome,
    AttemptRecord,
    AttemptRequest,
    CancelReply,
    ErrorInfo,
    InvocationInput,
    InvocationRecord,
    Outcome,
    QuotaRequest,
    Transition,
)

# Plain str values (what the record and the search attribute store).
PENDING, RUNNING, CANCELLING = (s.value for s in (InvocationStatus.PENDING, InvocationStatus.RUNNING,
                                                  InvocationStatus.CANCELLING))
SUCCEEDED, FAILED, CANCELLED, TIMED_OUT = (s.value for s in (InvocationStatus.SUCCEEDED, InvocationStatus.FAILED,
                                                             InvocationStatus.CANCELLED, InvocationStatus.TIMED_OUT))
FINAL = {SUCCEEDED, FAILED, CANCELLED, TIMED_OUT}

STATUS_KEY = SearchAttributeKey.for_keyword(names.SA_STATUS)

# Engine-fault retries of one attempt: quick at first, then patient, then give up loudly.
INFRASTRUCTURE_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=20,
)
# Room for preparing the environment and the grace period beyond the function's own timeout,
# which the worker enforces itself.
START_TO_CLOSE_MARGIN = timedelta(hours=1)
# How soon a dead worker or a lost activity task is noticed. Set once per worker process from its
# settings; activity options are not part of replay checks, so this stays deterministic.
HEARTBEAT_TIMEOUT_SECONDS = 5.0
# Histories recorded before this patch close every invocation "Completed" with the record as the
# result; from it on, an invocation that did not succeed closes Failed or Canceled.
CLOSE_STATUS_PATCH = "close-with-matching-status"
# From this patch on, a non-retryable failure of the attempt activity (a version that cannot be
# prepared) ends the invocation FAILED at once instead of counting as one failed attempt.
CANNOT_RUN_PATCH = "fail-at-once-when-the-attempt-cannot-run"
# From this patch on, the result leaves the attempts and transitions to the final memo, and a
# start seen in the attempt's outcome is published with what follows in the same workflow task
# (the ending, or the wait for the next attempt): two memo copies less per invocation.
COMPACT_RECORD_PATCH = "compact-record"
# Values in the current details are cut to this (the Web UI shows them on the invocation's page).
DETAILS_VALUE_MAX_CHARS = 300
TIMED_OUT_ERROR_TYPE = "InvocationTimedOutError"


class InvocationFailure(ApplicationError):
    """How an invocation that failed or timed out closes its workflow. The data converter shows
    `remote_traceback` (the function's) as the failure's stack trace, in place of this
    workflow's frames."""

    def __init__(self, message: str, *details: object, type: str, non_retryable: bool, remote_traceback: str) -> None:
        super().__init__(message, *details, type=type, non_retryable=non_retryable)
        self.remote_traceback = remote_traceback


@workflow.defn(name=names.INVOCATION_WORKFLOW)
class InvocationWorkflow:
    @workflow.init
    def __init__(self, invocation: InvocationInput) -> None:
        self._input = invocation
        self._record = InvocationRecord(
            invocation_id=invocation.invocation_id,
            project_name=invocation.project_name,
            function_name=invocation.function_name,
            version_id=invocation.version_id,
            parent_invocation_id=invocation.parent_invocation_id,
            status=PENDING,
            created_at=invocation.created_at,
            transitions=[Transition(PENDING, invocation.created_at)],
        )
        self._cancel_requested = False
        self._attempt: workflow.ActivityHandle[AttemptOutcome] | None = None
        self._attempt_number = 0
        self._quota_granted = False
        self._children: list[str] = []
        self._engine_cancel = False  # the engine was asked to cancel the workflow itself
        self._closes_with_status = False  # CLOSE_STATUS_PATCH applies to this ending
        self._cannot_run = False  # an attempt failed in a way no retry can help (CANNOT_RUN_PATCH)
        self._compact = False  # COMPACT_RECORD_PATCH applies

    @workflow.run
    async def run(self, invocation: InvocationInput) -> InvocationRecord:
        self._compact = workflow.patched(COMPACT_RECORD_PATCH)
        main = asyncio.ensure_future(self._run_attempts())
        while True:
            try:
                record = await asyncio.shield(main)
                break
            except asyncio.CancelledError:
                self._engine_cancel = True
                if main.done():
                    record = main.result()
                    break
                # Cancelled through the engine (e.g. the Web UI): same path as `.cancel`.
                self._request_cancel()
        if self._closes_with_status:
            raise self._closing_error(record)
        if self._compact:
            return InvocationRecord(**{**record.__dict__, "attempts": [], "transitions": []})
        return record

    def _closing_error(self, record: InvocationRecord) -> BaseException:
        """How an invocation that did not succeed closes its workflow: Canceled when the engine
        was asked to cancel it (the only way Temporal lets a workflow close canceled), else
        Failed, with the error as the failure's message and its traceback in the details."""
        if record.status == CANCELLED and self._engine_cancel:
            return CancelledError(f"invocation {record.invocation_id} was cancelled")
        error = record.error
        if record.status == CANCELLED:
            error = ErrorInfo(type="InvocationCancelledError", message="cancelled on request")
        elif record.status == TIMED_OUT:
            message = error.message if error else "an attempt ran past its timeout"
            error = ErrorInfo(type=TIMED_OUT_ERROR_TYPE, message=message, traceback=error.traceback if error else None)
        elif error is None:
            error = ErrorInfo(type="InvocationFailedError", message="the invocation failed")
        text = f"{error.type}: {error.message}" if error.message else error.type
        details = [error.traceback] if error.traceback else []
        return InvocationFailure(text, *details, type=error.type, non_retryable=True,
                                 remote_traceback=error.traceback or "")

    async def _run_attempts(self) -> InvocationRecord:
        record = await self._attempts_until_final()
        if record.status != SUCCEEDED:
            # A parent that did not succeed takes its still-running children down with it: the
            # ones its attempts reported, and (the activity also looks) any the engine knows of.
            await workflow.execute_activity(
                names.CANCEL_INVOCATIONS_ACTIVITY,
                [self._input.invocation_id, *self._children],
                start_to_close_timeout=timedelta(seconds=60),
                retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=10), maximum_attempts=10),
            )
        return record

    async def _attempts_until_final(self) -> InvocationRecord:
        options = self._input.options
        while True:
            if self._cancel_requested:
                return self._finish(CANCELLED)
            # First ask the worker that picks the attempt up: its lease on the quota admits it
            # without a round trip here. Only if it has no slot to give does the invocation
            # queue at the semaphore, in start order.
            outcome = await self._run_attempt(lease=True)
            if outcome.outcome == Outcome.NO_SLOT:
                if self._cancel_requested or not await self._acquire_quota():
                    return self._finish(CANCELLED)
                outcome = await self._run_attempt(lease=False)
                if not outcome.quota_released:
                    await self._release_quota(self._attempt_number)
            if outcome.started_at is not None and self._record.status == PENDING:
                # Every path below publishes in this same task (an ending, or PENDING again).
                self._set_status(RUNNING, outcome.started_at, publish=not self._compact)
            self._children.extend(c for c in outcome.children if c not in self._children)
            if outcome.outcome == Outcome.CANCELLED and outcome.started_at is None:
                return self._finish(CANCELLED)  # cancelled before its container started: no attempt
            self._record.attempts.append(
                AttemptRecord(
                    number=self._attempt_number,
                    outcome=outcome.outcome,
                    started_at=outcome.started_at,
                    ended_at=outcome.ended_at,
                    error=outcome.error,
                    exit_code=outcome.exit_code,
                    logs_at=outcome.logs_at,
                )
            )
            self._record.result, self._record.has_result = outcome.value, outcome.has_value
            self._record.error = outcome.error
            if outcome.outcome == Outcome.SUCCEEDED:
                # A cancel that reached the function and was swallowed still ends CANCELLED;
                # the backend reports that as a cancelled outcome.
                self._record.error = None
                return self._finish(SUCCEEDED)
            if outcome.outcome == Outcome.CANCELLED:
                return self._finish(CANCELLED)
            if outcome.outcome == Outcome.TIMED_OUT:
                return self._finish(TIMED_OUT)
            self._record.num_failed_attempts += 1
            if self._record.num_failed_attempts > options.max_retries or self._cancel_requested or self._cannot_run:
                return self._finish(FAILED if not self._cancel_requested else CANCELLED)
            self._set_status(PENDING)  # waiting for the next attempt's slot

    # ----- concurrency quota --------------------------------------------------------------

    def _quota_id(self) -> str:
        return names.quota_workflow_id(self._input.project_name, self._input.function_name)

    async def _acquire_quota(self) -> bool:
        """Wait (PENDING) for a slot of the function's quota; False if cancelled meanwhile."""
        self._quota_granted = False
        await workflow.execute_local_activity(
            names.ACQUIRE_QUOTA_ACTIVITY,
            QuotaRequest(
                project_name=self._input.project_name,
                function_name=self._input.function_name,
                invocation_id=self._input.invocation_id,
                limit=self._input.options.max_concurrency,
                attempt_number=self._attempt_number + 1,
            ),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=5)),
        )
        await workflow.wait_condition(lambda: self._quota_granted or self._cancel_requested)
        if self._cancel_requested:
            await self._release_quota(self._attempt_number + 1)  # the place in the queue, or the slot
            return False
        return True

    async def _release_quota(self, attempt_number: int) -> None:
        await workflow.get_external_workflow_handle(self._quota_id()).signal(
            names.QUOTA_RELEASE_SIGNAL, args=[self._input.invocation_id, attempt_number]
        )

    @workflow.signal(name=names.QUOTA_GRANTED_SIGNAL)
    def quota_granted(self) -> None:
        self._quota_granted = True

    # ----- one attempt --------------------------------------------------------------------

    async def _run_attempt(self, lease: bool) -> AttemptOutcome:
        """Run the next attempt; the attempt number moves on unless the worker had no slot."""
        self._attempt_number += 1
        outcome = await self._start_and_await_attempt(lease)
        if outcome.outcome == Outcome.NO_SLOT:
            self._attempt_number -= 1
        return outcome

    async def _start_and_await_attempt(self, lease: bool) -> AttemptOutcome:
        options = self._input.options
        self._attempt = workflow.start_activity(
            names.RUN_ATTEMPT_ACTIVITY,
            AttemptRequest(invocation=self._input, attempt_number=self._attempt_number, lease=lease),
            result_type=AttemptOutcome,
            start_to_close_timeout=timedelta(seconds=options.timeout_seconds) + START_TO_CLOSE_MARGIN,
            heartbeat_timeout=timedelta(seconds=HEARTBEAT_TIMEOUT_SECONDS),
            retry_policy=INFRASTRUCTURE_RETRY,
            cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            summary=f"attempt {self._attempt_number}",
        )
        if self._cancel_requested:  # requested while the slot was being granted
            self._attempt.cancel()
        try:
            return await self._attempt
        except asyncio.CancelledError:
            # Cancel requested just as the attempt completed: the engine reports the cancel,
            # not the attempt's result, and its container is gone either way.
            return AttemptOutcome(Outcome.CANCELLED, None, None, None, workflow.now().timestamp())
        except ActivityError as err:
            now = workflow.now().timestamp()
            if isinstance(err.cause, CancelledError):
                # Cancelled before any worker started it: no container ever ran.
                return AttemptOutcome(Outcome.CANCELLED, None, None, None, now)
            cause = err.cause or err
            if isinstance(cause, ApplicationError) and cause.non_retryable and workflow.patched(CANNOT_RUN_PATCH):
                self._cannot_run = True
                error = ErrorInfo(type=cause.type or "ApplicationError", message=cause.message)
                return AttemptOutcome(Outcome.FAILED, None, error, None, now)
            error = ErrorInfo(
                type="InfrastructureError",
                message=f"the attempt could not be run by the engine: {cause}",
            )
            return AttemptOutcome(Outcome.FAILED, None, error, None, now)
        finally:
            self._attempt = None

    # ----- status -------------------------------------------------------------------------

    def _set_status(self, status: str, at: float | None = None, publish: bool = True) -> None:
        if self._record.status == status:
            return
        self._record.status = status
        self._record.transitions.append(Transition(status, at if at is not None else workflow.now().timestamp()))
        if publish:
            self._publish()

    def _publish(self) -> None:
        """Make the state readable without a worker: memo for `.get`, search attribute and
        details for the Web UI."""
        final = self._record.status in FINAL
        # The final record goes whole into the memo, so `.get` of a finished invocation is one
        # describe; while running, the result lives in the attempt's heartbeat instead. Earlier
        # attempts' tracebacks are left out of each status change (they would repeat in the
        # history at every one), except at an ending without a result, or at any ending under
        # COMPACT_RECORD_PATCH (the result no longer carries the attempts): readers take the
        # record from here.
        attempts = self._record.attempts
        if not (self._closes_with_status or (self._compact and final)):
            attempts = [_without_traceback(a) for a in attempts]
        memo_record = InvocationRecord(**{**self._record.__dict__, "attempts": attempts})
        if not final:
            memo_record.result, memo_record.has_result = None, False
        workflow.upsert_memo({"state": memo_record})
        workflow.upsert_search_attributes([STATUS_KEY.value_set(self._record.status)])
        workflow.set_current_details(self._details())

    def _details(self) -> str:
        """The invocation's story so far, as the Web UI shows it under "Current Details"
        (markdown). Only what this workflow knows: a running attempt's yields travel in its
        heartbeats, which the workflow never sees (and a signal per yield would grow the
        history), so while one runs the latest value shown is the one the last attempt ended
        with."""
        record = self._record
        status = record.status
        attempts = len(record.attempts)
        if status in FINAL:
            lines = [f"**{status}** after {attempts} attempt{'s' if attempts != 1 else ''}"
                     + (f" ({record.num_failed_attempts} failed)" if record.num_failed_attempts else "")]
        else:
            # Between attempts (no activity scheduled) the next one is meant.
            number = self._attempt_number if self._attempt is not None else self._attempt_number + 1
            most = self._input.options.max_retries + 1
            lines = [f"**{status}** · attempt {max(number, 1)} of at most {most}"
                     + (f" ({record.num_failed_attempts} failed)" if record.num_failed_attempts else "")]
        if record.error is not None:
            error = f"{record.error.type}: {record.error.message}" if record.error.message else record.error.type
            label = "error" if status in FINAL else "the last attempt's error"
            lines += ["", f"{label}: {preview.inline_code(preview.cut(error, DETAILS_VALUE_MAX_CHARS))}"]
        shown = preview.inline_code(preview.preview(record.result, DETAILS_VALUE_MAX_CHARS))
        if status == SUCCEEDED:
            lines += ["", f"result: {shown}"]
        elif record.has_result:
            label = "latest yielded value" if status in FINAL else "the value the last attempt ended with"
            lines += ["", f"{label}: {shown}"]
        if status == RUNNING:
            lines += ["", "a running attempt's newer yields are in its heartbeat "
                          "(Pending Activities → Heartbeat Details; `multinode get` decodes it)"]
        return "\n".join(lines)

    def _finish(self, status: str) -> InvocationRecord:
        if status != SUCCEEDED:
            self._closes_with_status = workflow.patched(CLOSE_STATUS_PATCH)
        self._record.ended_at = workflow.now().timestamp()
        self._set_status(status, self._record.ended_at)
        return self._record

    def _request_cancel(self) -> None:
        if self._cancel_requested or self._record.status in FINAL:
            return
        self._cancel_requested = True
        self._set_status(CANCELLING)
        if self._attempt is not None:
            self._attempt.cancel()

    # ----- handlers -----------------------------------------------------------------------

    @workflow.signal(name=names.ATTEMPT_STARTED_SIGNAL)
    def attempt_started(self, started_at: float, attempt_number: int = 0) -> None:
        current = attempt_number in (0, self._attempt_number) and self._attempt is not None
        if current and self._record.status == PENDING and not self._cancel_requested:
            self._set_status(RUNNING, started_at)

    @workflow.update(name=names.CANCEL_UPDATE)
    def cancel(self) -> CancelReply:
        """Acknowledge a cancel: the engine-level request usually arrives in the same task."""
        if self._record.status in FINAL:
            return CancelReply(requested=False, status=self._record.status)
        self._request_cancel()
        return CancelReply(requested=True, status=self._record.status)

    @workflow.query(name=names.STATE_QUERY)
    def state(self) -> InvocationRecord:
        return self._record


def _without_traceback(attempt: AttemptRecord) -> AttemptRecord:
    if attempt.error is None or attempt.error.traceback is None:
        return attempt
    return AttemptRecord(
        number=attempt.number, outcome=attempt.outcome, started_at=attempt.started_at,
        ended_at=attempt.ended_at, exit_code=attempt.exit_code, logs_at=attempt.logs_at,
        error=ErrorInfo(type=attempt.error.type, message=attempt.error.message),
    )


