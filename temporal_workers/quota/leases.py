"""A worker's leases on function quotas: slots of a function's semaphore (quota_workflow.py) that
this worker holds and hands to the attempts it runs itself.

Without a lease, every attempt would cost its invocation a round trip through the semaphore
workflow (a signal, the semaphore's workflow task, a grant signal, another workflow task) before
its container could start. With one, an uncontended attempt takes a slot in this process and
gives it back the moment its container is gone.

Exactness: the semaphore counts a lease's slots as in use, whoever uses them here, and this worker
never admits more attempts than its lease holds. Order: a lease grows only while nobody waits at
the semaphore; once somebody does (the grant says `contended`), this worker admits nothing itself
and gives back every slot it does not use, so waiting invocations get slots in start order.
Liveness: leases are renewed every few seconds; the semaphore drops one whose worker stopped
renewing, and the worker stops using a lease well before that could happen.

Queueing here: when this worker's lease holds the function's whole quota, every other attempt
anywhere must wait for one of its slots anyway. Instead of answering "no slot" (the invocation
would then queue at the semaphore: a signal, a grant and two more workflow tasks each), an
attempt waits here, in invocation-id order, and takes the next slot that frees up. A freed slot
goes to the local queue only after a read confirms that nobody waits at the semaphore; once
somebody does, the sync that gives the free slots back also queues the local queue at the
semaphore, in the same step, so a slot given back goes to whoever is oldest across both queues
(the semaphore orders waiters by invocation id too, so start order holds across workers). Waits
are bounded in time and in number.

Every sync with the semaphore is one update (synchronous answer) per function at a time, so a
burst of attempts costs one round trip, not one each. A freed slot costs no sync at all: the
semaphore keeps in its memo whether anybody waits, and one read of it (no workflow task, nothing
written) decides whether the slot stays here or goes back.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

from temporalio.client import Client, WithStartWorkflowOperation
from temporalio.common import WorkflowIDConflictPolicy

from multinode.contract import names
from multinode.contract.records import LeaseGrant, LeaseRequest, QuotaRequest, QuotaState
from multinode.engine.failures import consume_outcome
from temporal_workers.workflows import quota as quota_workflow

log = logging.getLogger("multinode.worker")



class LeaseChannel(Protocol):
    """How a worker talks to the semaphores."""

    async def sync(self, request: LeaseRequest) -> LeaseGrant:
        """Hold `request.want` slots, never fewer than `request.keep`; answer what is held."""

    async def give_back(self, worker_id: str, project_name: str, function_name: str) -> None:
        """Drop the whole lease, without waiting for an answer."""

    async def contended(self, project_name: str, function_name: str) -> bool:
        """Whether invocations wait at the semaphore, by a read that changes nothing."""


RENEW_SECONDS = 3.0
# Slots unused this long go back to the semaphore.
IDLE_SECONDS = 5.0
# A lease is used only this long after the renewal that kept it was sent, well inside the
# semaphore's own expiry.
USABLE_SECONDS = quota_workflow.LEASE_TTL_SECONDS - 5.0
# A `contended` answer this recent is trusted without asking again.
CONTENDED_FRESH_SECONDS = 1.0
SYNC_RETRY_SECONDS = 1.0
SYNC_TIMEOUT = timedelta(seconds=10)
# Attempts queued here at once, across functions: each holds one of the worker's activity slots.
MAX_QUEUED = 100


class Admission:
    """One admitted attempt's hold on a leased slot; give it back with `QuotaLeases.release`."""

    __slots__ = ("key",)

    def __init__(self, key: tuple[str, str]) -> None:
        self.key = key


@dataclass(eq=False)
class _Queued:
    """An attempt waiting here for the next slot this worker's lease frees."""

    invocation_id: str
    attempt_number: int
    answer: asyncio.Future[Admission | None]


