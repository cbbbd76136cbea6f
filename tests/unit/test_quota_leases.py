"""A worker's quota leases (the driver in leases.py and its lease book) against the semaphore's
own books (quota/semaphore.py, the rules the quota workflow runs) behind a scripted channel that
can hang or fail."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest

from multinode.contract.records import LeaseGrant, LeaseRequest, QuotaRequest, QuotaState
from temporal_workers.quota import lease_book
from temporal_workers.quota.lease_book import Admission
from temporal_workers.quota.leases import QuotaLeases
from temporal_workers.quota.semaphore import SemaphoreBook

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(20)]

PROJECT, FUNCTION = "p", "f"


@dataclass
class Semaphore:
    limit: int
    book: SemaphoreBook = field(default_factory=lambda: SemaphoreBook(QuotaState(holders={}, waiters=[])))
    syncs: list[LeaseRequest] = field(default_factory=list)
    gate: asyncio.Event | None = None  # while set to a cleared event, syncs hang
    failing: bool = False
    checks: int = 0  # reads of whether anybody waits
    queued_here: list[str] = field(default_factory=list)  # handed over by a worker's sync

    @property
    def leases(self) -> dict[str, int]:
        return {worker: lease.count for worker, lease in self.book.leases.items()}

    def in_use(self) -> int:
        return self.book.in_use()

    def someone_waits(self) -> None:
        """Invocations from elsewhere take every slot no lease holds, and one more waits."""
        while not self.book.contended:
            invocation_id = f"inv-9-elsewhere-{len(self.book.holders)}"
            self.book.acquire(QuotaRequest(PROJECT, FUNCTION, invocation_id, self.limit, 1))

    async def sync(self, request: LeaseRequest) -> LeaseGrant:
        self.syncs.append(request)
        if self.gate is not None:
            await self.gate.wait()
        await asyncio.sleep(0)
        if self.failing:
            raise ConnectionError("control plane unreachable")
        self.queued_here.extend(q.invocation_id for q in request.queued)
        grant, _ = self.book.lease(request, now=0.0)
        assert self.in_use() <= self.limit
        return grant

    async def give_back(self, worker_id: str, project_name: str, function_name: str) -> None:
        self.book.return_lease(worker_id)

    async def contended(self, project_name: str, function_name: str) -> bool:
        self.checks += 1
        await asyncio.sleep(0)
        if self.failing:
            raise ConnectionError("control plane unreachable")
        return self.book.contended


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_first_attempt_syncs_then_slots_are_reused_without_waiting() -> None:
    semaphore = Semaphore(limit=5)
    leases = QuotaLeases("w1", semaphore)
    first = await leases.admit(PROJECT, FUNCTION, 5)
    assert first is not None and semaphore.leases == {"w1": 1} and len(semaphore.syncs) == 1
    leases.release(first)
    # The semaphore hears of the release, but the next admission does not wait for it.
    semaphore.gate = asyncio.Event()
    # Waiting on the gated semaphore would hang: the deadline only catches that.
    second = await asyncio.wait_for(leases.admit(PROJECT, FUNCTION, 5), timeout=30)
    assert second is not None
    semaphore.gate.set()
    await settle()
    assert semaphore.leases == {"w1": 1}
    await leases.close()


async def test_a_burst_is_admitted_up_to_the_limit_in_two_syncs() -> None:
    semaphore = Semaphore(limit=30)
    leases = QuotaLeases("w1", semaphore)
    admitted = await asyncio.gather(*(leases.admit(PROJECT, FUNCTION, 30) for _ in range(100)))
    assert sum(a is not None for a in admitted) == 30
    assert semaphore.leases == {"w1": 30}
    assert len(semaphore.syncs) <= 3


async def test_attempts_arriving_one_by_one_below_the_limit_all_get_a_slot() -> None:
    """A newcomer arriving while a sync is in flight must not take the slot that sync asked
    for on behalf of an earlier attempt (which would then find none and leave the worker)."""
    semaphore = Semaphore(limit=10)
    leases = QuotaLeases("w1", semaphore)
    arrivals = []
    for _ in range(10):
        arrivals.append(asyncio.ensure_future(leases.admit(PROJECT, FUNCTION, 10)))
        await asyncio.sleep(0)  # each arrives while the previous one's sync is under way
    admitted = await asyncio.gather(*arrivals)
    assert all(a is not None for a in admitted) and semaphore.leases == {"w1": 10}
    await leases.close()


async def test_a_cancelled_waiter_passes_its_slot_on() -> None:
    semaphore = Semaphore(limit=2)
    semaphore.gate = asyncio.Event()
    leases = QuotaLeases("w1", semaphore)
    first = asyncio.ensure_future(leases.admit(PROJECT, FUNCTION, 2))
    await settle()
    first.cancel()
    semaphore.gate.set()
    await settle()
    lease = leases._book.leases[(PROJECT, FUNCTION)]
    assert not lease.busy
    assert await leases.admit(PROJECT, FUNCTION, 2) is not None
    await leases.close()


async def test_two_workers_never_hold_more_than_the_limit() -> None:
    semaphore = Semaphore(limit=4)
    one, two = QuotaLeases("w1", semaphore), QuotaLeases("w2", semaphore)
    got_one = [a for a in await asyncio.gather(*(one.admit(PROJECT, FUNCTION, 4) for _ in range(3))) if a]
    got_two = [a for a in await asyncio.gather(*(two.admit(PROJECT, FUNCTION, 4) for _ in range(3))) if a]
    assert len(got_one) + len(got_two) == 4 and semaphore.in_use() == 4
    for admission in got_one:
        one.release(admission)
    await settle()
    # Released slots stay with their worker until it idles or others wait: still exact.
    assert semaphore.in_use() <= 4
    assert await two.admit(PROJECT, FUNCTION, 4) is None


async def test_nothing_is_admitted_while_invocations_wait_at_the_semaphore() -> None:
    semaphore = Semaphore(limit=3)
    leases = QuotaLeases("w1", semaphore)
    held = [await leases.admit(PROJECT, FUNCTION, 3) for _ in range(3)]
    assert all(held) and semaphore.leases == {"w1": 3}
    semaphore.someone_waits()  # e.g. an attempt on another worker found no slot
    leases.release(held[0])  # type: ignore[arg-type]
    await settle()
    # The freed slot goes back to the semaphore, for the waiting invocation.
    assert semaphore.leases == {"w1": 2}
    assert await leases.admit(PROJECT, FUNCTION, 3) is None


async def one_slot_used_and_released(clock: Clock) -> tuple[Semaphore, QuotaLeases]:
    """A worker whose lease holds one slot, idle since `clock.now`."""
    semaphore = Semaphore(limit=3)
    leases = QuotaLeases("w1", semaphore, clock=clock)
    admission = await leases.admit(PROJECT, FUNCTION, 3)
    assert admission is not None
    leases.release(admission)
    await settle()
    return semaphore, leases


async def test_idle_slots_go_back() -> None:
    clock = Clock()
    semaphore, leases = await one_slot_used_and_released(clock)
    assert semaphore.leases == {"w1": 1}
    clock.now += lease_book.IDLE_SECONDS + 1
    leases._request_sync(leases._book.leases[(PROJECT, FUNCTION)])  # what the renewer does
    await settle()
    assert semaphore.leases == {}


async def test_a_lease_that_cannot_be_renewed_stops_admitting() -> None:
    clock = Clock()
    semaphore, leases = await one_slot_used_and_released(clock)
    semaphore.failing = True
    clock.now += lease_book.USABLE_SECONDS + 0.1
    # The semaphore may have dropped this lease by now: nothing is admitted on it.
    assert await leases.admit(PROJECT, FUNCTION, 3) is None


async def test_close_gives_the_lease_back() -> None:
    semaphore = Semaphore(limit=3)
    leases = QuotaLeases("w1", semaphore)
    admission = await leases.admit(PROJECT, FUNCTION, 3)
    assert admission is not None
    leases.release(admission)
    await settle()
    await leases.close()
    assert semaphore.leases == {}


async def full_lease(limit: int, max_queued: int = 100) -> tuple[Semaphore, QuotaLeases, list[Admission]]:
    """One worker whose lease holds the function's whole quota, every slot busy."""
    semaphore = Semaphore(limit=limit)
    leases = QuotaLeases("w1", semaphore, max_queued=max_queued)
    held = [await leases.admit(PROJECT, FUNCTION, limit) for _ in range(limit)]
    assert all(held) and semaphore.leases == {"w1": limit}
    return semaphore, leases, [a for a in held if a is not None]


