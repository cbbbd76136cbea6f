"""A worker's leases on function quotas: slots of a function's semaphore (workflows/quota.py) that
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

The rules (what is admitted, asked, queued, handed over) are the lease book's
(temporal_workers/quota/lease_book.py, pure); this module is its driver: the futures attempts
wait on, one sync task and one check task per function, the renewer. The channel through the
engine is temporal_workers/quota/channel.py.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from multinode.contract.records import LeaseGrant, LeaseRequest
from temporal_workers.quota.lease_book import (
    MAX_QUEUED,
    RENEW_SECONDS,
    Admission,
    Answer,
    FunctionLease,
    LeaseBook,
    Queued,
)

log = logging.getLogger("multinode.worker")

SYNC_RETRY_SECONDS = 1.0

Waiter = asyncio.Future[Admission | None]


class LeaseChannel(Protocol):
    """How a worker talks to the semaphores."""

    async def sync(self, request: LeaseRequest) -> LeaseGrant:
        """Hold `request.want` slots, never fewer than `request.keep`; answer what is held."""

    async def give_back(self, worker_id: str, project_name: str, function_name: str) -> None:
        """Drop the whole lease, without waiting for an answer."""

    async def contended(self, project_name: str, function_name: str) -> bool:
        """Whether invocations wait at the semaphore, by a read that changes nothing."""


@dataclass(eq=False)
class _Flights:
    """The tasks talking to one function's semaphore: at most one sync and one check at a time."""

    sync: asyncio.Task[None] | None = None
    again: bool = False  # something changed during the sync in flight: sync once more
    check: asyncio.Task[None] | None = None
    recheck: bool = False  # a slot freed during the check in flight: check once more


