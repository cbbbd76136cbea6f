"""The books of a worker's quota leases: per function, the slots its lease holds at the semaphore
(temporal_workers/quota/semaphore.py), the attempts using them, the admissions waiting for the
next sync's answer, and the local queue. Pure and synchronous: temporal_workers/quota/leases.py
drives it (tasks, futures, the channel to the semaphore) and resolves what it answers.

Rules:
- Exact: an attempt takes a slot only while the lease is usable (renewed recently enough that the
  semaphore surely still counts it), nobody is known to wait at the semaphore, no sync in flight
  may shrink the lease, nobody queues here, and a granted slot is free. A sync never keeps fewer
  slots than are in use here.
- Ordered: a lease grows only while nobody waits at the semaphore. Once somebody does, the next
  sync gives back every slot not in use and hands the local queue over to the semaphore in the
  same request, so it keeps its place (both queues order by invocation id).
- Local queue: only while this worker's lease holds the function's whole quota and nobody waits
  at the semaphore (then no attempt anywhere can get a slot sooner than from this lease); bounded
  in number across functions. A freed slot goes to the oldest queued attempt.

`H` is the driver's handle on a waiting attempt (an asyncio future): the book keeps it and says
which handle gets which answer (`Answer`: a slot, or None for "ask the semaphore"); it never
touches it.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from multinode.contract.records import LeaseGrant, LeaseRequest, QuotaRequest
from temporal_workers.quota.semaphore import LEASE_TTL_SECONDS

RENEW_SECONDS = 3.0
# Slots unused this long go back to the semaphore.
IDLE_SECONDS = 5.0
# A lease is used only this long after the renewal that kept it was sent, well inside the
# semaphore's own expiry.
USABLE_SECONDS = LEASE_TTL_SECONDS - 5.0
# A `contended` answer this recent is trusted without asking again.
CONTENDED_FRESH_SECONDS = 1.0
# Attempts queued here at once, across functions: each holds one of the worker's activity slots.
MAX_QUEUED = 100

H = TypeVar("H")
Key = tuple[str, str]


class Admission:
    """One admitted attempt's hold on a leased slot."""

    __slots__ = ("key",)

    def __init__(self, key: Key) -> None:
        self.key = key


@dataclass(eq=False)
class Queued(Generic[H]):
    """An attempt waiting here for the next slot this worker's lease frees."""

    invocation_id: str
    attempt_number: int
    handle: H


Answer = tuple[H, Admission | None]