def queue_up(leases: QuotaLeases, *invocation_ids: str, max_wait: float = 10) -> dict[str, asyncio.Task[Admission | None]]:
    return {
        invocation_id: asyncio.ensure_future(leases.admit(PROJECT, FUNCTION, 2, invocation_id, max_wait))
        for invocation_id in invocation_ids
    }


async def test_a_full_lease_queues_attempts_and_frees_slots_to_them_oldest_first() -> None:
    semaphore, leases, held = await full_lease(2)
    queued = queue_up(leases, "inv-3", "inv-1", "inv-2")
    await settle()
    assert not any(task.done() for task in queued.values())
    syncs, checks = len(semaphore.syncs), semaphore.checks
    leases.release(held[0])
    await settle()
    assert [i for i, task in queued.items() if task.done()] == ["inv-1"]
    assert queued["inv-1"].result() is not None
    # The hand-off waited for one read saying nobody waits at the semaphore, not for a sync.
    assert (len(semaphore.syncs), semaphore.checks) == (syncs, checks + 1)
    leases.release(held[1])
    await settle()
    assert [i for i, task in queued.items() if task.done()] == ["inv-1", "inv-2"]
    # Never more than the lease: the quota is still exact.
    assert semaphore.leases == {"w1": 2} and len(leases._book.leases[(PROJECT, FUNCTION)].busy) == 2
    queued["inv-3"].cancel()
    await settle()
    await leases.close()