@dataclass
class _FunctionLease:
    project_name: str
    function_name: str
    limit: int
    granted: int = 0
    busy: set[Admission] = field(default_factory=set)
    contended: bool = False
    synced_at: float = -1e9  # monotonic time the latest answered sync was sent
    idle_since: float = 0.0  # the worker's clock when its last attempt here ended (or the lease began)
    # Admissions waiting for the next sync's answer, which hands them their slots.
    waiting: list[asyncio.Future[Admission | None]] = field(default_factory=list)
    # Attempts waiting for a slot to free up here, oldest invocation first.
    queue: list[_Queued] = field(default_factory=list)
    sync: asyncio.Task[None] | None = None
    again: bool = False  # something changed during the sync in flight: sync once more
    check: asyncio.Task[None] | None = None
    recheck: bool = False  # a slot freed during the check in flight: check once more
    shrinking: bool = False  # a sync in flight may lower the lease below what is granted

    def usable(self, now: float) -> bool:
        """Renewed recently enough that the semaphore surely still counts it."""
        return now - self.synced_at <= USABLE_SECONDS

    def free(self, now: float) -> int:
        return self.granted - len(self.busy) if self.usable(now) else 0

    def hold(self) -> Admission:
        admission = Admission((self.project_name, self.function_name))
        self.busy.add(admission)
        return admission


