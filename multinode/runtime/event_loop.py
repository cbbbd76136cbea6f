"""The event loop an `async def` function (or async generator) runs on in its attempt's process,
and how a cancellation or timeout reaches its coroutine.

Sync code gets the interruption raised by the signal handler in the main thread, wherever it is.
A coroutine needs it at its current `await` instead: raising out of the loop's own machinery
(its selector, a callback) would break the loop and skip the function's clean-up. So the main
task drives the function's coroutine one step at a time (`_drive`): the signal handler leaves
the error here and cancels the main task; the cancellation arrives in `_drive` as
`CancelledError`, which throws our error into the function's coroutine instead, at the `await`
it is suspended on (and takes the cancel back with `Task.uncancel`, so `asyncio.timeout` and
task groups keep counting right). A cancellation the function's own code caused (a timeout of
its own, a task group) passes through unchanged. When the signal lands while the function's
code is running between two awaits (sync code inside the coroutine), it is raised right there,
as for a sync function.

Imported only when a function is async: a sync attempt never loads asyncio.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Generator
from types import FrameType
from typing import Any


class _Step:
    """Awaiting it hands what the function's coroutine yielded (a future, or None for a bare
    yield) to the main task, exactly as if the coroutine had been awaited directly."""

    __slots__ = ("yielded",)

    def __init__(self, yielded: Any) -> None:
        self.yielded = yielded

    def __await__(self) -> Generator[Any, None, None]:
        yield self.yielded


class _Interruptions:
    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.task: asyncio.Task[Any] | None = None
        self.pending: BaseException | None = None  # left by the signal handler, not yet thrown
        self.in_function = False  # the function's own code is running (between two awaits)

    def take(self) -> BaseException | None:
        error, self.pending = self.pending, None
        return error

    def cancel_main_task(self) -> None:
        # Only while the error is still waiting: `_drive` may already have thrown it.
        if self.pending is not None and self.task is not None:
            self.task.cancel()


_state = _Interruptions()


def interrupt(error: BaseException, frame: FrameType | None) -> bool:
    """Called by the runner's signal handler (main thread). True: the error will reach the
    running coroutine at its current await. False: no coroutine is waiting, or the function's
    own code is running right now; the handler raises the error where it is."""
    loop = _state.loop
    if loop is None or _state.task is None:
        return False
    if _state.in_function and frame is not None and frame.f_code.co_filename != __file__:
        return False
    _state.pending = error
    # Thread-safe wake-up: the handler may have interrupted the loop's selector.
    loop.call_soon_threadsafe(_state.cancel_main_task)
    return True


async def _drive(coroutine: Any) -> Any:
    """Await `coroutine` (a coroutine or an async generator's `__anext__()`), turning our
    cancellation of the main task into the interruption's error inside it."""
    task = asyncio.current_task()
    error: BaseException | None = None
    while True:
        if error is None:
            error = _state.take()
        _state.in_function = True
        try:
            yielded = coroutine.send(None) if error is None else coroutine.throw(error)
        except StopIteration as stop:
            return stop.value
        finally:
            _state.in_function = False
        error = None
        try:
            await _Step(yielded)
        except asyncio.CancelledError as cancelled:
            ours = _state.take()
            if ours is not None and task is not None:
                task.uncancel()
            error = ours if ours is not None else cancelled


def run(main: Callable[[], Coroutine[Any, Any, Any]], *, tidy: bool = False) -> Any:
    """Run `main()` on a fresh event loop in this thread; `main` awaits the function through
    `drive` or `iterate`.

    In an attempt (`tidy=False`) the loop is left as it is once `main` is done: tasks the
    function started and left running are abandoned, as a sync function's leftover threads are
    (the process reports the outcome and ends with `os._exit`). Cancelling them first, or
    waiting for the default executor's threads as `asyncio.run` does, could hold back the
    outcome of a function that has already finished. `tidy=True` tears down like `asyncio.run`
    (for a function run inside a test process)."""

    async def entry() -> Any:
        _state.loop = asyncio.get_running_loop()
        _state.task = asyncio.current_task()
        try:
            return await main()
        finally:
            _state.loop = _state.task = None

    if tidy:
        return asyncio.run(entry())
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    return loop.run_until_complete(entry())


async def drive(coroutine: Any) -> Any:
    """The function's coroutine, awaited so that interruptions arrive inside it."""
    return await _drive(coroutine)


async def iterate(async_generator: Any, on_yield: Callable[[Any], None]) -> Any:
    """Run an async generator to its end, calling `on_yield` with each value; returns the last
    one (an async generator cannot return a value)."""
    last: Any = None
    while True:
        try:
            last = await _drive(async_generator.__anext__())
        except StopAsyncIteration:
            return last
        on_yield(last)
