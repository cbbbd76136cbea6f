"""The synchronous face of the engine adapter.

One background thread per process runs an asyncio loop that owns the engine (and its Temporal
client), so the synchronous API works the same from scripts, threads and inside other event loops
(FastAPI). temporalio is imported only when the first call needs it.
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
from multinode.contract.connection import ConnectionSettings, resolve_settings

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
    """Runs engine calls for synchronous callers. Without `engine`, connects to the control
    plane lazily, once; with one (any `EnginePort`, e.g. an in-memory fake in tests), uses it."""

    def __init__(self, settings: ConnectionSettings | None = None, *, engine: E | None = None) -> None:
        self._settings = settings
        self._engine: E | None = engine
        self._connecting: asyncio.Future[E] | None = None
        self._lock = threading.Lock()
        self._loop: _LoopThread | None = None

    @property
    def settings(self) -> ConnectionSettings:
        if self._settings is None:
            self._settings = resolve_settings()
        return self._settings

    def _loop_thread(self) -> _LoopThread:
        with self._lock:
            if self._loop is None:
                self._loop = _LoopThread()
                atexit.register(self.close)
            return self._loop

    async def engine(self) -> E:
        if self._engine is None:
            # One connection however many calls arrive before it is made (a burst of starts).
            if self._connecting is None:
                self._connecting = asyncio.ensure_future(self._connect())
            connecting = self._connecting
            try:
                self._engine = await asyncio.shield(connecting)
            except BaseException:
                if connecting.done() and self._connecting is connecting:
                    self._connecting = None  # the next call tries again
                raise
        return self._engine

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
        loop, self._loop = self._loop, None
        if loop is not None:
            if self._engine is not None and loop.loop.is_running() and not loop.is_current():
                # Ends the engine's background watches before their loop stops under them.
                try:
                    loop.submit(self._engine.close()).result(timeout=1)
                except Exception:  # closing is best effort; the process is going away
                    pass
            loop.stop()
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
