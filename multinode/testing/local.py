"""Running a function's body in this process, the way an attempt runs it, for fast unit tests."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar, overload

from multinode._function import Function
from multinode.contract import codec
from multinode.errors import MultinodeError

P = ParamSpec("P")
R = TypeVar("R")


@overload
def run_locally(function: Function[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R: ...


@overload
def run_locally(function: Callable[P, Any], /, *args: P.args, **kwargs: P.kwargs) -> Any: ...


def run_locally(function: Any, /, *args: Any, **kwargs: Any) -> Any:
    """Run `function`'s body here and return what `.call_remote` would: a generator's (sync or
    async) last yielded value (or a sync generator's non-None return value), an async function's
    awaited value. Arguments, every yield and the result travel through the same codec as
    remotely, so a value that could not travel fails here too, with the same error. The
    function's own exceptions propagate unchanged; there is no timeout, retry or cancellation.
    Works from sync tests and from inside a running event loop (it then runs on its own
    thread, with its own loop)."""
    from multinode.runtime.runner import complete

    body = function.local_callable if isinstance(function, Function) else function
    if body is None:
        raise MultinodeError(
            f"{function.name} is a deployed function without its code here; run_locally needs the "
            f"decorated function from the tasks folder (import it from its main.py)"
        )
    encoded_args, encoded_kwargs = codec.encode_arguments(args, dict(kwargs))
    call_args = [codec.decode(text, f"argument {i}", "in run_locally") for i, text in enumerate(encoded_args)]
    call_kwargs = {k: codec.decode(text, f"argument {k!r}", "in run_locally") for k, text in encoded_kwargs.items()}

    def check_yield(latest: Any) -> None:
        codec.encode(latest, "the yielded value")

    def run() -> Any:
        return complete(body(*call_args, **call_kwargs), check_yield, tidy=True)

    value = run() if not _loop_running() else _on_own_thread(run)
    return codec.decode(codec.encode(value, "the result"), "the result", "in run_locally")


def _loop_running() -> bool:
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _on_own_thread(run: Callable[[], Any]) -> Any:
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = run()
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="multinode-run-locally")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
