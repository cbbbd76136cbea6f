"""The concurrency quota of one function: a semaphore workflow, exact across every worker and
every version of the function.

Invocations ask by signal (signal-with-start creates the semaphore on first use) and are
answered by a grant signal, at once when a slot is free. Slots go to waiters in start order. An
invocation gives its slot back after each attempt, or its place in the queue when cancelled while
waiting. A release names the attempt it ends, so one that arrives after the invocation already
asked again for its next attempt frees nothing. A holder that vanished without releasing (its
workflow terminated or deleted) is reaped by a periodic check.
"""

from __future__ import annotations

import asyncio
import bisect
from datetime import timedelta

from temporalio import workflow

from multinode import _names
from multinode._wire import QuotaRequest, QuotaState

# Set once per worker process from its settings (a timer duration is not checked on replay).
REAP_INTERVAL_SECONDS = 30.0
# A release for this attempt number frees whatever the invocation holds or waits for.
ANY_ATTEMPT = 1 << 30


@workflow.defn(name=_names.QUOTA_WORKFLOW)
class QuotaWorkflow:
    @workflow.init
    def __init__(self, state: QuotaState) -> None:
        self._holders: dict[str, int] = dict(state.holders)
        self._waiters: list[QuotaRequest] = sorted(state.waiters, key=lambda r: r.invocation_id)
        self._grants: set[asyncio.Task[None]] = set()

    @workflow.run
    async def run(self, state: QuotaState) -> None:
        self._grant()
        while not workflow.info().is_continue_as_new_suggested():
            try:
                await workflow.wait_condition(
                    lambda: workflow.info().is_continue_as_new_suggested(),
                    timeout=timedelta(seconds=REAP_INTERVAL_SECONDS),
                )
            except TimeoutError:
                await self._reap()
        await workflow.wait_condition(lambda: workflow.all_handlers_finished() and not self._grants)
        workflow.continue_as_new(QuotaState(holders=self._holders, waiters=self._waiters))

    @workflow.signal(name=_names.QUOTA_ACQUIRE_SIGNAL)
    def acquire(self, request: QuotaRequest) -> None:
        if self._acquire(request):
            self._spawn_notify(request.invocation_id)

    def _acquire(self, request: QuotaRequest) -> bool:
        """True when the slot is the requester's right now (a repeat request included)."""
        if request.invocation_id in self._holders:
            self._holders[request.invocation_id] = max(self._holders[request.invocation_id], request.attempt_number)
            return True
        queued = any(w.invocation_id == request.invocation_id for w in self._waiters)
        if not queued:
            if not self._waiters and len(self._holders) < request.limit:
                self._holders[request.invocation_id] = request.attempt_number
                return True
            keys = [w.invocation_id for w in self._waiters]
            self._waiters.insert(bisect.bisect(keys, request.invocation_id), request)
        self._grant()
        return request.invocation_id in self._holders

    @workflow.signal(name=_names.QUOTA_RELEASE_SIGNAL)
    def release(self, invocation_id: str, attempt_number: int = ANY_ATTEMPT) -> None:
        if self._holders.get(invocation_id, attempt_number) <= attempt_number:
            self._holders.pop(invocation_id, None)
        self._waiters = [
            w for w in self._waiters
            if w.invocation_id != invocation_id or w.attempt_number > attempt_number
        ]
        self._grant()

    def _grant(self) -> None:
        while self._waiters and len(self._holders) < self._waiters[0].limit:
            request = self._waiters.pop(0)
            self._holders[request.invocation_id] = request.attempt_number
            self._spawn_notify(request.invocation_id)

    def _spawn_notify(self, invocation_id: str) -> None:
        task = asyncio.ensure_future(self._notify(invocation_id))
        self._grants.add(task)
        task.add_done_callback(self._grants.discard)

    async def _notify(self, invocation_id: str) -> None:
        try:
            await workflow.get_external_workflow_handle(invocation_id).signal(_names.QUOTA_GRANTED_SIGNAL)
        except Exception:  # a failed external signal: the target no longer exists
            # The invocation is gone: its slot goes to the next in line.
            self.release(invocation_id)

    async def _reap(self) -> None:
        if not self._holders:
            return
        closed: list[str] = await workflow.execute_activity(
            _names.CLOSED_INVOCATIONS_ACTIVITY,
            sorted(self._holders),
            result_type=list[str],
            start_to_close_timeout=timedelta(seconds=30),
        )
        for invocation_id in closed:
            self.release(invocation_id)
