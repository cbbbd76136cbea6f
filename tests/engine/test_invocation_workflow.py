"""Engine tier: the invocation workflow on the real dev server, with scripted attempts from the
fake backend (no processes), in a worker inside the test on a task queue of its own."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid

import pytest

import multinode as mn
from multinode import InvocationStatus, errors
from multinode.contract.records import AttemptOutcome, AttemptRequest, ErrorInfo, InvocationRecord, Outcome
from temporal_workers.backends import AttemptSession, InfrastructureError
from temporal_workers.backends.fake import FakeBackend, echo_first_argument
from tests.conftest import ControlPlane, wait_until

pytestmark = pytest.mark.timeout(90)

TASKS = "from multinode import Multinode\nmn = Multinode()\n@mn.function(max_retries=3)\ndef f(x):\n    return x\n"


def failing_then_ok(failures: int, infrastructure_faults: int = 0):  # type: ignore[no-untyped-def]
    def script(request: AttemptRequest, run: int) -> AttemptOutcome:
        now = time.time()
        if run <= infrastructure_faults:
            raise InfrastructureError("the launch failed (scripted)")
        if request.attempt_number <= failures:
            error = ErrorInfo("RuntimeError", f"scripted failure {request.attempt_number}")
            return AttemptOutcome(Outcome.FAILED, None, error, now, now, exit_code=1)
        return AttemptOutcome(Outcome.SUCCEEDED, request.invocation.args[0], None, now, now,
                              exit_code=0, has_value=True)

    return script


@pytest.fixture
def fake_worker(control_plane: ControlPlane):  # type: ignore[no-untyped-def]
    """Yields a function that starts an in-test worker with a scripted backend and returns a
    client bound to its task queue."""
    from multinode._client import Client
    from multinode.contract.connection import resolve_settings
    from temporal_workers.settings import load_worker_settings
    from temporal_workers.worker import build_worker

    stops: list[tuple[threading.Event, threading.Thread, Client]] = []

    def start(backend: FakeBackend) -> Client:
        queue = f"fake-{uuid.uuid4().hex[:8]}"
        base = resolve_settings()
        connection = type(base)(base.api_url, None, base.namespace, queue, "environment")
        settings = load_worker_settings().model_copy(update={"connection": connection})
        ready, stop = threading.Event(), threading.Event()

        async def run() -> None:
            from multinode.engine.connection import connect
            from temporal_workers.worker import new_leases

            engine_client = await connect(connection)
            leases = new_leases(engine_client, settings)
            try:
                async with build_worker(engine_client, settings, backend, leases):
                    ready.set()
                    while not stop.is_set():
                        await asyncio.sleep(0.05)
            finally:
                await leases.close()

        thread = threading.Thread(target=asyncio.run, args=(run(),), daemon=True)
        thread.start()
        assert ready.wait(30)
        client = Client(connection)
        stops.append((stop, thread, client))
        return client

    yield start
    for stop, thread, client in stops:
        client.close()
        stop.set()
        thread.join(timeout=30)


def _function(client, deploy_tasks):  # type: ignore[no-untyped-def]
    project = deploy_tasks(TASKS).project_name
    return mn.Function("f", project_name=project, client=client)


def test_only_function_failures_count_against_retries(fake_worker, deploy_tasks) -> None:  # type: ignore[no-untyped-def]
    backend = FakeBackend(failing_then_ok(failures=2, infrastructure_faults=1))
    f = _function(fake_worker(backend), deploy_tasks)
    invocation_id = f.start({"answer": 42})
    assert f.await_result(invocation_id) == {"answer": 42}
    final = f.get(invocation_id)
    assert final.status == InvocationStatus.SUCCEEDED and final.num_failed_attempts == 2
    assert [a.outcome for a in final.attempts] == ["failed", "failed", "succeeded"]
    # 1 engine retry (not counted) + 3 attempts; the fake never decoded the argument.
    assert len(backend.runs) == 4
    assert backend.runs[0].invocation.args == backend.runs[1].invocation.args


def test_retries_run_out(fake_worker, deploy_tasks) -> None:  # type: ignore[no-untyped-def]
    backend = FakeBackend(failing_then_ok(failures=10))
    f = _function(fake_worker(backend), deploy_tasks)
    with pytest.raises(errors.InvocationFailedError, match="scripted failure 4"):
        f.call_remote(1)
    assert len(backend.runs) == 4  # max_retries=3


class GatedBackend(FakeBackend):
    """Holds each attempt before its start (PENDING) and after it (RUNNING) until released."""

    def __init__(self) -> None:
        super().__init__()
        self.start, self.finish = threading.Event(), threading.Event()

    async def run_attempt(self, request: AttemptRequest, session: AttemptSession) -> AttemptOutcome:
        self.runs.append(request)
        while not self.start.is_set():
            await asyncio.sleep(0.05)
        started_at = time.time()
        await session.notify_started(started_at)
        while not self.finish.is_set():
            await asyncio.sleep(0.05)
        return AttemptOutcome(Outcome.SUCCEEDED, request.invocation.args[0], None, started_at, time.time(),
                              exit_code=0, has_value=True)


def test_state_query_matches_get(fake_worker, deploy_tasks) -> None:  # type: ignore[no-untyped-def]
    backend = GatedBackend()
    client = fake_worker(backend)
    f = _function(client, deploy_tasks)
    invocation_id = f.start(5)

    async def query() -> tuple[str, int]:
        engine = await client.engine()
        # Decoded as the SDK decodes it: the engine's encoding leaves out empty fields.
        record = await engine.client.get_workflow_handle(invocation_id).query("state", result_type=InvocationRecord)
        return record.status, len(record.attempts)

    def both() -> tuple[tuple[str, int], tuple[str, int]]:
        invocation = f.get(invocation_id)
        return client.run(query()), (invocation.status.value, len(invocation.attempts))

    wait_until(lambda: backend.runs, message="the attempt to reach the backend")
    queried, got = both()
    assert queried == got and got[0] == "PENDING"
    backend.start.set()
    queried, got = wait_until(lambda: (pair := both())[1][0] == "RUNNING" and pair, message="RUNNING")
    assert queried == got
    backend.finish.set()
    assert f.await_result(invocation_id) == 5
    queried, got = both()
    assert queried == got == ("SUCCEEDED", 1)


def test_starts_follow_upgrades_and_undeploys_made_elsewhere(fake_worker, project_name, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`.start` reads the project from a cache that follows the registry: another process's
    upgrade is picked up, and its undeploy refuses starts, without this client asking."""
    from multinode import admin as _admin
    from tests.conftest import client_for_queue, write_tasks

    client = fake_worker(FakeBackend())
    other = client_for_queue(client.settings.task_queue)  # another process's client
    folder = write_tasks(tmp_path / "tasks", TASKS)
    first = _admin.upgrade(folder, project_name, create=True, client=other)
    f = mn.Function("f", project_name=project_name, client=client)
    assert f.get(f.start(1)).version_id == first.version_id
    assert f.get(f.start(2)).version_id == first.version_id  # now from the cache
    second = _admin.upgrade(folder, project_name, client=other)
    wait_until(lambda: f.get(f.start(3)).version_id == second.version_id, timeout=10,
               message="a start to run the upgraded version")
    assert f.get(f.start(4)).version_id == second.version_id
    _admin.undeploy(project_name, client=other)

    def refused() -> bool:
        try:
            f.start(5)
        except errors.ProjectDoesNotExistError:
            return True
        return False

    wait_until(refused, timeout=10, message="starts to be refused after the undeploy")
    with pytest.raises(errors.ProjectDoesNotExistError):
        f.start(6)


