"""Issue 15 end to end: the `.aio` calls against the real control plane, from inside event loops,
never blocking them; the malformed id and the await timeout of our error tree."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import multinode as mn
from multinode import InvocationStatus, errors

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]

TASKS = '''
import time
from pathlib import Path
from multinode import Multinode

mn = Multinode()


@mn.function(max_concurrency=20)
def wait_for(path):
    """Returns the text of `path` once it exists."""
    while not Path(path).exists():
        time.sleep(0.05)
    return Path(path).read_text()


@mn.function(max_concurrency=20)
def square(x):
    if x == "boom":
        raise ValueError("boom")
    if x == "slow":
        time.sleep(600)
    return x * x
'''


@pytest.fixture
def project(deploy_tasks):  # type: ignore[no-untyped-def]
    return deploy_tasks(TASKS).project_name


def test_await_result_aio_leaves_the_loop_running(project: str, tmp_path: Path) -> None:
    """The invocation can only end after a task on the same loop writes the file it waits for,
    and that task only starts once the await has begun: a blocked loop would never end it."""
    wait_for = mn.get_deployed_function(project, "wait_for", returns=str)
    signal = tmp_path / "go"

    async def scenario() -> tuple[str, int]:
        invocation_id = await wait_for.start.aio(str(signal))
        assert (await wait_for.get.aio(invocation_id)).status in (InvocationStatus.PENDING, InvocationStatus.RUNNING)
        ticks = 0
        awaiting = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            await awaiting.wait()
            while True:
                ticks += 1
                if ticks == 3:
                    signal.write_text("released by the loop")
                await asyncio.sleep(0.01)

        ticking = asyncio.ensure_future(ticker())
        awaiting.set()  # the ticker runs only when this task yields: inside the await below
        result = await wait_for.await_result.aio(invocation_id)
        during = ticks
        ticking.cancel()
        return result, during

    result, ticks_during_the_await = asyncio.run(scenario())
    assert result == "released by the loop"
    assert ticks_during_the_await >= 3


def test_every_aio_call_against_the_control_plane(project: str) -> None:
    square = mn.get_deployed_function(project, "square", returns=int)

    async def scenario() -> None:
        # starts, reads, results
        first = await square.start.aio(3)
        assert await square.await_result.aio(first) == 9
        done = await square.get.aio(first)
        assert done.status == InvocationStatus.SUCCEEDED and done.result == 9 and done.terminated
        assert await square.call_remote.aio(5) == 25
        assert square.call_remote(4) == 16  # a sync call inside the running loop still works

        # map and starmap: order, return_exceptions, fail-fast cancellation
        assert [r async for r in square.map.aio(range(6))] == [0, 1, 4, 9, 16, 25]
        mixed = [r async for r in square.starmap.aio([(2,), ("boom",), (3,)], return_exceptions=True)]
        assert mixed[0] == 4 and mixed[2] == 9 and isinstance(mixed[1], errors.InvocationFailedError)
        before = set(await square.list_ids.aio())
        with pytest.raises(errors.InvocationFailedError, match="boom"):
            async for _ in square.map.aio(["boom", "slow"]):
                pass
        (slow,) = [i for i in set(await square.list_ids.aio()) - before
                   if (await square.get.aio(i)).status != InvocationStatus.FAILED]
        assert await _final_status(square, slow) == InvocationStatus.CANCELLED

        # waiting with a timeout, cancelling, removing, listing
        running = await square.start.aio("slow")
        with pytest.raises(errors.AwaitTimeoutError) as caught:
            await square.await_result.aio(running, timeout=0.2)
        assert isinstance(caught.value, TimeoutError) and caught.value.invocation_id == running
        assert not (await square.get.aio(running)).terminated  # the await gave up, not the invocation
        assert await square.cancel.aio(running) is True
        with pytest.raises(errors.InvocationCancelledError):
            await square.await_result.aio(running)
        assert await square.cancel.aio(running) is False
        page = await square.list.aio()
        assert page.invocation_ids[0] == running and first in await square.list_ids.aio()
        await square.remove.aio(first)
        with pytest.raises(errors.InvocationDoesNotExistError):
            await square.get.aio(first)

        # a malformed id is an unknown one; a held lock is refused
        with pytest.raises(errors.InvocationDoesNotExistError, match="malformed"):
            await square.get.aio("inv-mistyped")
        holder = await square.start_locked.aio("table-7", "slow")
        with pytest.raises(errors.LockAlreadyInUseError) as refused:
            await square.start_locked.aio("table-7", 1)
        assert refused.value.holder_invocation_id == holder
        await square.cancel.aio(holder)

    asyncio.run(scenario())


def test_each_event_loop_gets_its_own_connection(project: str) -> None:
    square = mn.get_deployed_function(project, "square", returns=int)

    async def burst(base: int) -> list[int]:
        ids = await asyncio.gather(*(square.start.aio(base + i) for i in range(5)))
        return list(await asyncio.gather(*(square.await_result.aio(i) for i in ids)))

    assert asyncio.run(burst(0)) == [0, 1, 4, 9, 16]
    assert asyncio.run(burst(10)) == [100, 121, 144, 169, 196]  # a new loop after the first closed
    assert square.call_remote(7) == 49  # and the background loop for sync calls


async def _final_status(fn: mn.Function, invocation_id: str) -> InvocationStatus:  # type: ignore[type-arg]
    for _ in range(600):
        invocation = await fn.get.aio(invocation_id)
        if invocation.terminated:
            return invocation.status
        await asyncio.sleep(0.05)
    raise AssertionError(f"{invocation_id} did not end")
