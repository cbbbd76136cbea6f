"""The books of one function's concurrency semaphore: who holds a slot, who waits for one, and how
many slots each worker's lease holds. Pure and synchronous: the quota workflow
(temporal_workers/workflows/quota.py) drives it and turns its effects into Temporal commands.

Rules:
- Slots in use are the holders (invocations granted a slot here) plus every lease's count; a
  request gets a slot at once only while nobody waits and one is free.
- Waiters are kept in invocation-id order, which is start order (ids begin with their creation
  time), and are served from the front whenever a slot frees up.
- A release names the attempt it ends: it frees the holder's slot only if the holder holds it for
  that attempt or an earlier one, and removes the invocation's waits for that attempt or an
  earlier one (a cancelled waiter leaves the queue). A later attempt's request survives a late
  release of an earlier one.
- A lease only grows while nobody waits, never drops below what its worker says it keeps, and
  lapses when its worker stops renewing it.

Every operation returns its effects in the order the workflow must apply them: `Grant(id)` (tell
that invocation it holds a slot) and `Contention(waiting)` (whether anybody waits now, for the
memo). The order matters for replay: it is the order of the workflow's commands.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from multinode.contract.records import Lease, LeaseGrant, LeaseRequest, QuotaRequest, QuotaState

# A release for this attempt number frees whatever the invocation holds or waits for.
ANY_ATTEMPT = 1 << 30
# A lease not renewed for this long is dropped: its worker is gone. Workers renew far more often.
LEASE_TTL_SECONDS = 15.0


@dataclass(frozen=True)
class Grant:
    """The invocation holds a slot now: signal it."""

    invocation_id: str


@dataclass(frozen=True)
class Contention:
    """Whether invocations wait here, after a change that may have altered it."""

    waiting: bool


Effect = Grant | Contention


class SemaphoreBook:
    def __init__(self, state: QuotaState) -> None:
        self.holders: dict[str, int] = dict(state.holders)
        self.waiters: list[QuotaRequest] = sorted(state.waiters, key=lambda r: r.invocation_id)
        self.leases: dict[str, Lease] = {
            worker: Lease(lease.count, lease.renewed_at) for worker, lease in state.leases.items()
        }

    def state(self) -> QuotaState:
        """What a new run (continue-as-new) starts from."""
        return QuotaState(holders=self.holders, waiters=self.waiters, leases=self.leases)

    @property
    def contended(self) -> bool:
        return bool(self.waiters)

    def in_use(self) -> int:
        return len(self.holders) + sum(lease.count for lease in self.leases.values())

    def has_anything_to_check(self) -> bool:
        """Holders may vanish and leases may lapse: the workflow checks periodically."""
        return bool(self.holders or self.leases)

    # ----- invocations ---------------------------------------------------------------------

    def acquire(self, request: QuotaRequest) -> list[Effect]:
        effects: list[Effect] = []
        if self._acquire(request, effects):
            effects.append(Grant(request.invocation_id))
        return effects

    def _acquire(self, request: QuotaRequest, effects: list[Effect]) -> bool:
        """True when the slot is the requester's right now (a repeat request included)."""
        if request.invocation_id in self.holders:
            self.holders[request.invocation_id] = max(self.holders[request.invocation_id], request.attempt_number)
            return True
        queued = any(w.invocation_id == request.invocation_id for w in self.waiters)
        if not queued:
            if not self.waiters and self.in_use() < request.limit:
                self.holders[request.invocation_id] = request.attempt_number
                return True
            keys = [w.invocation_id for w in self.waiters]
            self.waiters.insert(bisect.bisect(keys, request.invocation_id), request)
        self._grant(effects)
        return request.invocation_id in self.holders

    def release(self, invocation_id: str, attempt_number: int = ANY_ATTEMPT) -> list[Effect]:
        """The invocation is done with `attempt_number`'s slot, or its place in line for it."""
        if self.holders.get(invocation_id, attempt_number) <= attempt_number:
            self.holders.pop(invocation_id, None)
        self.waiters = [
            w for w in self.waiters
            if w.invocation_id != invocation_id or w.attempt_number > attempt_number
        ]
        effects: list[Effect] = []
        self._grant(effects)
        return effects

    def reap(self, closed: list[str]) -> list[Effect]:
        """These invocations ended without releasing (terminated, deleted): free what they held."""
        effects: list[Effect] = []
        for invocation_id in closed:
            effects += self.release(invocation_id)
        return effects

    # ----- workers' leases -----------------------------------------------------------------

    def lease(self, request: LeaseRequest, now: float) -> tuple[LeaseGrant, list[Effect]]:
        self.leases.pop(request.worker_id, None)
        free = max(0, request.limit - self.in_use())
        # While invocations wait here, slots go to them in order: a lease may not grow.
        count = request.keep if self.waiters else max(request.keep, min(request.want, free))
        if count > 0:
            self.leases[request.worker_id] = Lease(count, now)
        # The worker's queue joins this one, oldest first: each takes a free slot (one the
        # lease gave back) or its place in line, before anyone later is served.
        effects: list[Effect] = []
        for queued in request.queued:
            effects += self.acquire(queued)
        self._grant(effects)
        return LeaseGrant(count=count, contended=bool(self.waiters)), effects

    def return_lease(self, worker_id: str) -> list[Effect]:
        """A stopping worker gives its lease back."""
        self.leases.pop(worker_id, None)
        effects: list[Effect] = []
        self._grant(effects)
        return effects

    def expire_leases(self, now: float) -> list[Effect]:
        """Drop the leases of workers that stopped renewing them (dead workers)."""
        for worker_id, lease in list(self.leases.items()):
            if now - lease.renewed_at > LEASE_TTL_SECONDS:
                del self.leases[worker_id]
        effects: list[Effect] = []
        self._grant(effects)
        return effects

    # ----- granting ------------------------------------------------------------------------

    def serve(self) -> list[Effect]:
        """Grant free slots to waiters, oldest first (a new run starts with this)."""
        effects: list[Effect] = []
        self._grant(effects)
        return effects

    def _grant(self, effects: list[Effect]) -> None:
        while self.waiters and self.in_use() < self.waiters[0].limit:
            request = self.waiters.pop(0)
            self.holders[request.invocation_id] = request.attempt_number
            effects.append(Grant(request.invocation_id))
        effects.append(Contention(bool(self.waiters)))
