"""The machinery under `Function.map` and `.starmap`: a window of started invocations kept ahead
of the result being awaited, results yielded in input order, and whatever the map started but
no longer waits for cancelled, however it stops.

Two drivers of the same rules: the synchronous one pulls the caller's iterable in the caller's
thread and runs starts on the client's background loop; the `.aio` one does everything on the
caller's event loop (its iterable may be an async one)."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterable, Generator, Iterable, Iterator, Sized
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Generic, Literal, TextIO, TypeVar, overload

from multinode._progress import ProgressLine
from multinode.contract import codec
from multinode.errors import (
    InvocationCancelledError,
    InvocationError,
    InvocationFailedError,
    InvocationTimedOutError,
)

if TYPE_CHECKING:
    from multinode._function import Function
    from multinode._port import EnginePort

R = TypeVar("R")
I = TypeVar("I")  # noqa: E741 (one item of the iterable)

# How many starts a map keeps ahead of the result it is waiting for.
MAP_WINDOW = 256

# The endings a map yields in place with `return_exceptions=True`.
_ENDINGS = (InvocationFailedError, InvocationCancelledError, InvocationTimedOutError)


class FanOut(Generic[I, R]):
    """`fn.map` / `fn.starmap`: call it for an iterator of results, or `async for` over
    `.aio(...)`. Results come in input order, each as soon as it and those before it are ready;
    inputs are read lazily; the first failure propagates and cancels the rest, unless
    `return_exceptions=True` yields it in place; abandoning the iterator cancels what it started
    (for `.aio`, when the async iterator is closed: `contextlib.aclosing`, or when the loop
    collects it)."""

    def __init__(self, function: Function[Any, R], *, star: bool) -> None:
        self._function = function
        self._star = star

    @overload
    def __call__(
        self, iterable: Iterable[I], *, return_exceptions: Literal[False] = False,
        progress: bool | TextIO = False,
    ) -> Iterator[R]: ...

    @overload
    def __call__(
        self, iterable: Iterable[I], *, return_exceptions: bool, progress: bool | TextIO = False
    ) -> Iterator[R | InvocationError]: ...

    def __call__(
        self, iterable: Iterable[I], *, return_exceptions: bool = False, progress: bool | TextIO = False
    ) -> Iterator[R | InvocationError]:
        total = len(iterable) if isinstance(iterable, Sized) else None
        arguments = iterable if self._star else ((item,) for item in iterable)
        return map_results(self._function, arguments, return_exceptions, progress, total)  # type: ignore[arg-type]

    @overload
    def aio(
        self, iterable: Iterable[I] | AsyncIterable[I], *, return_exceptions: Literal[False] = False,
        progress: bool | TextIO = False,
    ) -> AsyncGenerator[R, None]: ...

    @overload
    def aio(
        self, iterable: Iterable[I] | AsyncIterable[I], *, return_exceptions: bool,
        progress: bool | TextIO = False,
    ) -> AsyncGenerator[R | InvocationError, None]: ...

    def aio(
        self, iterable: Iterable[I] | AsyncIterable[I], *, return_exceptions: bool = False,
        progress: bool | TextIO = False,
    ) -> AsyncGenerator[R | InvocationError, None]:
        total = len(iterable) if isinstance(iterable, Sized) else None
        return map_results_aio(
            self._function, _arguments(iterable, self._star), return_exceptions, progress, total
        )


def map_results(
    function: Function[..., R],
    arguments: Iterable[tuple[Any, ...]],
    return_exceptions: bool,
    progress: bool | TextIO,
    total: int | None,
) -> Iterator[R]:
    bar = ProgressLine(total, progress) if progress else None
    results = _results(function, arguments, return_exceptions)
    try:
        for result in results:
            if bar is not None:
                bar.step()
            yield result
    finally:
        results.close()  # cancels what the map started and no longer waits for
    if bar is not None:
        bar.close()


async def _window(function: Function[..., Any]) -> int:
    """How many invocations a map keeps started: no more than can run at once. More would only
    wait for a slot, and queueing at the semaphore costs each of them a round trip that the
    workers' quota leases otherwise save."""
    _, spec = await function._spec(await function.client.engine())
    return min(MAP_WINDOW, spec.options.max_concurrency)


