"""`blocking`: how each blocking call of a `Function` gets its two faces, `fn.get(id)` for
threads and scripts, `await fn.get.aio(id)` for event loops.

A call is written once, as a method that checks its arguments and returns the coroutine doing
the work. The synchronous face checks in the caller's thread (so a bad argument never reaches
the engine), then runs the coroutine on the client's background loop and waits. The `.aio` face
awaits the same coroutine on the caller's own event loop: no thread hop, and the loop keeps
running while the engine answers. Both faces are typed from the method: `fn.start(...)` and
`fn.start.aio(...)` are checked against the function's parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Concatenate, Generic, ParamSpec, Self, TypeVar, overload

if TYPE_CHECKING:
    from multinode._function import Function

Q = ParamSpec("Q")
T = TypeVar("T")
F = TypeVar("F", bound="Function[Any, Any]")


class BlockingCall(Generic[Q, T]):
    """One blocking call of one `Function`: `call(...)` waits in this thread and returns the
    result; `await call.aio(...)` waits on the running event loop without blocking it."""

    def __init__(
        self,
        function: Function[Any, Any],
        prepare: Callable[Concatenate[Function[Any, Any], Q], Coroutine[Any, Any, T]],
        doc: str | None,
    ) -> None:
        self._function = function
        self._prepare = prepare
        self.__doc__ = doc

    def __call__(self, *args: Q.args, **kwargs: Q.kwargs) -> T:
        coroutine = self._prepare(self._function, *args, **kwargs)
        try:
            client = self._function.client
        except BaseException:
            coroutine.close()  # never started: no "was never awaited" warning
            raise
        return client.run(coroutine)

    async def aio(self, *args: Q.args, **kwargs: Q.kwargs) -> T:
        return await self._prepare(self._function, *args, **kwargs)

    def __repr__(self) -> str:
        return f"<blocking call {self._prepare.__name__} of {self._function!r}>"


class blocking(Generic[F, Q, T]):  # lowercase: a decorator, spelled like `property`
    """Decorates a `Function` method that checks its arguments and returns a coroutine: reading
    the attribute on a function gives a `BlockingCall` with both faces."""

    def __init__(self, prepare: Callable[Concatenate[F, Q], Coroutine[Any, Any, T]]) -> None:
        self._prepare = prepare
        self.__doc__ = prepare.__doc__

    @overload
    def __get__(self, function: None, owner: type[Any] | None = None) -> Self: ...

    @overload
    def __get__(self, function: F, owner: type[Any] | None = None) -> BlockingCall[Q, T]: ...

    def __get__(self, function: F | None, owner: type[Any] | None = None) -> Self | BlockingCall[Q, T]:
        if function is None:
            return self
        return BlockingCall(function, self._prepare, self.__doc__)  # type: ignore[arg-type]
