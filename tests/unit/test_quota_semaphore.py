"""The semaphore's books (quota/semaphore.py) under arbitrary interleavings of acquire, repeat
requests, release (late ones included), cancellation of a waiter, reaping of vanished holders,
and workers' lease syncs, returns, deaths and expiry: slots in use never exceed the limit, waiters
are served in start order, a released or reaped slot is never granted twice, and a cancelled
waiter leaves the queue."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from multinode.contract.records import LeaseRequest, QuotaRequest, QuotaState
from temporal_workers.quota.semaphore import LEASE_TTL_SECONDS, Effect, Grant, SemaphoreBook

PROJECT, FUNCTION = "p", "f"
WORKERS = ("w0", "w1", "w2")


class SemaphoreMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.book = SemaphoreBook(QuotaState(holders={}, waiters=[]))
        self.limit = 1
        self.now = 1000.0
        self.started = 0  # invocation ids in start order: inv-000, inv-001, ...
        self.attempt: dict[str, int] = {}  # the attempt each live invocation is on
        self.busy: dict[str, int] = {}  # attempts each live worker runs on its lease
        self.dead: set[str] = set()

    @initialize(limit=st.integers(1, 4))
    def set_limit(self, limit: int) -> None:
        self.limit = limit

    # ----- helpers -------------------------------------------------------------------------

    def apply(self, operation: str, effects: list[Effect], before_holders: set[str]) -> None:
        """Checks every operation's grants: each names a holder, oldest waiter first. A grant
        may be signalled twice (a request handed over in a lease update that frees slots is
        granted by the update's serving and again as its own answer: replayed histories keep
        that second signal; the invocation's flag makes it harmless); the slot is one, which
        the holders' count checks."""
        granted = [e.invocation_id for e in effects if isinstance(e, Grant)]
        new = list(dict.fromkeys(i for i in granted if i not in before_holders))
        waiting = [w.invocation_id for w in self.book.waiters]
        for invocation_id in new:
            if operation != "reap":  # a reap may grant a slot to one it then reaps
                assert invocation_id in self.book.holders, f"{operation}: granted {invocation_id}, not a holder"
            later = [w for w in waiting if w < invocation_id]
            assert not later, f"{operation}: {invocation_id} served before older waiters {later}"

    def count(self, worker: str) -> int:
        lease = self.book.leases.get(worker)
        return lease.count if lease else 0

    def waiting(self) -> list[str]:
        return [w.invocation_id for w in self.book.waiters]

    # ----- invocations ---------------------------------------------------------------------

    @rule()
    def start(self) -> None:
        invocation_id = f"inv-{self.started:03d}"
        self.started += 1
        self.attempt[invocation_id] = 1
        self.acquire(invocation_id)

    def acquire(self, invocation_id: str) -> None:
        before = set(self.book.holders)
        request = QuotaRequest(PROJECT, FUNCTION, invocation_id, self.limit, self.attempt[invocation_id])
        self.apply("acquire", self.book.acquire(request), before)

    @precondition(lambda self: self.attempt)
    @rule(data=st.data())
    def repeat_request(self, data: st.DataObject) -> None:
        """A request sent again (a retried activity): it changes nothing."""
        invocation_id = data.draw(st.sampled_from(sorted(self.attempt)))
        holders, waiting = dict(self.book.holders), self.waiting()
        self.acquire(invocation_id)
        assert (dict(self.book.holders), self.waiting()) == (holders, waiting)

    @precondition(lambda self: self.book.holders)
    @rule(data=st.data(), late=st.booleans())
    def release(self, data: st.DataObject, late: bool) -> None:
        """A holder's attempt ends; a late release names an earlier attempt and frees nothing."""
        invocation_id = data.draw(st.sampled_from(sorted(self.book.holders)))
        attempt = self.book.holders[invocation_id]
        if late:
            self.apply("release", self.book.release(invocation_id, attempt - 1), set(self.book.holders))
            assert self.book.holders[invocation_id] == attempt
            return
        before = set(self.book.holders)
        self.apply("release", self.book.release(invocation_id, attempt), before)
        assert invocation_id not in self.book.holders
        if data.draw(st.booleans(), label="next attempt"):
            self.attempt[invocation_id] = attempt + 1
            self.acquire(invocation_id)
        else:
            del self.attempt[invocation_id]

    @precondition(lambda self: self.book.waiters)
    @rule(data=st.data())
    def cancel_waiter(self, data: st.DataObject) -> None:
        invocation_id = data.draw(st.sampled_from(self.waiting()))
        self.apply(
            "cancel", self.book.release(invocation_id, self.attempt[invocation_id] + 1), set(self.book.holders)
        )
        assert invocation_id not in self.waiting() and invocation_id not in self.book.holders
        del self.attempt[invocation_id]

    @precondition(lambda self: self.attempt)
    @rule(data=st.data())
    def reap(self, data: st.DataObject) -> None:
        """Invocations vanish (terminated, deleted) and the periodic check finds them."""
        closed = data.draw(st.lists(st.sampled_from(sorted(self.attempt)), min_size=1, unique=True))
        self.apply("reap", self.book.reap(closed), set(self.book.holders))
        for invocation_id in closed:
            assert invocation_id not in self.book.holders and invocation_id not in self.waiting()
            del self.attempt[invocation_id]

    # ----- workers' leases -----------------------------------------------------------------

    @rule(worker=st.sampled_from(WORKERS), data=st.data())
    def sync(self, worker: str, data: st.DataObject) -> None:
        """A live worker keeps at least what it uses and asks for some more; its local queue
        may join the semaphore's queue in the same step."""
        if worker in self.dead:
            return
        busy = self.busy.setdefault(worker, 0)
        keep = data.draw(st.integers(busy, max(busy, self.count(worker))), label="keep")
        want = data.draw(st.integers(keep, self.limit + 1), label="want")
        queued = []
        for _ in range(data.draw(st.integers(0, 2), label="queued")):
            invocation_id = f"inv-{self.started:03d}"
            self.started += 1
            self.attempt[invocation_id] = 1
            queued.append(QuotaRequest(PROJECT, FUNCTION, invocation_id, self.limit, 1))
        request = LeaseRequest(worker, PROJECT, FUNCTION, self.limit, keep, want, queued)
        before = set(self.book.holders)
        waiters_before = bool(self.book.waiters)
        count_before = self.count(worker)
        grant, effects = self.book.lease(request, self.now)
        self.apply("lease", effects, before)
        assert grant.count >= keep and grant.count == self.count(worker)
        if waiters_before:
            assert grant.count <= max(keep, count_before), "a lease grew while invocations waited"
        assert grant.contended == bool(self.book.waiters)
        for q in queued:
            assert q.invocation_id in self.book.holders or q.invocation_id in self.waiting()

    @rule(worker=st.sampled_from(WORKERS), more=st.booleans())
    def use_lease(self, worker: str, more: bool) -> None:
        """The worker starts (or ends) an attempt on a slot of its lease."""
        if worker in self.dead:
            return
        busy = self.busy.setdefault(worker, 0)
        if more and busy < self.count(worker):
            self.busy[worker] = busy + 1
        elif not more and busy:
            self.busy[worker] = busy - 1

    @rule(worker=st.sampled_from(WORKERS))
    def return_lease(self, worker: str) -> None:
        """A stopping worker, its attempts over, gives its lease back."""
        if worker in self.dead or self.busy.get(worker):
            return
        self.apply("return", self.book.return_lease(worker), set(self.book.holders))
        assert worker not in self.book.leases

    @rule(worker=st.sampled_from(WORKERS))
    def worker_dies(self, worker: str) -> None:
        self.dead.add(worker)
        self.busy.pop(worker, None)  # its attempts die with it

    @rule(seconds=st.sampled_from([1.0, 3.0]))
    def time_passes(self, seconds: float) -> None:
        """Live workers renew (they do every few seconds); dead workers' leases lapse."""
        for worker, lease in list(self.book.leases.items()):
            if worker not in self.dead:
                lease.renewed_at = self.now
        self.now += seconds
        self.apply("expire", self.book.expire_leases(self.now), set(self.book.holders))
        for worker, lease in self.book.leases.items():
            assert worker not in self.dead or self.now - lease.renewed_at <= LEASE_TTL_SECONDS

    # ----- always ------------------------------------------------------------------------

    @invariant()
    def slots_in_use_never_exceed_the_limit(self) -> None:
        assert self.book.in_use() <= self.limit
        running = len(self.book.holders) + sum(self.busy.values())
        assert running <= self.limit
        for worker, busy in self.busy.items():
            assert busy <= self.count(worker)

    @invariant()
    def waiters_in_start_order_and_nobody_twice(self) -> None:
        waiting = self.waiting()
        assert waiting == sorted(set(waiting)), waiting
        assert not set(waiting) & set(self.book.holders)
        # Nobody waits while a slot is free.
        assert not waiting or self.book.in_use() >= self.limit

    @invariant()
    def contended_is_whether_anybody_waits(self) -> None:
        assert self.book.contended == bool(self.book.waiters)

    @invariant()
    def state_survives_continue_as_new(self) -> None:
        again = SemaphoreBook(self.book.state())
        assert (again.holders, again.waiters, again.leases) == (self.book.holders, self.book.waiters, self.book.leases)


SemaphoreMachine.TestCase.settings = settings(max_examples=300, stateful_step_count=40, deadline=None)
TestSemaphore = SemaphoreMachine.TestCase
