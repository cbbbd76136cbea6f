"""Where the SDK's calls run, and on which connection.

A Temporal client is bound to the event loop it was created on, so a `Client` keeps one engine
(one connection) per event loop, made by the first call on that loop however many calls arrive
before it is made. `.aio` calls run on the caller's own loop with that loop's engine. Synchronous
calls run on one background thread per client, whose loop owns its own engine, so they work the
same from scripts, threads and inside other event loops (FastAPI). temporalio is imported only
when the first call needs it.
"""

from __future__ import annotations

import asyncio
import atexit
import threading
import time
from collections.abc import Coroutine
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from multinode._port import EnginePort
from multinode.contract.connection import ConnectionSettings

T = TypeVar("T")

if TYPE_CHECKING:
    # A bare `Client` holds the Temporal engine (PEP 696 default). Only the type checker needs
    # typing_extensions for that on Python 3.11; importing it would slow every function's start.
    from typing_extensions import TypeVar as TypeVarWithDefault

    from multinode.engine.engine import Engine

    E = TypeVarWithDefault("E", bound=EnginePort, covariant=True, default=Engine)
else:
    E = TypeVar("E", bound=EnginePort, covariant=True)


class _LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="multinode-client", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def is_current(self) -> bool:
        return threading.current_thread() is self._thread

    def stop(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=2)


class Client(Generic[E]):
    """Runs engine calls: on the caller's event loop (`.aio`) or, for synchronous callers, on a
    background loop. Without `engine`, connects to the control plane lazily, once per loop; with
    one (any `EnginePort`, e.g. an in-memory fake in tests), uses it on every loop."""

    def __init__(self, settings: ConnectionSettings | None = None, *, engine: E | None = None) -> None:
        self._settings = settings
        self._given: E | None = engine
        # Per event loop: its engine once connected, and the connection being made until then.
        self._engines: dict[asyncio.AbstractEventLoop, E] = {}
        self._connecting: dict[asyncio.AbstractEventLoop, asyncio.Future[E]] = {}
        self._lock = threading.Lock()
        self._loop: _LoopThread | None = None

    @property
    def settings(self) -> ConnectionSettings:
        if self._settings is None:
            # Temporal's environment configuration is read by temporalio, which only the
            # engine imports: loaded here, at the first call that needs the connection.
            from multinode.engine.connection import resolve_settings

            self._settings = resolve_settings()
        return self._settings

    def _loop_thread(self) -> _LoopThread:
        with self._lock:
            if self._loop is None:
                self._loop = _LoopThread()
                atexit.register(self.close)
            return self._loop

    async def engine(self) -> E:
        """The engine of the running event loop."""
        if self._given is not None:
            return self._given
        loop = asyncio.get_running_loop()
        engine = self._engines.get(loop)
        if engine is not None:
            return engine
        # Only this loop's thread reads or writes this loop's entries; the lock guards the dicts
        # against the pruning another thread may do.
        with self._lock:
            connecting = self._connecting.get(loop)
            if connecting is None:
                self._forget_closed_loops()
                connecting = self._connecting[loop] = loop.create_task(self._connect())
        try:
            engine = await asyncio.shield(connecting)
        finally:
            if connecting.done():
                with self._lock:
                    if self._connecting.get(loop) is connecting:
                        del self._connecting[loop]  # a failed attempt: the next call tries again
                        if not connecting.cancelled() and connecting.exception() is None:
                            self._engines[loop] = connecting.result()
        return engine

    def _forget_closed_loops(self) -> None:
        """Drop the engines of loops that have closed (an `asyncio.run` that returned): their
        connections cannot be used again."""
        for loop in [loop for loop in self._engines if loop.is_closed()]:
            del self._engines[loop]
        for loop in [loop for loop in self._connecting if loop.is_closed()]:
            del self._connecting[loop]

    async def _connect(self) -> E:
        from multinode.engine.connection import connect
        from multinode.engine.engine import Engine

        # Only a client built without an engine connects, and that one holds the default.
        return cast(E, Engine(await connect(self.settings), self.settings))

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run a coroutine on the client's loop and wait for it."""
        future = self._loop_thread().submit(coro)
        try:
            return future.result(timeout)
        except BaseException:
            future.cancel()
            raise

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        return self._loop_thread().submit(coro)

    def close(self) -> None:
        """Stop the background loop, closing its engine. Engines of other loops end with their
        loop (`asyncio.run` cancels their background watches when it returns)."""
        loop, self._loop = self._loop, None
        if loop is not None:
            engine = self._given or self._engines.get(loop.loop)
            if engine is not None and loop.loop.is_running() and not loop.is_current():
                # Ends the engine's background watches before their loop stops under them.
                try:
                    loop.submit(engine.close()).result(timeout=1)
                except Exception:  # closing is best effort; the process is going away
                    pass
            loop.stop()
            with self._lock:
                self._engines.pop(loop.loop, None)
            # The Temporal client's native threads can race interpreter teardown (temporalio
            # sdk-python issue 300); a short pause lets them settle before finalization.
            time.sleep(0.05)


_default_client: Client | None = None
_default_lock = threading.Lock()


def default_client() -> Client:
    global _default_client
    with _default_lock:
        if _default_client is None:
            _default_client = Client()
        return _default_client


def set_default_client(client: Client | None) -> None:
    """Point the SDK at another control plane (tests, multi-cluster apps)."""
    global _default_client
    with _default_lock:
        _default_client = client
