"""The concurrency quota of one function: a semaphore workflow, exact across every worker and
every version of the function.

Invocations ask by signal (signal-with-start creates the semaphore on first use) and are
answered by a grant signal, at once when a slot is free. Slots go to waiters in start order. An
invocation gives its slot back after each attempt, or its place in the queue when cancelled while
waiting. A release names the attempt it ends, so one that arrives after the invocation already
asked again for its next attempt frees nothing. A holder that vanished without releasing (its
workflow terminated or deleted) is reaped by a periodic check.

Workers also hold leases: slots counted here but handed out by the worker itself to the attempts
it runs, so an uncontended invocation never waits on this workflow (temporal_workers/
quota/leases.py). A lease only grows while nobody waits here, never shrinks below what the worker
says it uses, and lapses when its worker stops renewing it (a dead worker). Whether anybody waits
here is kept in the memo, so a worker can check it with a read instead of an update.

The rules live in temporal_workers/quota/semaphore.py (pure); this workflow feeds them its
signals, updates and timers and turns their effects into commands, in the order they come.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow

from multinode.contract import names as _names
from multinode.contract.records import LeaseGrant, LeaseRequest, QuotaRequest, QuotaState
from temporal_workers.quota.semaphore import (
    ANY_ATTEMPT,
    LEASE_TTL_SECONDS,
    Contention,
    Effect,
    Grant,
    SemaphoreBook,
)

# Set once per worker process from its settings (a timer duration is not checked on replay).
REAP_INTERVAL_SECONDS = 30.0
# Memo key: whether invocations wait here. Lease holders read it (a describe, no workflow task)
# each time one of their slots frees up.
CONTENDED_MEMO = "contended"
# workflow.patched id: histories from before the memo was kept replay without its upserts.
_CONTENDED_MEMO_PATCH = "contended-memo"


@workflow.defn(name=_names.QUOTA_WORKFLOW)
class QuotaWorkflow:
    @workflow.init
    def __init__(self, state: QuotaState) -> None:
        self._book = SemaphoreBook(state)
        self._grants: set[asyncio.Task[None]] = set()
        self._published_contended: bool | None = None  # unknown in a new run: publish once

    @workflow.run
    async def run(self, state: QuotaState) -> None:
        def suggested() -> bool:
            return workflow.info().is_continue_as_new_suggested()

        book = self._book
        self._apply(book.serve())
        while not suggested():
            if not book.has_anything_to_check():
                # Nothing to check on: no timer while idle.
                await workflow.wait_condition(lambda: suggested() or book.has_anything_to_check())
                continue
            interval = min(REAP_INTERVAL_SECONDS, LEASE_TTL_SECONDS) if book.leases else REAP_INTERVAL_SECONDS
            try:
                await workflow.wait_condition(suggested, timeout=timedelta(seconds=interval))
            except TimeoutError:
                self._apply(book.expire_leases(workflow.now().timestamp()))
                await self._reap()
        await workflow.wait_condition(lambda: workflow.all_handlers_finished() and not self._grants)
        workflow.continue_as_new(book.state())

    @workflow.update(name=_names.QUOTA_LEASE_UPDATE)
    def lease(self, request: LeaseRequest) -> LeaseGrant:
        grant, effects = self._book.lease(request, workflow.now().timestamp())
        self._apply(effects)
        return grant

    @workflow.signal(name=_names.QUOTA_LEASE_RETURN_SIGNAL)
    def return_lease(self, worker_id: str) -> None:
        """A stopping worker gives its lease back (a signal: it needs no worker to land)."""
        self._apply(self._book.return_lease(worker_id))

    @workflow.signal(name=_names.QUOTA_ACQUIRE_SIGNAL)
    def acquire(self, request: QuotaRequest) -> None:
        self._apply(self._book.acquire(request))

    @workflow.signal(name=_names.QUOTA_RELEASE_SIGNAL)
    def release(self, invocation_id: str, attempt_number: int = ANY_ATTEMPT) -> None:
        self._apply(self._book.release(invocation_id, attempt_number))

    def _apply(self, effects: list[Effect]) -> None:
        """The book's effects as commands, in its order: grant signals and memo upserts."""
        for effect in effects:
            if isinstance(effect, Grant):
                self._spawn_notify(effect.invocation_id)
            elif isinstance(effect, Contention):
                self._publish_contention(effect.waiting)

    def _publish_contention(self, contended: bool) -> None:
        if contended != self._published_contended and workflow.patched(_CONTENDED_MEMO_PATCH):
            workflow.upsert_memo({CONTENDED_MEMO: contended})
            self._published_contended = contended

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
        if not self._book.holders:
            return
        closed: list[str] = await workflow.execute_activity(
            _names.CLOSED_INVOCATIONS_ACTIVITY,
            sorted(self._book.holders),
            result_type=list[str],
            start_to_close_timeout=timedelta(seconds=30),
        )
        self._apply(self._book.reap(closed))
