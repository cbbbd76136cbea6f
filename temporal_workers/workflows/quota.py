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
quota_leases.py). A lease only grows while nobody waits here, never shrinks below what the worker
says it uses, and lapses when its worker stops renewing it (a dead worker). Whether anybody waits
here is kept in the memo, so a worker can check it with a read instead of an update.
"""

from __future__ import annotations

import asyncio
import bisect
from datetime import timedelta

from temporalio import workflow

from multinode.contract import names as _names
from multinode.contract.records import Lease, LeaseGrant, LeaseRequest, QuotaRequest, QuotaState

# Set once per worker process from its settings (a timer duration is not checked on replay).
REAP_INTERVAL_SECONDS = 30.0
# A release for this attempt number frees whatever the invocation holds or waits for.
ANY_ATTEMPT = 1 << 30
# A lease not renewed for this long is dropped: its worker is gone. Workers renew far more often.
LEASE_TTL_SECONDS = 15.0
# Memo key: whether invocations wait here. Lease holders read it (a describe, no workflow task)
# each time one of their slots frees up.
CONTENDED_MEMO = "contended"
# workflow.patched id: histories from before the memo was kept replay without its upserts.
_CONTENDED_MEMO_PATCH = "contended-memo"


@workflow.defn(name=_names.QUOTA_WORKFLOW)
class QuotaWorkflow:
    @workflow.init
    def __init__(self, state: QuotaState) -> None:
        self._holders: dict[str, int] = dict(state.holders)
        self._waiters: list[QuotaRequest] = sorted(state.waiters, key=lambda r: r.invocation_id)
        self._grants: set[asyncio.Task[None]] = set()
        self._leases: dict[str, Lease] = {
            worker: Lease(lease.count, lease.renewed_at) for worker, lease in state.leases.items()
        }
        self._published_contended: bool | None = None  # unknown in a new run: publish once

    @workflow.run
    async def run(self, state: QuotaState) -> None:
        def suggested() -> bool:
            return workflow.info().is_continue_as_new_suggested()

        self._grant()
        while not suggested():
            if not (self._holders or self._leases):
                # Nothing to check on: no timer while idle.
                await workflow.wait_condition(lambda: suggested() or bool(self._holders or self._leases))
                continue
            interval = min(REAP_INTERVAL_SECONDS, LEASE_TTL_SECONDS) if self._leases else REAP_INTERVAL_SECONDS
            try:
                await workflow.wait_condition(suggested, timeout=timedelta(seconds=interval))
            except TimeoutError:
                self._expire_leases()
                await self._reap()
        await workflow.wait_condition(lambda: workflow.all_handlers_finished() and not self._grants)
        workflow.continue_as_new(QuotaState(holders=self._holders, waiters=self._waiters, leases=self._leases))

    def _in_use(self) -> int:
        return len(self._holders) + sum(lease.count for lease in self._leases.values())

    @workflow.update(name=_names.QUOTA_LEASE_UPDATE)
    def lease(self, request: LeaseRequest) -> LeaseGrant:
        self._leases.pop(request.worker_id, None)
        free = max(0, request.limit - self._in_use())
        # While invocations wait here, slots go to them in order: a lease may not grow.
        count = request.keep if self._waiters else max(request.keep, min(request.want, free))
        if count > 0:
            self._leases[request.worker_id] = Lease(count, workflow.now().timestamp())
        # The worker's queue joins this one, oldest first: each takes a free slot (one the
        # lease gave back) or its place in line, before anyone later is served.
        for queued in request.queued:
            self.acquire(queued)
        self._grant()
        return LeaseGrant(count=count, contended=bool(self._waiters))

    @workflow.signal(name=_names.QUOTA_LEASE_RETURN_SIGNAL)
    def return_lease(self, worker_id: str) -> None:
        """A stopping worker gives its lease back (a signal: it needs no worker to land)."""
        self._leases.pop(worker_id, None)
        self._grant()

    def _expire_leases(self) -> None:
        now = workflow.now().timestamp()
        for worker_id, lease in list(self._leases.items()):
            if now - lease.renewed_at > LEASE_TTL_SECONDS:
                del self._leases[worker_id]
        self._grant()

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
            if not self._waiters and self._in_use() < request.limit:
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
        while self._waiters and self._in_use() < self._waiters[0].limit:
            request = self._waiters.pop(0)
            self._holders[request.invocation_id] = request.attempt_number
            self._spawn_notify(request.invocation_id)
        self._publish_contention()

    def _publish_contention(self) -> None:
        contended = bool(self._waiters)
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