class QuotaLeases:
    def __init__(
        self,
        worker_id: str,
        channel: LeaseChannel,
        clock: Callable[[], float] = time.monotonic,
        max_queued: int = MAX_QUEUED,
    ) -> None:
        self.worker_id = worker_id
        self._channel = channel
        self._clock = clock
        self._max_queued = max_queued
        self._queued = 0
        self._leases: dict[tuple[str, str], _FunctionLease] = {}
        self._renewer: asyncio.Task[None] | None = None

    # ----- admission ----------------------------------------------------------------------

    async def admit(
        self, project_name: str, function_name: str, limit: int, invocation_id: str = "", max_wait: float = 0.0,
        attempt_number: int = 0,
    ) -> Admission | None:
        """A slot for one attempt, or None: then the invocation asks the semaphore. With
        `max_wait`, an attempt may queue here that long for a slot this worker frees."""
        key = (project_name, function_name)
        lease = self._leases.get(key)
        if lease is None:
            lease = self._leases[key] = _FunctionLease(project_name, function_name, limit,
                                                       idle_since=self._clock())
        lease.limit = limit
        self._ensure_renewer()
        admission = self._take(lease)
        if admission is not None:
            return admission
        now = self._clock()
        if lease.contended and now - lease.synced_at < CONTENDED_FRESH_SECONDS:
            return None
        if not lease.queue:
            # The answer holds the slot for this attempt: a newcomer arriving meanwhile cannot
            # take the slot this sync asked for on its behalf.
            waiter: asyncio.Future[Admission | None] = asyncio.get_running_loop().create_future()
            lease.waiting.append(waiter)
            self._request_sync(lease)
            try:
                admission = await asyncio.shield(waiter)
            except asyncio.CancelledError:
                waiter.add_done_callback(self.release_if_admitted)
                raise
            finally:
                if waiter in lease.waiting:
                    lease.waiting.remove(waiter)
            if admission is not None:
                return admission
        if max_wait <= 0 or not self._may_queue(lease):
            return None
        return await self._wait_in_queue(lease, invocation_id, attempt_number, max_wait)

    def _may_queue(self, lease: _FunctionLease) -> bool:
        """Only while this worker holds the whole quota and nobody waits at the semaphore: then
        no attempt anywhere can get a slot sooner than from this lease."""
        return (
            not lease.contended
            and not lease.shrinking
            and lease.granted >= lease.limit
            and lease.usable(self._clock())
            and self._queued < self._max_queued
        )

    async def _wait_in_queue(
        self, lease: _FunctionLease, invocation_id: str, attempt_number: int, max_wait: float
    ) -> Admission | None:
        queued = _Queued(invocation_id, attempt_number, asyncio.get_running_loop().create_future())
        keys = [q.invocation_id for q in lease.queue]
        lease.queue.insert(bisect.bisect(keys, invocation_id), queued)
        self._queued += 1
        try:
            return await asyncio.wait_for(asyncio.shield(queued.answer), timeout=max_wait)
        except (TimeoutError, asyncio.CancelledError) as exc:
            if not queued.answer.done():
                queued.answer.cancel()
            else:
                self.release_if_admitted(queued.answer)  # handed a slot just as it gave up
            if isinstance(exc, TimeoutError):
                return None
            raise
        finally:
            self._queued -= 1
            if queued in lease.queue:
                lease.queue.remove(queued)

    def _take(self, lease: _FunctionLease) -> Admission | None:
        # Queued attempts come first: a newcomer never takes a slot they wait for.
        if lease.contended or lease.shrinking or lease.queue or lease.free(self._clock()) <= 0:
            return None
        return lease.hold()

    def release(self, admission: Admission) -> None:
        """The attempt's container is gone: its slot is free for the next one here, unless
        invocations wait at the semaphore (then it goes back there)."""
        lease = self._leases.get(admission.key)
        if lease is None or admission not in lease.busy:
            return
        lease.busy.discard(admission)
        if not lease.busy:
            lease.idle_since = self._clock()
        self._request_check(lease)

    # ----- checking for contention --------------------------------------------------------

    def _request_check(self, lease: _FunctionLease) -> None:
        # A sync in flight answers the same question, newer than this release: its answer
        # serves the queue or gives free slots back.
        if lease.sync is not None:
            return
        if lease.check is not None:
            lease.recheck = True
        else:
            lease.check = asyncio.ensure_future(self._run_check(lease))

    async def _run_check(self, lease: _FunctionLease) -> None:
        try:
            while True:
                lease.recheck = False
                try:
                    contended = await self._channel.contended(lease.project_name, lease.function_name)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # unknown: let the semaphore itself answer
                    log.debug("could not read the contention of %s.%s: %s",
                              lease.project_name, lease.function_name, exc)
                    contended = True
                if lease.sync is not None:
                    return  # a sync started meanwhile: its answer decides
                if contended:
                    lease.contended = True
                    self._request_sync(lease)  # gives back what is free, moves the queue there
                    return
                lease.contended = False
                self._serve_queue(lease)
                if not lease.recheck:
                    return
        finally:
            lease.check = None

    # ----- syncing with the semaphore -----------------------------------------------------

    def _request_sync(self, lease: _FunctionLease) -> None:
        if lease.sync is not None:
            lease.again = True
            return
        lease.sync = asyncio.ensure_future(self._run_sync(lease))

    def _request(self, lease: _FunctionLease) -> LeaseRequest:
        now = self._clock()
        busy = len(lease.busy)
        idle = not (lease.busy or lease.waiting or lease.queue) and now - lease.idle_since >= IDLE_SECONDS
        queued: list[QuotaRequest] = []
        if lease.contended or idle:
            # Give back what is not in use; admissions wait until the answer. The local queue
            # moves to the semaphore in the same step, so it keeps its place in line there.
            lease.shrinking = True
            keep, want = busy, busy
            queued = [
                QuotaRequest(lease.project_name, lease.function_name, q.invocation_id, lease.limit, q.attempt_number)
                for q in lease.queue
            ]
        else:
            # Keep every granted slot (attempts may take them while this sync is in flight), and
            # ask for one more per admission waiting.
            keep = max(lease.granted, busy) if lease.usable(now) else busy
            want = min(lease.limit, max(keep, busy + len(lease.waiting)))
        return LeaseRequest(
            worker_id=self.worker_id, project_name=lease.project_name,
            function_name=lease.function_name, limit=lease.limit, keep=keep, want=want, queued=queued,
        )

    async def _run_sync(self, lease: _FunctionLease) -> None:
        try:
            while True:
                lease.again = False
                waiting = list(lease.waiting)
                sent_at = self._clock()
                request = self._request(lease)
                try:
                    grant = await self._channel.sync(request)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("could not renew the quota lease of %s.%s: %s",
                                lease.project_name, lease.function_name, exc)
                    lease.shrinking = False
                    self._answer(lease, waiting)  # a slot still held here, else the semaphore
                    self._send_queue_to_semaphore(lease)
                    await asyncio.sleep(SYNC_RETRY_SECONDS)
                    if lease.waiting or lease.busy or lease.granted:
                        continue
                    return
                # Never trust fewer slots than are in use here: the semaphore kept `keep`.
                lease.granted = max(grant.count, len(lease.busy))
                lease.contended = grant.contended
                lease.synced_at = sent_at
                lease.shrinking = False
                # Queued there by this sync: they now wait at the semaphore, whatever it answered.
                self._send_queue_to_semaphore(lease, {q.invocation_id for q in request.queued})
                self._answer(lease, waiting)
                self._serve_queue(lease)
                giving_back = lease.contended and lease.granted > len(lease.busy)
                if not (lease.again or lease.waiting or giving_back):
                    return
        finally:
            lease.sync = None

    def _serve_queue(self, lease: _FunctionLease) -> None:
        """After an answer: free slots go to queued attempts, oldest first, unless somebody
        waits at the semaphore; then the whole queue goes there (see the module's docstring)."""
        if lease.contended:
            self._send_queue_to_semaphore(lease)
            return
        while lease.queue and lease.free(self._clock()) > 0:
            queued = lease.queue.pop(0)
            if not queued.answer.done():
                queued.answer.set_result(lease.hold())

    @staticmethod
    def _send_queue_to_semaphore(lease: _FunctionLease, only: set[str] | None = None) -> None:
        """Answer queued attempts (all, or those in `only`) with no slot: they ask the semaphore."""
        leaving = [q for q in lease.queue if only is None or q.invocation_id in only]
        lease.queue = [q for q in lease.queue if q not in leaving]
        for entry in leaving:
            if not entry.answer.done():
                entry.answer.set_result(None)

    def _answer(self, lease: _FunctionLease, waiting: list[asyncio.Future[Admission | None]]) -> None:
        """Each waiter the sync asked for gets a slot if one is free, else None."""
        for waiter in waiting:
            if not waiter.done():
                waiter.set_result(self._take(lease))
        lease.waiting = [w for w in lease.waiting if w not in waiting]

    def release_if_admitted(self, answer: asyncio.Future[Admission | None]) -> None:
        """For an admission whose attempt gave up: a slot handed to it is passed on."""
        if not answer.cancelled() and answer.exception() is None and (admission := answer.result()) is not None:
            self.release(admission)

    # ----- renewal ------------------------------------------------------------------------

    def _ensure_renewer(self) -> None:
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.ensure_future(self._renew_forever())

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(RENEW_SECONDS)
            for key, lease in list(self._leases.items()):
                if lease.granted or lease.busy:
                    self._request_sync(lease)
                elif lease.sync is None and lease.check is None and not lease.waiting:
                    del self._leases[key]  # nothing held: forget it

    async def close(self) -> None:
        """Give every lease back (the worker is stopping; its attempts have ended)."""
        if self._renewer is not None:
            self._renewer.cancel()
        for lease in self._leases.values():
            self._send_queue_to_semaphore(lease)
            for task in (lease.sync, lease.check):
                if task is not None:
                    task.cancel()
        for lease in list(self._leases.values()):
            if lease.granted and not lease.busy:
                try:
                    await asyncio.wait_for(
                        self._channel.give_back(self.worker_id, lease.project_name, lease.function_name), timeout=5
                    )
                except Exception as exc:  # it lapses at the semaphore anyway
                    log.warning("could not give back the quota lease of %s.%s: %s",
                                lease.project_name, lease.function_name, exc)
        self._leases.clear()