def test_list_pages_each_invocation_exactly_once(fake_worker, deploy_tasks) -> None:  # type: ignore[no-untyped-def]
    """500 invocations, some still finishing while the pages are read."""
    from multinode.contract import codec

    client = fake_worker(FakeBackend())
    f = _function(client, deploy_tasks)
    futures = [client.submit(f._start_async(*codec.encode_arguments((i,), {}))) for i in range(500)]
    started = [future.result(timeout=120) for future in futures]
    # Listings follow starts within the engine's visibility lag (tens of ms, more in a burst).
    wait_until(lambda: len(f.list_ids()) == 500, timeout=30, message="visibility to catch up")
    seen: list[str] = []
    offset = None
    pages = 0
    while True:
        page = f.list(offset=offset)
        pages += 1
        assert len(page.invocation_ids) <= 50
        seen.extend(page.invocation_ids)
        if page.offset is None:
            break
        offset = page.offset
    assert pages == 10
    assert sorted(seen) == sorted(started) and len(seen) == len(set(seen))
    assert seen == sorted(seen, reverse=True)
    listed = f.list_ids()
    assert listed == seen


def test_list_pages_count_what_is_older_only_at_the_end(fake_worker, deploy_tasks, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A count reads every older invocation (its cost grows with the store): paging a long
    history reads windows of about a page and a half and counts only to end, exactly."""
    from multinode.contract import codec

    client = fake_worker(FakeBackend())
    f = _function(client, deploy_tasks)
    futures = [client.submit(f._start_async(*codec.encode_arguments((i,), {}))) for i in range(260)]
    started = [future.result(timeout=120) for future in futures]
    wait_until(lambda: len(f.list_ids()) == 260, timeout=30, message="visibility to catch up")
    listing = client.run(client.engine()).listing
    counted: list[str] = []
    count = listing.count

    async def counting(query: str) -> int:
        counted.append(query)
        return int(await count(query))

    monkeypatch.setattr(listing, "count", counting)
    seen: list[str] = []
    offset = f.list().offset  # the first page finds the density; the rest reuse its span
    counted.clear()
    while offset is not None:
        page = f.list(offset=offset)
        seen.extend(page.invocation_ids)
        offset = page.offset
    assert seen == sorted(started, reverse=True)[50:]
    assert len(counted) <= 2, counted


def test_map_draws_progress(fake_worker, deploy_tasks) -> None:  # type: ignore[no-untyped-def]
    import io

    f = _function(fake_worker(FakeBackend()), deploy_tasks)
    stream = io.StringIO()
    assert list(f.map(list(range(30)), progress=stream)) == list(range(30))
    last = stream.getvalue().rsplit("\r", 1)[-1]
    assert "30/30" in last and last.endswith("s left\n")


def test_map_reads_its_input_lazily(fake_worker, deploy_tasks) -> None:  # type: ignore[no-untyped-def]
    from multinode.contract.limits import MAX_CONCURRENCY_DEFAULT

    async def slow_after_five(request: AttemptRequest, run: int) -> AttemptOutcome:
        if int(request.invocation.args[0]) > 5:  # still running when the map is abandoned
            await asyncio.sleep(60)
        return echo_first_argument(request, run)

    f = _function(fake_worker(FakeBackend(slow_after_five)), deploy_tasks)
    pulled = 0

    def items():  # type: ignore[no-untyped-def]
        nonlocal pulled
        for x in range(10_000):
            pulled += 1
            yield x

    results = f.map(items())
    assert next(results) == 0
    # No more started than can run at once: f's max_concurrency is the default.
    assert pulled <= MAX_CONCURRENCY_DEFAULT + 1
    assert [next(results) for _ in range(5)] == [1, 2, 3, 4, 5]
    assert pulled <= MAX_CONCURRENCY_DEFAULT + 6
    results.close()  # abandoning a map cancels what it started and no longer waits for
    # Every item pulled was started; all but the six whose results were read are cancelled.
    ids = wait_until(lambda: len(listed := f.list_ids()) == pulled and listed, timeout=30, message="listing")
    assert len(ids) > 6

    def endings() -> dict[str, list[object]]:
        by_status: dict[str, list[object]] = {}
        for invocation in (f.get(i) for i in ids):
            by_status.setdefault(invocation.status.value, []).append(invocation.result)
        return by_status

    final = wait_until(lambda: set(e := endings()) <= {"SUCCEEDED", "CANCELLED"} and e, timeout=30,
                       message="every abandoned invocation to end")
    assert sorted(final["SUCCEEDED"]) == [0, 1, 2, 3, 4, 5]  # type: ignore[type-var]
    assert len(final["CANCELLED"]) == pulled - 6


def test_the_semaphore_tells_lease_holders_by_memo_when_invocations_wait(fake_worker) -> None:  # type: ignore[no-untyped-def]
    """A lease holder learns by a read (no workflow task) whether anybody waits at the
    semaphore: false while nobody does, true while an invocation queues, false once it had its
    turn."""
    from multinode.contract import names
    from multinode.contract.ids import new_invocation_id
    from multinode.contract.records import LeaseRequest, QuotaRequest
    from temporal_workers.quota.channel import EngineLeaseChannel

    client = fake_worker(FakeBackend())
    project, function = f"memo-{uuid.uuid4().hex[:8]}", "f"
    waiter_id = new_invocation_id()

    async def scenario() -> list[bool]:
        temporal = (await client.engine()).client
        channel = EngineLeaseChannel(temporal, client.settings.task_queue)
        seen = []
        grant = await channel.sync(LeaseRequest("w1", project, function, limit=1, keep=0, want=1))
        assert (grant.count, grant.contended) == (1, False)
        seen.append(await channel.contended(project, function))
        await temporal.get_workflow_handle(names.quota_workflow_id(project, function)).signal(
            names.QUOTA_ACQUIRE_SIGNAL, QuotaRequest(project, function, waiter_id, limit=1, attempt_number=1)
        )
        seen.append(await _until(lambda: channel.contended(project, function), True))
        # The lease goes back: the waiter gets the slot (its invocation does not exist, so the
        # slot is freed again) and nobody waits any more.
        await channel.give_back("w1", project, function)
        seen.append(await _until(lambda: channel.contended(project, function), False))
        return seen

    assert client.run(scenario(), timeout=60) == [False, True, False]


async def _until(read, expected: bool, timeout: float = 20.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        value: bool = await read()
        if value == expected or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.05)


def test_an_invocation_terminated_in_the_engine_reads_as_failed(fake_worker, deploy_tasks) -> None:  # type: ignore[no-untyped-def]
    release = threading.Event()

    async def stuck(request: AttemptRequest, run: int) -> AttemptOutcome:
        while not release.is_set():
            await asyncio.sleep(0.05)
        raise InfrastructureError("released at the end of the test")

    client = fake_worker(FakeBackend(stuck))
    f = _function(client, deploy_tasks)
    invocation_id = f.start(1)

    async def terminate() -> None:
        engine = await client.engine()
        await engine.client.get_workflow_handle(invocation_id).terminate("test: terminated by hand")

    client.run(terminate())
    invocation = f.get(invocation_id)
    release.set()
    assert invocation.status == InvocationStatus.FAILED
    details = invocation.error_details
    assert details is not None and details.type == "Terminated" and "TERMINATED" in details.message
    assert invocation.terminated
    assert invocation.ended_at is not None and abs(invocation.ended_at.timestamp() - time.time()) < 60
