"""Workers' lease books (quota/lease_book.py) against the semaphore's books (quota/semaphore.py),
both the real rules, under arbitrary interleavings of admissions, syncs (answered, answer lost
after the semaphore applied it, or never arrived), contention reads, attempts ending, queued
attempts giving up, waiters cancelled at the semaphore, worker deaths and time passing (live
workers renew; dead workers' leases lapse). A worker never runs more attempts than its lease holds
at the semaphore, so slots in use never exceed the limit; both queues keep start order."""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from multinode.contract.records import LeaseRequest, QuotaRequest, QuotaState
from temporal_workers.quota.lease_book import Admission, Answer, FunctionLease, LeaseBook, Queued
from temporal_workers.quota.semaphore import SemaphoreBook

P, F = "p", "f"
WORKERS = ("w0", "w1")


@dataclass
class Worker:
    worker_id: str
    book: LeaseBook[str] = field(default_factory=lambda: LeaseBook(max_queued=3))
    in_flight: tuple[LeaseRequest, list[str], float] | None = None
    running: dict[str, Admission] = field(default_factory=dict)  # invocation -> its slot here
    queued: dict[str, Queued[str]] = field(default_factory=dict)


class LeaseMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.semaphore = SemaphoreBook(QuotaState(holders={}, waiters=[]))
        self.limit = 1
        self.now = 1000.0
        self.started = 0
        self.workers = {name: Worker(f"{name}-0") for name in WORKERS}
        self.attempt: dict[str, int] = {}  # invocations at the semaphore: their attempt

    @initialize(limit=st.integers(1, 3))
    def set_limit(self, limit: int) -> None:
        self.limit = limit

    def lease(self, name: str) -> FunctionLease[str]:
        return self.workers[name].book.lease(P, F, self.limit, self.now)

    def to_semaphore(self, invocation_id: str) -> None:
        self.attempt[invocation_id] = 1
        self.semaphore.acquire(QuotaRequest(P, F, invocation_id, self.limit, 1))

    def resolve(self, name: str, answers: list[Answer[str]]) -> None:
        worker, lease = self.workers[name], self.lease(name)
        for invocation_id, admission in answers:
            queued = worker.queued.pop(invocation_id, None)
            if queued is not None:
                worker.book.done_waiting(lease, queued)
                if admission is not None:
                    older = [q.invocation_id for q in lease.queue if q.invocation_id < invocation_id]
                    assert not older, f"{invocation_id} served before older queued {older}"
            if admission is not None:
                worker.running[invocation_id] = admission
            elif queued is None and self.workers[name].book.may_queue(lease, self.now):
                worker.queued[invocation_id] = worker.book.enqueue(lease, invocation_id, 1, invocation_id)
            else:
                self.to_semaphore(invocation_id)

    # ----- attempts ------------------------------------------------------------------------

    @rule(name=st.sampled_from(WORKERS))
    def attempt_arrives(self, name: str) -> None:
        """What QuotaLeases.admit does with a new attempt."""
        invocation_id = f"inv-{self.started:03d}"
        self.started += 1
        worker, lease = self.workers[name], self.lease(name)
        admission = lease.take(self.now)
        if admission is not None:
            worker.running[invocation_id] = admission
        elif lease.trusts_contended(self.now):
            self.to_semaphore(invocation_id)
        elif not lease.queue:
            lease.ask(invocation_id)
        elif worker.book.may_queue(lease, self.now):
            worker.queued[invocation_id] = worker.book.enqueue(lease, invocation_id, 1, invocation_id)
        else:
            self.to_semaphore(invocation_id)

    @precondition(lambda self: any(w.running for w in self.workers.values()))
    @rule(data=st.data())
    def attempt_ends_on_a_lease(self, data: st.DataObject) -> None:
        name = data.draw(st.sampled_from([n for n, w in self.workers.items() if w.running]))
        worker = self.workers[name]
        invocation_id = data.draw(st.sampled_from(sorted(worker.running)))
        assert worker.book.release(worker.running.pop(invocation_id), self.now) is not None
        assert worker.book.release(Admission((P, F)), self.now) is None  # a stranger frees nothing

    @precondition(lambda self: any(w.queued for w in self.workers.values()))
    @rule(data=st.data())
    def queued_attempt_gives_up(self, data: st.DataObject) -> None:
        """It waited its longest: it asks the semaphore (where a hand-over may have put it)."""
        name = data.draw(st.sampled_from([n for n, w in self.workers.items() if w.queued]))
        worker = self.workers[name]
        queued = worker.queued.pop(data.draw(st.sampled_from(sorted(worker.queued))))
        lease = self.lease(name)
        worker.book.done_waiting(lease, queued)
        assert queued not in lease.queue
        self.to_semaphore(queued.invocation_id)

    @precondition(lambda self: self.semaphore.holders)
    @rule(data=st.data())
    def holder_ends(self, data: st.DataObject) -> None:
        invocation_id = data.draw(st.sampled_from(sorted(self.semaphore.holders)))
        if data.draw(st.booleans(), label="reaped"):
            self.semaphore.reap([invocation_id])
        else:
            self.semaphore.release(invocation_id, self.attempt[invocation_id])
        assert invocation_id not in self.semaphore.holders

    @precondition(lambda self: self.semaphore.waiters)
    @rule(data=st.data())
    def waiter_cancelled(self, data: st.DataObject) -> None:
        invocation_id = data.draw(st.sampled_from([w.invocation_id for w in self.semaphore.waiters]))
        self.semaphore.release(invocation_id, self.attempt[invocation_id] + 1)
        assert invocation_id not in {w.invocation_id for w in self.semaphore.waiters}

    # ----- syncs and reads -----------------------------------------------------------------

    @rule(name=st.sampled_from(WORKERS))
    def sync_sent(self, name: str) -> None:
        worker, lease = self.workers[name], self.lease(name)
        if worker.in_flight is None:
            worker.in_flight = (lease.request(worker.worker_id, self.now), list(lease.asks), self.now)

    @rule(name=st.sampled_from(WORKERS), outcome=st.sampled_from(["answered", "answer lost", "never arrived"]))
    def sync_ends(self, name: str, outcome: str) -> None:
        worker, lease = self.workers[name], self.lease(name)
        if worker.in_flight is None:
            return
        (request, asked, sent_at), worker.in_flight = worker.in_flight, None
        if outcome != "never arrived":
            grant, _ = self.semaphore.lease(request, self.now)
            for handed_over in request.queued:
                self.attempt.setdefault(handed_over.invocation_id, 1)
        if outcome == "answered":
            self.resolve(name, lease.answered(request, grant, sent_at, asked, self.now))
        else:
            self.resolve(name, lease.sync_failed(request, asked, self.now))

    @rule(name=st.sampled_from(WORKERS))
    def contention_read(self, name: str) -> None:
        """After a freed slot, with no sync in flight (a sync's answer decides otherwise)."""
        worker, lease = self.workers[name], self.lease(name)
        if worker.in_flight is not None:
            return
        if self.semaphore.contended:
            lease.contended = True
        else:
            self.resolve(name, lease.uncontended(self.now))

    @rule(name=st.sampled_from(WORKERS))
    def worker_dies(self, name: str) -> None:
        """Its attempts die with it; its lease stays at the semaphore until it lapses."""
        generation = int(self.workers[name].worker_id.split("-")[1]) + 1
        self.workers[name] = Worker(f"{name}-{generation}")  # a new process: a new worker id

    @rule(seconds=st.sampled_from([0.5, 3.0]))
    def time_passes(self, seconds: float) -> None:
        """Live workers renew every few seconds: an answered sync each; then the clock moves
        and the semaphore drops leases nobody renewed (dead workers')."""
        for name in WORKERS:
            self.sync_ends(name, "answered")
            self.sync_sent(name)
            self.sync_ends(name, "answered")
        self.now += seconds
        self.semaphore.expire_leases(self.now)

    # ----- always ------------------------------------------------------------------------

    @invariant()
    def a_worker_never_runs_more_than_its_lease_holds(self) -> None:
        for name, worker in self.workers.items():
            held = self.semaphore.leases.get(worker.worker_id)
            count = held.count if held else 0
            assert len(worker.running) <= count, f"{name} runs {len(worker.running)} on a lease of {count}"
            lease = worker.book.leases.get((P, F))
            if lease is not None:
                assert len(lease.busy) == len(worker.running)
                assert lease.free(self.now) + len(lease.busy) <= max(count, len(lease.busy))

    @invariant()
    def slots_in_use_never_exceed_the_limit(self) -> None:
        assert self.semaphore.in_use() <= self.limit
        running = len(self.semaphore.holders) + sum(len(w.running) for w in self.workers.values())
        assert running <= self.limit

    @invariant()
    def queues_in_start_order(self) -> None:
        waiting = [w.invocation_id for w in self.semaphore.waiters]
        assert waiting == sorted(set(waiting))
        assert not waiting or self.semaphore.in_use() >= self.limit
        for worker in self.workers.values():
            lease = worker.book.leases.get((P, F))
            local = [q.invocation_id for q in lease.queue] if lease else []
            assert local == sorted(set(local)) and set(local) == set(worker.queued)
            assert worker.book.queued == len(worker.queued) <= worker.book.max_queued


LeaseMachine.TestCase.settings = settings(max_examples=300, stateful_step_count=50, deadline=None)
TestLeases = LeaseMachine.TestCase
