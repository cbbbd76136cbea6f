"""The kinds of function a tasks folder may decorate, and how each one is told apart.

The kind is read from the code when the decorator runs, shown by deploy and `multinode
describe`, and kept in the version's manifest. The runner does not trust it blindly: it looks
at what the call returned (a wrapper defined with `def` around an `async def` returns a
coroutine), so a kind is a description, never a dispatch key.
"""

from __future__ import annotations

import enum
import inspect
import types
from collections.abc import Callable
from typing import Any

_BUILTINS = (
    types.BuiltinFunctionType,
    types.MethodDescriptorType,
    types.WrapperDescriptorType,
    types.MethodWrapperType,
    types.ClassMethodDescriptorType,
)


class FunctionKind(enum.StrEnum):
    """Stored in manifests: never rename the values."""

    FUNCTION = "function"
    GENERATOR = "generator"
    ASYNC_FUNCTION = "async function"
    ASYNC_GENERATOR = "async generator"

    @property
    def is_generator(self) -> bool:
        return self in (FunctionKind.GENERATOR, FunctionKind.ASYNC_GENERATOR)


def kind_of(fn: Callable[..., Any]) -> FunctionKind:
    """The kind of a plain function (see `refusal` for what is not one). A wrapper made with
    `functools.wraps` has the kind of the function it wraps."""
    target = inspect.unwrap(fn)
    if inspect.isasyncgenfunction(target):
        return FunctionKind.ASYNC_GENERATOR
    if inspect.iscoroutinefunction(target):
        return FunctionKind.ASYNC_FUNCTION
    if inspect.isgeneratorfunction(target):
        return FunctionKind.GENERATOR
    return FunctionKind.FUNCTION


def refusal(fn: object) -> str | None:
    """Why `fn` cannot be a Multinode function, or None if it can. A function runs by its name
    in a fresh process, so it must be a module's own `def` or `async def`."""
    if inspect.isclass(fn):
        return f"the class {fn.__qualname__!r}; decorate a function that creates and uses it"
    if inspect.ismethod(fn):
        return (
            f"the bound method {fn.__qualname__!r}; decorate a module-level function "
            f"(a method's instance does not travel to the function's process)"
        )
    if isinstance(fn, _BUILTINS):
        name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", repr(fn))
        return f"the builtin {name!r}; wrap it in a function defined with def"
    if not inspect.isfunction(fn):
        return f"{fn!r} (a {type(fn).__name__}); decorate a function defined with def or async def"
    if fn.__name__ == "<lambda>":
        return "a lambda; a function runs by its name, so define it with def"
    return None


def kind_from_manifest(kind: str, is_generator: bool) -> FunctionKind:
    """Manifests written before kinds existed carry only `is_generator`."""
    if kind:
        return FunctionKind(kind)
    return FunctionKind.GENERATOR if is_generator else FunctionKind.FUNCTION