def _results(
    function: Function[..., R], arguments: Iterable[tuple[Any, ...]], return_exceptions: bool
) -> Generator[R, None, None]:
    client = function.client
    source = iter(arguments)
    pending: deque[Future[str]] = deque()
    window: int | None = None
    try:
        while True:
            while window is None or len(pending) < window:
                try:
                    item = next(source)
                except StopIteration:
                    break
                encoded = codec.encode_arguments(tuple(item), {})
                if window is None:
                    window = client.run(_window(function))
                pending.append(client.submit(function._start_async(*encoded)))
            if not pending:
                return
            invocation_id = pending[0].result()
            try:
                value = client.run(function._await_async(invocation_id))
            except _ENDINGS as exc:
                pending.popleft()  # ended: nothing left to cancel
                if not return_exceptions:
                    raise
                yield exc  # type: ignore[misc]
                continue
            pending.popleft()
            yield value
    finally:
        # Whatever stopped the map (a failure, Ctrl-C, the caller walking away), what it
        # started and no longer waits for is cancelled, including the one it was awaiting.
        _cancel_pending(function, pending)


def _cancel_pending(function: Function[..., Any], pending: deque[Future[str]]) -> None:
    ids = []
    for future in pending:
        try:
            ids.append(future.result())
        except Exception:  # a start that failed has nothing to cancel
            continue
    if ids:
        function.client.run(_cancel_all(function, ids))


async def _cancel_all(function: Function[..., Any], ids: list[str]) -> None:
    engine: EnginePort = await function.client.engine()
    await asyncio.gather(*(engine.cancel_invocation(i, wait_ack=False) for i in ids), return_exceptions=True)


# ----- on the caller's event loop ---------------------------------------------------------------


async def _arguments(
    iterable: Iterable[Any] | AsyncIterable[Any], star: bool
) -> AsyncGenerator[tuple[Any, ...], None]:
    if isinstance(iterable, AsyncIterable):
        async for item in iterable:
            yield tuple(item) if star else (item,)
    else:
        for item in iterable:
            yield tuple(item) if star else (item,)


async def map_results_aio(
    function: Function[..., R],
    arguments: AsyncGenerator[tuple[Any, ...], None],
    return_exceptions: bool,
    progress: bool | TextIO,
    total: int | None,
) -> AsyncGenerator[R, None]:
    bar = ProgressLine(total, progress) if progress else None
    pending: deque[asyncio.Task[str]] = deque()
    window: int | None = None
    try:
        while True:
            while window is None or len(pending) < window:
                try:
                    item = await anext(arguments)
                except StopAsyncIteration:
                    break
                encoded = codec.encode_arguments(item, {})
                if window is None:
                    window = await _window(function)
                pending.append(asyncio.ensure_future(function._start_async(*encoded)))
            if not pending:
                break
            invocation_id = await pending[0]
            try:
                value = await function._await_async(invocation_id)
            except _ENDINGS as exc:
                pending.popleft()
                if not return_exceptions:
                    raise
                if bar is not None:
                    bar.step()
                yield exc  # type: ignore[misc]
                continue
            pending.popleft()
            if bar is not None:
                bar.step()
            yield value
    finally:
        # As in the synchronous map. Shielded: a second cancellation of the caller's task while
        # this runs must not leave started invocations running.
        if pending:
            await asyncio.shield(_cancel_started(function, list(pending)))
        await arguments.aclose()
    if bar is not None:
        bar.close()


async def _cancel_started(function: Function[..., Any], starts: list[asyncio.Task[str]]) -> None:
    outcomes = await asyncio.gather(*starts, return_exceptions=True)
    ids = [i for i in outcomes if isinstance(i, str)]  # a start that failed has nothing to cancel
    if ids:
        await _cancel_all(function, ids)