class EngineLeaseChannel:
    """Through the function's semaphore workflow, started if it does not exist yet."""

    def __init__(self, client: Client, task_queue: str) -> None:
        self._client = client
        self._task_queue = task_queue

    async def sync(self, request: LeaseRequest) -> LeaseGrant:
        semaphore: WithStartWorkflowOperation[Any, Any] = WithStartWorkflowOperation(
            names.QUOTA_WORKFLOW,
            QuotaState(holders={}, waiters=[]),
            id=names.quota_workflow_id(request.project_name, request.function_name),
            task_queue=self._task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            static_summary=f"concurrency quota of {request.project_name}.{request.function_name}",
        )
        # The answer needs a worker to run the semaphore's task: bounded, so a sync never
        # hangs on a control plane without workers.
        try:
            grant: LeaseGrant = await self._client.execute_update_with_start_workflow(
                names.QUOTA_LEASE_UPDATE, request, start_workflow_operation=semaphore, result_type=LeaseGrant,
                rpc_timeout=SYNC_TIMEOUT,
            )
        except BaseException:
            # The start operation's own result fails the same way; read it, or asyncio reports
            # it as a lost exception.
            consume_outcome(asyncio.ensure_future(semaphore.workflow_handle()))
            raise
        return grant

    async def give_back(self, worker_id: str, project_name: str, function_name: str) -> None:
        handle = self._client.get_workflow_handle(names.quota_workflow_id(project_name, function_name))
        await handle.signal(names.QUOTA_LEASE_RETURN_SIGNAL, worker_id)

    async def contended(self, project_name: str, function_name: str) -> bool:
        handle = self._client.get_workflow_handle(names.quota_workflow_id(project_name, function_name))
        description = await handle.describe(rpc_timeout=SYNC_TIMEOUT)
        return bool(await description.memo_value(quota_workflow.CONTENDED_MEMO, default=False))
