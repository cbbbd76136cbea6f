"""The machinery under `Function.map` and `.starmap`: a window of started invocations kept ahead
of the result being awaited, results yielded in input order, and whatever the map started but
no longer waits for cancelled, however it stops."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Generator, Iterable, Iterator
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

from multinode._progress import ProgressLine
from multinode.contract import codec
from multinode.errors import InvocationCancelledError, InvocationFailedError, InvocationTimedOutError

if TYPE_CHECKING:
    from multinode._function import Function

R = TypeVar("R")

# How many starts a map keeps ahead of the result it is waiting for.
MAP_WINDOW = 256


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
            except (InvocationFailedError, InvocationCancelledError, InvocationTimedOutError) as exc:
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

    async def cancel_all() -> None:
        engine = await function.client.engine()
        await asyncio.gather(
            *(engine.cancel_invocation(i, wait_ack=False) for i in ids), return_exceptions=True
        )

    if ids:
        function.client.run(cancel_all())
