"""`.aio` calls through the in-memory engine: they run on the caller's event loop (no background
thread), never block it, share one connection per loop, and map the same way as the sync map;
plus the errors of item 3 (malformed ids, the await timeout) and the typed lock."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator

import pytest

import multinode as mn
from multinode import InvocationStatus, admin
from multinode._client import Client
from multinode.contract import codec
from multinode.contract.records import ErrorInfo, InvocationInput, InvocationRecord
from multinode.errors import (
    AwaitTimeoutError,
    InvalidOptionError,
    InvocationDoesNotExistError,
    InvocationFailedError,
    LockAlreadyInUseError,
    MultinodeError,
)
from tests.unit.fake_engine import Ending, FakeEngine, manifest

pytestmark = pytest.mark.timeout(30)


@pytest.fixture(autouse=True)
def outside_a_function(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MULTINODE_PROJECT", "MULTINODE_VERSION_ID", "MULTINODE_INVOCATION_ID"):
        monkeypatch.delenv(name, raising=False)


class LoopRecordingEngine(FakeEngine):
    """Records the event loop each engine call runs on; `hold()` keeps awaits open until
    `release` is set (from the same loop)."""

    def __init__(self) -> None:
        super().__init__(manifest("p", "f", "g", max_concurrency=3))
        self.loops: set[asyncio.AbstractEventLoop] = set()
        self.release: asyncio.Event | None = None

    def hold(self) -> asyncio.Event:
        self.release = asyncio.Event()
        return self.release

    async def latest_version(self, project_name: str):  # type: ignore[no-untyped-def]
        self.loops.add(asyncio.get_running_loop())
        return await super().latest_version(project_name)

    async def get_invocation(self, invocation_id: str) -> tuple[InvocationRecord, bool]:
        self.loops.add(asyncio.get_running_loop())
        return await super().get_invocation(invocation_id)

    async def await_invocation(self, invocation_id: str) -> InvocationRecord:
        self.loops.add(asyncio.get_running_loop())
        if self.release is not None:
            await self.release.wait()
        return await super().await_invocation(invocation_id)


@pytest.fixture
def engine() -> LoopRecordingEngine:
    return LoopRecordingEngine()


@pytest.fixture
def client(engine: FakeEngine) -> Iterator[Client[FakeEngine]]:
    client = Client(engine=engine)
    yield client
    client.close()


def function(client: Client[FakeEngine], name: str = "f") -> mn.Function:  # type: ignore[type-arg]
    return mn.Function(name, project_name="p", client=client)


def item_of(engine: FakeEngine, invocation_id: str) -> object:
    return codec.decode(engine.inputs[invocation_id].args[0])


def doubled_unless_one_fails(invocation: InvocationInput) -> Ending:
    x = codec.decode(invocation.args[0])
    if x == 1:
        return Ending(InvocationStatus.FAILED, error=ErrorInfo("ValueError", "one is bad", "Traceback: ..."))
    return Ending(InvocationStatus.SUCCEEDED, 2 * x)


# ----- on the caller's loop -------------------------------------------------------------------


def test_every_aio_call_runs_on_the_callers_loop(client: Client[FakeEngine], engine: LoopRecordingEngine) -> None:
    f = function(client)

    async def scenario() -> asyncio.AbstractEventLoop:
        first = await f.start.aio(3)
        assert (await f.get.aio(first)).status == InvocationStatus.PENDING
        assert await f.await_result.aio(first) == 3
        assert await f.call_remote.aio({"k": [1]}) == {"k": [1]}
        locked = await f.start_locked.aio("table-7", 5)
        with pytest.raises(LockAlreadyInUseError):
            await f.start_locked.aio("table-7", 6)
        assert await f.cancel.aio(locked) is True
        assert await f.cancel.aio(locked) is False
        assert len(await f.list_ids.aio()) == 3
        page = await f.list.aio()
        assert page.offset is None and page.invocation_ids == await f.list_ids.aio()
        await f.remove.aio(first)
        with pytest.raises(InvocationDoesNotExistError):
            await f.get.aio(first)
        assert [r async for r in f.map.aio([1, 2])] == [1, 2]
        assert [r async for r in f.starmap.aio([(4,)])] == [4]
        return asyncio.get_running_loop()

    caller_loop = asyncio.run(scenario())
    assert engine.loops == {caller_loop}
    assert client._loop is None  # the background thread never started


def test_await_result_aio_leaves_the_loop_free(client: Client[FakeEngine], engine: LoopRecordingEngine) -> None:
    """The invocation ends only when another task on the same loop says so: a blocked loop
    would never get there (the test would time out)."""
    f = function(client)
    ticks = 0

    async def scenario() -> int:
        nonlocal ticks
        release = engine.hold()
        invocation_id = await f.start.aio(7)

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                if ticks == 3:
                    release.set()
                await asyncio.sleep(0)

        ticking = asyncio.ensure_future(ticker())
        before = ticks
        result = await f.await_result.aio(invocation_id)
        during = ticks - before
        ticking.cancel()
        assert result == 7
        return during

    assert asyncio.run(scenario()) >= 3


def test_sync_calls_still_work_inside_a_running_loop(client: Client[FakeEngine], engine: LoopRecordingEngine) -> None:
    f = function(client)

    async def scenario() -> asyncio.AbstractEventLoop:
        invocation_id = f.start(2)  # blocks this loop, runs on the background one
        assert f.await_result(invocation_id) == 2
        assert await f.await_result.aio(invocation_id) == 2
        return asyncio.get_running_loop()

    caller_loop = asyncio.run(scenario())
    assert client._loop is not None and engine.loops == {caller_loop, client._loop.loop}


# ----- one connection per loop ----------------------------------------------------------------


class CountingClient(Client[FakeEngine]):
    """Connects (to a fresh fake engine) like the real client does: once per loop."""

    def __init__(self, failures: int = 0) -> None:
        super().__init__()
        self.connections: list[asyncio.AbstractEventLoop] = []
        self.failures = failures

    async def _connect(self) -> FakeEngine:
        await asyncio.sleep(0)  # let a burst of calls arrive while connecting
        if self.failures:
            self.failures -= 1
            raise MultinodeError("control plane unreachable")
        self.connections.append(asyncio.get_running_loop())
        return FakeEngine(manifest("p", "f"))


def test_one_connection_per_loop_however_many_calls_arrive_at_once() -> None:
    client = CountingClient()
    f = function(client)

    async def burst() -> None:
        ids = await asyncio.gather(*(f.start.aio(i) for i in range(20)))
        assert len(set(ids)) == 20 and await f.get.aio(ids[0])

    try:
        asyncio.run(burst())
        assert len(client.connections) == 1
        asyncio.run(burst())  # another loop: the first loop's connection cannot serve it
        assert len(client.connections) == 2 and client.connections[0] is not client.connections[1]
        assert f.call_remote(1) == 1 and f.call_remote(2) == 2  # the background loop: one more
        assert len(client.connections) == 3
        assert client._loop is not None and client.connections[2] is client._loop.loop
        assert set(client._engines) == {client._loop.loop}  # closed loops' engines are dropped
    finally:
        client.close()


def test_a_failed_connection_is_tried_again_by_the_next_call() -> None:
    client = CountingClient(failures=1)
    f = function(client)

    async def scenario() -> None:
        with pytest.raises(MultinodeError, match="unreachable"):
            await f.start.aio(1)
        assert await f.call_remote.aio(5) == 5

    asyncio.run(scenario())
    assert len(client.connections) == 1


# ----- map.aio --------------------------------------------------------------------------------


def test_map_aio_yields_in_input_order_with_a_window_of_max_concurrency(
    client: Client[FakeEngine], engine: FakeEngine
) -> None:
    engine.outcome = doubled_unless_one_fails
    ahead: list[int] = []
    pulled: list[int] = []
    awaited = engine.await_invocation

    async def counting(invocation_id: str):  # type: ignore[no-untyped-def]
        ahead.append(len(pulled) - len(engine.awaited))
        return await awaited(invocation_id)

    engine.await_invocation = counting  # type: ignore[method-assign]
    items = [5, 0, 9, 2, 7, 3, 8, 4]

    async def source() -> AsyncIterator[int]:  # an async iterable works as well as a list
        for x in items:
            pulled.append(x)
            yield x

    async def collect() -> list[object]:
        return [r async for r in function(client).map.aio(source())]

    assert asyncio.run(collect()) == [2 * x for x in items]
    assert [item_of(engine, i) for i in engine.awaited] == items
    assert max(ahead) <= 3  # read lazily: never more than the window ahead of the awaited one
    assert engine.cancels == []


def test_map_aio_cancels_what_it_started_when_an_invocation_fails(
    client: Client[FakeEngine], engine: FakeEngine
) -> None:
    engine.outcome = doubled_unless_one_fails

    async def scenario() -> None:
        results = function(client).map.aio(range(10))
        assert await anext(results) == 0
        with pytest.raises(InvocationFailedError, match="one is bad"):
            await anext(results)

    asyncio.run(scenario())
    assert [item_of(engine, i) for i in engine.started] == [0, 1, 2, 3]
    assert sorted((item_of(engine, i), was_open) for i, was_open in engine.cancels) == [(2, True), (3, True)]


def test_map_aio_cancels_what_it_started_when_the_caller_walks_away(
    client: Client[FakeEngine], engine: FakeEngine
) -> None:
    async def scenario() -> None:
        async with contextlib.aclosing(function(client).map.aio(range(10))) as results:
            async for result in results:
                assert result == 0
                break

    asyncio.run(scenario())
    assert sorted(str(item_of(engine, i)) for i, _ in engine.cancels) == ["1", "2"]


def test_map_aio_cancels_what_it_started_when_its_task_is_cancelled(
    client: Client[FakeEngine], engine: LoopRecordingEngine
) -> None:
    async def scenario() -> None:
        engine.hold()  # no invocation ends: the map waits on the first
        consumer = asyncio.ensure_future(_drain(function(client).map.aio(range(10))))
        while len(engine.started) < 3:  # the window is full; the map waits on the first
            await asyncio.sleep(0)
        consumer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await consumer

    asyncio.run(scenario())
    assert sorted(str(item_of(engine, i)) for i, _ in engine.cancels) == ["0", "1", "2"]


async def _drain(results: AsyncIterator[object]) -> None:
    async for _ in results:
        pass


def test_map_aio_with_return_exceptions_yields_errors_in_place(
    client: Client[FakeEngine], engine: FakeEngine
) -> None:
    engine.outcome = doubled_unless_one_fails

    async def collect() -> list[object]:
        return [r async for r in function(client).starmap.aio([(x,) for x in range(5)], return_exceptions=True)]

    results = asyncio.run(collect())
    failed = results[1]
    assert isinstance(failed, InvocationFailedError) and item_of(engine, failed.invocation_id or "") == 1
    assert results[:1] + results[2:] == [0, 4, 6, 8]
    assert engine.cancels == []


# ----- errors of ids and waiting --------------------------------------------------------------


@pytest.mark.parametrize("call", ["get", "await_result", "cancel", "remove"])
def test_a_malformed_id_is_an_unknown_invocation_on_both_faces(client: Client[FakeEngine], call: str) -> None:
    f = function(client)
    with pytest.raises(InvocationDoesNotExistError, match="'inv-nope' is malformed"):
        getattr(f, call)("inv-nope")
    with pytest.raises(InvocationDoesNotExistError, match="'inv-nope' is malformed"):
        asyncio.run(getattr(f, call).aio("inv-nope"))


def test_admin_calls_refuse_a_malformed_id_as_unknown() -> None:
    with pytest.raises(InvocationDoesNotExistError, match="is malformed"):
        admin.describe_invocation("p", "f", "inv-../../etc")
    with pytest.raises(InvocationDoesNotExistError, match="is malformed"):
        admin.read_logs("not-an-id")


def test_await_timeout_is_ours_and_a_builtin_timeout(client: Client[FakeEngine], engine: LoopRecordingEngine) -> None:
    f = function(client)
    invocation_id = f.start(1)

    async def wait_aio() -> object:
        engine.hold()  # never released: the invocation does not end
        return await f.await_result.aio(invocation_id, timeout=0.01)

    with pytest.raises(AwaitTimeoutError) as caught:
        asyncio.run(wait_aio())
    assert isinstance(caught.value, TimeoutError) and caught.value.invocation_id == invocation_id
    assert "did not end within 0.01 s" in str(caught.value)

    engine.hold()
    with pytest.raises(TimeoutError):  # `except TimeoutError` keeps working
        f.await_result(invocation_id, timeout=0.01)
    assert engine.cancels == [] and invocation_id not in engine.ended  # waiting gave up, not the invocation


# ----- the typed lock -------------------------------------------------------------------------


def test_start_locked_and_the_lock_keyword_hold_the_same_lock(client: Client[FakeEngine], engine: FakeEngine) -> None:
    f, g = function(client), function(client, "g")
    holder = f.start_locked("table-7", 1)
    with pytest.raises(LockAlreadyInUseError) as caught:
        g.start(2, lock="table-7")  # the documented keyword, kept at run time
    assert caught.value.holder_invocation_id == holder
    engine.finish(holder, Ending(InvocationStatus.SUCCEEDED, 1))
    assert g.start(2, lock="table-7")
    # start_locked takes the key apart from the arguments: a parameter named `lock` is the function's.
    own = f.start_locked("table-8", 3, lock="mine")
    assert codec.decode(engine.inputs[own].kwargs["lock"]) == "mine"
    assert engine.locks[("p", "table-8")] == own
    with pytest.raises(InvalidOptionError):
        f.start_locked(None, 1)


def test_get_deployed_function_returns_is_for_type_checkers_only() -> None:
    typed = mn.get_deployed_function("p", "f", returns=int)
    assert isinstance(typed, mn.Function) and (typed.project_name, typed.name) == ("p", "f")