@dataclass(eq=False)
class FunctionLease(Generic[H]):
    """One function's lease in this worker."""

    project_name: str
    function_name: str
    limit: int
    idle_since: float  # the worker's clock when its last attempt here ended (or the lease began)
    granted: int = 0
    busy: set[Admission] = field(default_factory=set)
    contended: bool = False  # invocations wait at the semaphore, as last heard
    synced_at: float = -1e9  # the worker's clock when the latest answered sync was sent
    shrinking: bool = False  # a sync in flight may lower the lease below what is granted
    # Admissions waiting for the next sync's answer, which hands them their slots.
    asks: list[H] = field(default_factory=list)
    # Attempts waiting for a slot to free up here, oldest invocation first.
    queue: list[Queued[H]] = field(default_factory=list)

    # ----- slots ---------------------------------------------------------------------------

    def usable(self, now: float) -> bool:
        """Renewed recently enough that the semaphore surely still counts it."""
        return now - self.synced_at <= USABLE_SECONDS

    def free(self, now: float) -> int:
        return self.granted - len(self.busy) if self.usable(now) else 0

    def take(self, now: float) -> Admission | None:
        """A slot for a newcomer, if the rules allow one. Queued attempts come first: a
        newcomer never takes a slot they wait for."""
        if self.contended or self.shrinking or self.queue or self.free(now) <= 0:
            return None
        return self._hold()

    def _hold(self) -> Admission:
        admission = Admission((self.project_name, self.function_name))
        self.busy.add(admission)
        return admission

    def release(self, admission: Admission, now: float) -> bool:
        """The attempt is gone: its slot is free here. False if it held none."""
        if admission not in self.busy:
            return False
        self.busy.discard(admission)
        if not self.busy:
            self.idle_since = now
        return True

    def trusts_contended(self, now: float) -> bool:
        """A recent answer said invocations wait at the semaphore: no use asking again."""
        return self.contended and now - self.synced_at < CONTENDED_FRESH_SECONDS

    def holds_slots(self) -> bool:
        return bool(self.granted or self.busy)

    def gives_back(self) -> bool:
        """Slots not in use are owed to the semaphore's waiters."""
        return self.contended and self.granted > len(self.busy)

    # ----- waiting for slots ---------------------------------------------------------------

    def ask(self, handle: H) -> None:
        """An admission waits for the next sync, which asks a slot for it."""
        self.asks.append(handle)

    def forget_ask(self, handle: H) -> None:
        if handle in self.asks:
            self.asks.remove(handle)

    def may_queue(self, now: float) -> bool:
        """Only while this lease holds the whole quota and nobody waits at the semaphore."""
        # What the local queue earns (benchmarks/bench.py fan-out, one worker, 100 x 1 s at
        # max_concurrency 10, three pairs of runs on one busy 2-core machine): 10.97, 10.94 and
        # 11.23 s with it, 16.72, 12.95 and 12.31 s without (MULTINODE_LOCAL_QUEUE=false): each
        # pair 9-35% faster with it, 1.09-1.12x of the ideal against 1.23-1.67x (target 1.1x).
        # Without it every hand-off of a slot costs the semaphore's round trip (a signal, its
        # task, a grant, another task). benchmarks/load.py (two workers sharing the quota, where
        # it seldom applies) shows no steady difference: 163.6, 77.8, 81.1 s with it, 90.3,
        # 63.2, 88.9 s without.
        return not self.contended and not self.shrinking and self.granted >= self.limit and self.usable(now)

    def enqueue(self, invocation_id: str, attempt_number: int, handle: H) -> Queued[H]:
        queued = Queued(invocation_id, attempt_number, handle)
        keys = [q.invocation_id for q in self.queue]
        self.queue.insert(bisect.bisect(keys, invocation_id), queued)
        return queued

    def leave(self, queued: Queued[H]) -> None:
        """A queued attempt gave up (timed out or cancelled)."""
        if queued in self.queue:
            self.queue.remove(queued)

    def serve_queue(self, now: float) -> list[Answer[H]]:
        """Free slots go to queued attempts, oldest first, unless somebody waits at the
        semaphore: then the whole queue goes there."""
        if self.contended:
            return self.send_queue_to_semaphore()
        answers: list[Answer[H]] = []
        while self.queue and self.free(now) > 0:
            answers.append((self.queue.pop(0).handle, self._hold()))
        return answers

    def send_queue_to_semaphore(self, only: set[str] | None = None) -> list[Answer[H]]:
        """Queued attempts (all, or those in `only`) get no slot: they ask the semaphore."""
        leaving = [q for q in self.queue if only is None or q.invocation_id in only]
        self.queue = [q for q in self.queue if q not in leaving]
        return [(q.handle, None) for q in leaving]

    def uncontended(self, now: float) -> list[Answer[H]]:
        """A read says nobody waits at the semaphore: freed slots stay here, for the queue."""
        self.contended = False
        return self.serve_queue(now)

    # ----- syncing with the semaphore ------------------------------------------------------

    def request(self, worker_id: str, now: float) -> LeaseRequest:
        """What the next sync asks the semaphore for."""
        busy = len(self.busy)
        idle = not (self.busy or self.asks or self.queue) and now - self.idle_since >= IDLE_SECONDS
        queued: list[QuotaRequest] = []
        if self.contended or idle:
            # Give back what is not in use; admissions wait until the answer. The local queue
            # moves to the semaphore in the same step, so it keeps its place in line there.
            self.shrinking = True
            keep, want = busy, busy
            queued = [
                QuotaRequest(self.project_name, self.function_name, q.invocation_id, self.limit, q.attempt_number)
                for q in self.queue
            ]
        else:
            # Keep every granted slot (attempts may take them while this sync is in flight), and
            # ask for one more per admission waiting.
            keep = max(self.granted, busy) if self.usable(now) else busy
            want = min(self.limit, max(keep, busy + len(self.asks)))
        return LeaseRequest(
            worker_id=worker_id, project_name=self.project_name, function_name=self.function_name,
            limit=self.limit, keep=keep, want=want, queued=queued,
        )

    def answered(
        self, request: LeaseRequest, grant: LeaseGrant, sent_at: float, asked: list[H], now: float
    ) -> list[Answer[H]]:
        """The semaphore answered `request` (sent at `sent_at`, for the admissions `asked`)."""
        # Never trust fewer slots than are in use here: the semaphore kept `keep`.
        self.granted = max(grant.count, len(self.busy))
        self.contended = grant.contended
        self.synced_at = sent_at
        self.shrinking = False
        # Queued there by this sync: they now wait at the semaphore, whatever it answered.
        answers = self.send_queue_to_semaphore({q.invocation_id for q in request.queued})
        answers += self._answer_asks(asked, now)
        answers += self.serve_queue(now)
        return answers

    def sync_failed(self, request: LeaseRequest, asked: list[H], now: float) -> list[Answer[H]]:
        """No answer: the semaphore may or may not have applied `request`. A shrink may have
        been applied, so only what it kept is trusted; the queue goes to the semaphore."""
        if self.shrinking:
            self.granted = min(self.granted, request.keep)
        self.shrinking = False
        answers = self._answer_asks(asked, now)  # a slot still held here, else the semaphore
        answers += self.send_queue_to_semaphore()
        return answers

    def _answer_asks(self, asked: list[H], now: float) -> list[Answer[H]]:
        """Each admission the sync asked for gets a slot if one is free, else None."""
        answers: list[Answer[H]] = [(handle, self.take(now)) for handle in asked]
        self.asks = [handle for handle in self.asks if handle not in asked]
        return answers


