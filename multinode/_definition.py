"""`Multinode` and the `@function` decorator: what a tasks folder's main.py uses.

Importing this module stays cheap (no temporalio, no pydantic): it runs in every function
process.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine, Generator, Iterator
from datetime import timedelta
from typing import Any, ParamSpec, TypeVar, overload

from multinode._function import Function
from multinode._service import ServiceDecorator
from multinode.contract import limits as L
from multinode.contract.ids import check_name
from multinode.contract.kinds import FunctionKind, kind_of, refusal
from multinode.contract.options import parse_options
from multinode.errors import InvalidOptionError

P = ParamSpec("P")
R = TypeVar("R")
Y = TypeVar("Y")

# Every function decorated in this process, by name: discovery and the runner read it.
_REGISTRY: dict[str, Function[Any, Any]] = {}


def registered_functions() -> dict[str, Function[Any, Any]]:
    return dict(_REGISTRY)


def kind(function: Function[Any, Any]) -> FunctionKind:
    """The kind of a decorated function (a deployed one's is in its version's manifest)."""
    if function.local_callable is None:
        raise ValueError(f"{function.name} is a deployed function; read its kind from the manifest")
    return kind_of(function.local_callable)


class _Decorator:
    def __init__(self, options: dict[str, Any]) -> None:
        self._options = parse_options(**options)

    # The result type callers see: a generator's is its latest `yield`, or its `return` value
    # when that is not None; a coroutine function's is what it returns once awaited.
    @overload
    def __call__(self, fn: Callable[P, Generator[Y, Any, None]]) -> Function[P, Y]: ...

    @overload
    def __call__(self, fn: Callable[P, Generator[Y, Any, R]]) -> Function[P, Y | R]: ...

    @overload
    def __call__(self, fn: Callable[P, Iterator[Y]]) -> Function[P, Y]: ...

    @overload
    def __call__(self, fn: Callable[P, AsyncIterator[Y]]) -> Function[P, Y]: ...

    @overload
    def __call__(self, fn: Callable[P, Coroutine[Any, Any, R]]) -> Function[P, R]: ...

    @overload
    def __call__(self, fn: Callable[P, R]) -> Function[P, R]: ...

    def __call__(self, fn: Callable[P, Any]) -> Function[P, Any]:
        refused = refusal(fn)
        if refused is not None:
            raise InvalidOptionError(f"@function() decorates a function defined with def or async def, not {refused}")
        name = check_name(fn.__name__, "function name")
        if name in _REGISTRY and _REGISTRY[name].local_callable is not fn:
            raise InvalidOptionError(
                f"two functions are named {name!r}; function names must be unique in a project"
            )
        function: Function[P, Any] = Function(
            name,
            options=self._options,
            local_callable=fn,
            is_generator=kind_of(fn).is_generator,
        )
        _REGISTRY[name] = function
        return function


class Multinode:
    """The handle a tasks folder uses to declare its functions: `mn = Multinode()`."""

    def function(
        self,
        *,
        cpu: float = L.CPU_DEFAULT,
        memory: str = "256 MiB",
        max_concurrency: int = L.MAX_CONCURRENCY_DEFAULT,
        timeout: timedelta = L.TIMEOUT_DEFAULT,
        max_retries: int = L.MAX_RETRIES_DEFAULT,
    ) -> _Decorator:
        """Declare a function that runs remotely, one fresh container per attempt.

        Options are checked now: a bad value raises `InvalidOptionError` naming the value and
        the allowed range.
        """
        return _Decorator(
            {
                "cpu": cpu,
                "memory": memory,
                "max_concurrency": max_concurrency,
                "timeout": timeout,
                "max_retries": max_retries,
            }
        )

    # The older "jobs" spelling of the same thing.
    job = function

    def service(self, *, port: int, cpu: float = L.CPU_DEFAULT, memory: str = "256 MiB") -> ServiceDecorator:
        """Declare a service: a process started when the project is deployed, kept running
        (restarted with backoff when it ends) and stopped when it is undeployed, listening on
        `port` (1 to 65535). It decorates a `def` or `async def` without parameters; inside it,
        the project's functions start invocations of its own version.

        `cpu` and `memory` are checked like a function's: a bad value raises
        `InvalidOptionError` naming the value and the allowed range.
        """
        return ServiceDecorator(port, cpu, memory)


_default = Multinode()
function = _default.function
job = _default.function
service = _default.service
