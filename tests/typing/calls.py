"""The invocation API, sync and `.aio`, typed from the function's own signature."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Iterator
from typing import assert_type

import multinode as mn
from multinode import Invocation, InvocationIdsList
from multinode.errors import InvocationError

app = mn.Multinode()


@app.function(cpu=1)
def add(x: int, y: int = 0) -> float:
    return x + y / 2


def sync_calls(invocation_id: str) -> None:
    same: mn.Function[[int, int], float] = add
    del same
    assert_type(add.start(1), str)
    assert_type(add.start(1, y=2), str)
    assert_type(add.start_locked("table-7", 1, 2), str)
    assert_type(add.get(invocation_id), Invocation[float])
    assert_type(add.get(invocation_id).result, float | None)
    assert_type(add.await_result(invocation_id), float)
    assert_type(add.await_result(invocation_id, timeout=2.5), float)
    assert_type(add.call_remote(1, 2), float)
    assert_type(add.cancel(invocation_id), bool)
    assert_type(add.remove(invocation_id), None)
    assert_type(add.list(), InvocationIdsList)
    assert_type(add.list(offset=invocation_id), InvocationIdsList)
    assert_type(add.list_ids(), list[str])
    assert_type(add.map([1, 2, 3]), Iterator[float])
    assert_type(add.map([1, 2], return_exceptions=True), Iterator[float | InvocationError])
    assert_type(add.starmap([(1, 2), (3, 4)]), Iterator[float])


async def aio_calls(invocation_id: str) -> None:
    assert_type(await add.start.aio(1), str)
    assert_type(await add.start_locked.aio("table-7", 1), str)
    assert_type(await add.get.aio(invocation_id), Invocation[float])
    assert_type(await add.await_result.aio(invocation_id, timeout=1), float)
    assert_type(await add.call_remote.aio(1, y=2), float)
    assert_type(await add.cancel.aio(invocation_id), bool)
    assert_type(await add.remove.aio(invocation_id), None)
    assert_type(await add.list.aio(), InvocationIdsList)
    assert_type(await add.list_ids.aio(), list[str])
    assert_type(add.map.aio([1, 2]), AsyncGenerator[float, None])
    async with contextlib.aclosing(add.map.aio([1, 2])) as results:  # closed (and cancelled) on exit
        async for first in results:
            assert_type(first, float)
            break
    async for result in add.map.aio(range(3)):
        assert_type(result, float)
    async for outcome in add.starmap.aio([(1, 2)], return_exceptions=True):
        assert_type(outcome, float | InvocationError)


async def refused(invocation_id: str) -> None:
    add.start("one")  # type: ignore[arg-type]
    add.start(1, 2, 3)  # type: ignore[call-arg]
    add.start(1, lock="table-7")  # type: ignore[call-arg]  # the typed spelling is start_locked
    add.start_locked(7, 1)  # type: ignore[arg-type]
    add.start_locked("table-7", "one")  # type: ignore[arg-type]
    await add.start.aio("one")  # type: ignore[arg-type]
    await add.call_remote.aio()  # type: ignore[call-arg]
    add.get(42)  # type: ignore[arg-type]
    add.await_result(invocation_id, timeout="soon")  # type: ignore[arg-type]
    text: str = add.await_result(invocation_id)  # type: ignore[assignment]
    late: str = await add.await_result.aio(invocation_id)  # type: ignore[assignment]
    add.start.aio(1).upper()  # type: ignore[attr-defined]  # a coroutine, not the id
    add.map([1], progres=True)  # type: ignore[call-overload]
    for value in add.map([1, 2], return_exceptions=True):
        value.is_integer()  # type: ignore[union-attr]  # may be the failure in its place
    del text, late