class QuotaLeases:
    def __init__(
        self,
        worker_id: str,
        channel: LeaseChannel,
        clock: Callable[[], float] = time.monotonic,
        max_queued: int = MAX_QUEUED,
    ) -> None:
        """`max_queued` 0: no local queue (MULTINODE_LOCAL_QUEUE=false)."""
        self.worker_id = worker_id
        self._channel = channel
        self._clock = clock
        self._book: LeaseBook[Waiter] = LeaseBook(max_queued)
        self._flights: dict[tuple[str, str], _Flights] = {}
        self._renewer: asyncio.Task[None] | None = None

    def _flights_of(self, lease: FunctionLease[Waiter]) -> _Flights:
        return self._flights.setdefault((lease.project_name, lease.function_name), _Flights())

    # ----- admission ----------------------------------------------------------------------

    async def admit(
        self, project_name: str, function_name: str, limit: int, invocation_id: str = "", max_wait: float = 0.0,
        attempt_number: int = 0,
    ) -> Admission | None:
        """A slot for one attempt, or None: then the invocation asks the semaphore. With
        `max_wait`, an attempt may queue here that long for a slot this worker frees."""
        lease = self._book.lease(project_name, function_name, limit, self._clock())
        self._ensure_renewer()
        admission = lease.take(self._clock())
        if admission is not None:
            return admission
        if lease.trusts_contended(self._clock()):
            return None
        if not lease.queue:
            # The answer holds the slot for this attempt: a newcomer arriving meanwhile cannot
            # take the slot this sync asked for on its behalf.
            waiter: Waiter = asyncio.get_running_loop().create_future()
            lease.ask(waiter)
            self._request_sync(lease)
            try:
                admission = await asyncio.shield(waiter)
            except asyncio.CancelledError:
                waiter.add_done_callback(self.release_if_admitted)
                raise
            finally:
                lease.forget_ask(waiter)
            if admission is not None:
                return admission
        if max_wait <= 0 or not self._book.may_queue(lease, self._clock()):
            return None
        return await self._wait_in_queue(lease, invocation_id, attempt_number, max_wait)

    async def _wait_in_queue(
        self, lease: FunctionLease[Waiter], invocation_id: str, attempt_number: int, max_wait: float
    ) -> Admission | None:
        queued: Queued[Waiter] = self._book.enqueue(
            lease, invocation_id, attempt_number, asyncio.get_running_loop().create_future()
        )
        answer = queued.handle
        try:
            return await asyncio.wait_for(asyncio.shield(answer), timeout=max_wait)
        except (TimeoutError, asyncio.CancelledError) as exc:
            if not answer.done():
                answer.cancel()
            else:
                self.release_if_admitted(answer)  # handed a slot just as it gave up
            if isinstance(exc, TimeoutError):
                return None
            raise
        finally:
            self._book.done_waiting(lease, queued)

    def release(self, admission: Admission) -> None:
        """The attempt's container is gone: its slot is free for the next one here, unless
        invocations wait at the semaphore (then it goes back there)."""
        lease = self._book.release(admission, self._clock())
        if lease is not None:
            self._request_check(lease)

    def release_if_admitted(self, answer: Waiter) -> None:
        """For an admission whose attempt gave up: a slot handed to it is passed on."""
        if not answer.cancelled() and answer.exception() is None and (admission := answer.result()) is not None:
            self.release(admission)

    def _resolve(self, answers: list[Answer[Waiter]]) -> None:
        for waiter, admission in answers:
            if not waiter.done():
                waiter.set_result(admission)
            elif admission is not None:  # the attempt gave up already: pass the slot on
                self.release(admission)

    # ----- checking for contention --------------------------------------------------------

    def _request_check(self, lease: FunctionLease[Waiter]) -> None:
        flights = self._flights_of(lease)
        # A sync in flight answers the same question, newer than this release: its answer
        # serves the queue or gives free slots back.
        if flights.sync is not None:
            return
        if flights.check is not None:
            flights.recheck = True
        else:
            flights.check = asyncio.ensure_future(self._run_check(lease, flights))

    async def _run_check(self, lease: FunctionLease[Waiter], flights: _Flights) -> None:
        try:
            while True:
                flights.recheck = False
                try:
                    contended = await self._channel.contended(lease.project_name, lease.function_name)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # unknown: let the semaphore itself answer
                    log.debug("could not read the contention of %s.%s: %s",
                              lease.project_name, lease.function_name, exc)
                    contended = True
                if flights.sync is not None:
                    return  # a sync started meanwhile: its answer decides
                if contended:
                    lease.contended = True
                    self._request_sync(lease)  # gives back what is free, moves the queue there
                    return
                self._resolve(lease.uncontended(self._clock()))
                if not flights.recheck:
                    return
        finally:
            flights.check = None

    # ----- syncing with the semaphore -----------------------------------------------------

    def _request_sync(self, lease: FunctionLease[Waiter]) -> None:
        flights = self._flights_of(lease)
        if flights.sync is not None:
            flights.again = True
            return
        flights.sync = asyncio.ensure_future(self._run_sync(lease, flights))

    async def _run_sync(self, lease: FunctionLease[Waiter], flights: _Flights) -> None:
        try:
            while True:
                flights.again = False
                asked = list(lease.asks)
                sent_at = self._clock()
                request = lease.request(self.worker_id, sent_at)
                try:
                    grant = await self._channel.sync(request)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("could not renew the quota lease of %s.%s: %s",
                                lease.project_name, lease.function_name, exc)
                    self._resolve(lease.sync_failed(request, asked, self._clock()))
                    await asyncio.sleep(SYNC_RETRY_SECONDS)
                    if lease.asks or lease.holds_slots():
                        continue
                    return
                self._resolve(lease.answered(request, grant, sent_at, asked, self._clock()))
                if not (flights.again or lease.asks or lease.gives_back()):
                    return
        finally:
            flights.sync = None

    # ----- renewal ------------------------------------------------------------------------

    def _ensure_renewer(self) -> None:
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.ensure_future(self._renew_forever())

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(RENEW_SECONDS)
            for key, lease in list(self._book.leases.items()):
                flights = self._flights_of(lease)
                if lease.holds_slots():
                    self._request_sync(lease)
                elif flights.sync is None and flights.check is None and not lease.asks:
                    del self._book.leases[key]  # nothing held: forget it
                    del self._flights[key]

    async def close(self) -> None:
        """Give every lease back (the worker is stopping; its attempts have ended)."""
        if self._renewer is not None:
            self._renewer.cancel()
        for lease in self._book.leases.values():
            self._resolve(lease.send_queue_to_semaphore())
        for flights in self._flights.values():
            for task in (flights.sync, flights.check):
                if task is not None:
                    task.cancel()
        for lease in list(self._book.leases.values()):
            if lease.granted and not lease.busy:
                try:
                    await asyncio.wait_for(
                        self._channel.give_back(self.worker_id, lease.project_name, lease.function_name), timeout=5
                    )
                except Exception as exc:  # it lapses at the semaphore anyway
                    log.warning("could not give back the quota lease of %s.%s: %s",
                                lease.project_name, lease.function_name, exc)
        self._book.leases.clear()
        self._flights.clear()