async def test_queued_attempts_go_to_the_semaphore_once_others_wait_there() -> None:
    semaphore, leases, held = await full_lease(2)
    queued = queue_up(leases, "inv-1", "inv-2")
    await settle()
    semaphore.someone_waits()  # an attempt on another worker found no slot
    leases.release(held[0])
    await settle()
    assert [task.result() for task in queued.values()] == [None, None]
    # The freed slot went back to the semaphore, whose queue now orders everyone: the worker's
    # queued attempts joined it in the same sync, so later arrivals cannot overtake them.
    assert semaphore.leases == {"w1": 1}
    assert semaphore.queued_here == ["inv-1", "inv-2"]
    await leases.close()


async def test_slots_freed_under_steady_load_cost_reads_not_syncs() -> None:
    semaphore = Semaphore(limit=5)
    leases = QuotaLeases("w1", semaphore)
    first = await leases.admit(PROJECT, FUNCTION, 5)
    assert first is not None
    syncs = len(semaphore.syncs)
    admission: Admission | None = first
    for _ in range(50):
        assert admission is not None
        leases.release(admission)
        admission = await leases.admit(PROJECT, FUNCTION, 5)
        await settle()
    assert len(semaphore.syncs) == syncs and semaphore.checks >= 1
    # Once somebody waits at the semaphore, the next freed slot goes back there.
    semaphore.someone_waits()
    assert admission is not None
    leases.release(admission)
    await settle()
    assert len(semaphore.syncs) == syncs + 1 and semaphore.leases == {}
    assert await leases.admit(PROJECT, FUNCTION, 5) is None
    await leases.close()


async def test_an_unreadable_semaphore_is_asked_by_a_sync_instead() -> None:
    semaphore, leases, held = await full_lease(2)
    queued = queue_up(leases, "inv-1")
    await settle()
    syncs = len(semaphore.syncs)
    semaphore.failing = True  # the read fails, and so does the sync it falls back to
    leases.release(held[0])
    await settle()
    assert len(semaphore.syncs) == syncs + 1
    # Nobody confirmed that the semaphore's queue is empty: the queued attempt goes there.
    assert queued["inv-1"].done() and queued["inv-1"].result() is None
    await leases.close()


async def test_a_lease_without_the_whole_quota_does_not_queue() -> None:
    semaphore = Semaphore(limit=2)
    one, two = QuotaLeases("w1", semaphore), QuotaLeases("w2", semaphore)
    assert await one.admit(PROJECT, FUNCTION, 2) and await two.admit(PROJECT, FUNCTION, 2)
    # Slots may free up on the other worker first: waiting here could break start order.
    # Queued, it would wait max_wait (far beyond the deadline, which only catches that).
    assert await asyncio.wait_for(one.admit(PROJECT, FUNCTION, 2, "inv-1", max_wait=600), timeout=30) is None


async def test_queueing_is_bounded_in_time_and_number() -> None:
    _, leases, held = await full_lease(2, max_queued=1)
    waiting = queue_up(leases, "inv-1", max_wait=0.2)
    await settle()
    assert await asyncio.wait_for(leases.admit(PROJECT, FUNCTION, 2, "inv-2", max_wait=600), timeout=30) is None
    assert await asyncio.wait_for(waiting["inv-1"], timeout=30) is None
    leases.release(held[0])
    await settle()
    # With nobody queued, the freed slot is there for the next attempt.
    assert await leases.admit(PROJECT, FUNCTION, 2) is not None
    await leases.close()


async def test_a_cancelled_queued_attempt_loses_no_slot() -> None:
    semaphore, leases, held = await full_lease(2)
    queued = queue_up(leases, "inv-1", "inv-2")
    await settle()
    queued["inv-1"].cancel()
    leases.release(held[0])
    await settle()
    assert queued["inv-2"].done() and queued["inv-2"].result() is not None
    lease = leases._book.leases[(PROJECT, FUNCTION)]
    assert len(lease.busy) == 2 and not lease.queue and semaphore.leases == {"w1": 2}
    await leases.close()
