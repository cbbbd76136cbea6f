"""What a decorated function's result type is, for each kind of function: a generator's result
is its latest `yield` (or its `return` value when that is not None), a coroutine function's is
what it returns once awaited."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator
from typing import assert_type

import multinode as mn

app = mn.Multinode()


@app.function()
def plain(name: str) -> bytes:
    return name.encode()


@app.function()
def progress(steps: int) -> Iterator[int]:
    yield from range(steps)


@app.function()
def best_so_far(steps: int) -> Generator[float, None, None]:
    yield float(steps)


@app.function()
def searching(steps: int) -> Generator[float, None, str]:
    yield float(steps)
    return "done"


@app.function()
async def fetch(url: str) -> dict[str, int]:
    return {url: 1}


@app.function()
async def ticking(n: int) -> AsyncIterator[int]:
    yield n


@app.function()
async def streaming(n: int) -> AsyncGenerator[str, None]:
    yield str(n)


@mn.function()
def module_level(x: int) -> list[int]:
    return [x]


@mn.job()
def old_spelling(x: int) -> int:
    return x


async def kinds(invocation_id: str) -> None:
    assert_type(plain.await_result(invocation_id), bytes)
    assert_type(progress.await_result(invocation_id), int)
    assert_type(best_so_far.await_result(invocation_id), float)
    assert_type(searching.await_result(invocation_id), float | str)
    assert_type(fetch.await_result(invocation_id), dict[str, int])
    assert_type(ticking.await_result(invocation_id), int)
    assert_type(streaming.await_result(invocation_id), str)
    assert_type(module_level.await_result(invocation_id), list[int])
    assert_type(old_spelling.await_result(invocation_id), int)
    # The parameters are the function's own (names included), whatever its kind.
    handles: list[mn.Function[[int], object]] = [progress, best_so_far, ticking, streaming, module_level]
    named: mn.Function[[str], bytes] = plain
    assert_type(progress.get(invocation_id).result, int | None)
    assert_type(await fetch.call_remote.aio("u"), dict[str, int])
    assert_type(await ticking.await_result.aio(invocation_id), int)
    fetch.start(1)  # type: ignore[arg-type]
    ticking.start("n")  # type: ignore[arg-type]
    searching.start(steps=1)
    searching.start(step=1)  # type: ignore[call-arg]
    wrong: mn.Function[[int], int] = searching  # type: ignore[assignment]
    del handles, named, wrong