class LeaseBook(Generic[H]):
    """Every function lease of one worker, and the bound on attempts queued across them."""

    def __init__(self, max_queued: int = MAX_QUEUED) -> None:
        # 0: no local queue (an attempt without a slot goes to the semaphore at once).
        self.max_queued = max_queued
        self.queued = 0
        self.leases: dict[Key, FunctionLease[H]] = {}

    def lease(self, project_name: str, function_name: str, limit: int, now: float) -> FunctionLease[H]:
        key = (project_name, function_name)
        lease = self.leases.get(key)
        if lease is None:
            lease = self.leases[key] = FunctionLease(project_name, function_name, limit, idle_since=now)
        lease.limit = limit
        return lease

    def release(self, admission: Admission, now: float) -> FunctionLease[H] | None:
        """The lease whose slot the attempt held, now free; None if it held none."""
        lease = self.leases.get(admission.key)
        if lease is None or not lease.release(admission, now):
            return None
        return lease

    def may_queue(self, lease: FunctionLease[H], now: float) -> bool:
        return lease.may_queue(now) and self.queued < self.max_queued

    def enqueue(self, lease: FunctionLease[H], invocation_id: str, attempt_number: int, handle: H) -> Queued[H]:
        self.queued += 1
        return lease.enqueue(invocation_id, attempt_number, handle)

    def done_waiting(self, lease: FunctionLease[H], queued: Queued[H]) -> None:
        """A queued attempt stopped waiting: served, sent to the semaphore, or gave up."""
        self.queued -= 1
        lease.leave(queued)
