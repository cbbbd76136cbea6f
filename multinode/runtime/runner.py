"""The function's process: `python -m multinode.runtime.runner`, one per attempt.

It imports the version's main.py, decodes the arguments, calls the function and reports to its
supervisor over a pipe, one JSON frame per line (see `multinode.runtime.frames`).

Cancellation arrives as SIGTERM and the timeout as SIGUSR1; both become exceptions raised in the
main thread, inside the user's code; for an `async def` function or generator, inside its
coroutine at the `await` it is suspended on (see `multinode.runtime.event_loop`). It stays lean:
no temporalio unless the function itself starts nested invocations; the event loop's module only
for async functions.
"""

from __future__ import annotations

import inspect
import json
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any, NoReturn

from multinode.runtime.frames import FrameWriter

ENV_REPORT_FD = "MULTINODE_REPORT_FD"
ENV_INPUT_PATH = "MULTINODE_INPUT_PATH"
ENV_FUNCTION = "MULTINODE_FUNCTION"
ENV_CODE_DIR = "MULTINODE_CODE_DIR"
ENV_CPU_CGROUP = "MULTINODE_CPU_CGROUP_PROCS"

_interrupted: str | None = None


def _install_signal_handlers() -> None:
    # Installed before anything else, so an early cancel cannot escape as a bare signal death.
    from multinode.errors import InvocationCancelledError, InvocationTimedOutError

    def on_cancel(signum: int, frame: Any) -> None:
        global _interrupted
        if _interrupted is None:
            _interrupted = "cancel"
            _deliver(InvocationCancelledError("the invocation was cancelled"), frame)

    def on_timeout(signum: int, frame: Any) -> None:
        global _interrupted
        if _interrupted is None:
            _interrupted = "timeout"
            _deliver(InvocationTimedOutError("the invocation reached its timeout"), frame)

    signal.signal(signal.SIGTERM, on_cancel)
    signal.signal(signal.SIGUSR1, on_timeout)


def _deliver(error: BaseException, frame: Any) -> None:
    """Raise the interruption here, unless a coroutine is waiting on the event loop: then it
    arrives inside that coroutine, at its current await."""
    event_loop = sys.modules.get("multinode.runtime.event_loop")  # loaded only for async code
    if event_loop is not None and event_loop.interrupt(error, frame):
        return
    raise error


def watch_parent(parent_pid: int) -> None:
    """If the supervisor dies, take the whole process group down with it: no orphans."""

    def watch() -> None:
        while True:
            if os.getppid() != parent_pid:
                os.killpg(os.getpgrp(), signal.SIGKILL)
            time.sleep(0.2)

    threading.Thread(target=watch, name="multinode-parent-watch", daemon=True).start()


def _user_frames(exc: BaseException) -> Any:
    """The traceback without the runner's own frames: the user's code starts the story."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    return tb


def exit_now(code: int) -> NoReturn:
    # os._exit: a lingering non-daemon thread in user code must not keep the attempt alive
    # after its outcome is reported.
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    os._exit(code)


def _enter_cpu_limit() -> None:
    procs = os.environ.pop(ENV_CPU_CGROUP, None)
    if procs:
        with open(procs, "w") as handle:
            handle.write(str(os.getpid()))


def load_main(code_dir: str) -> None:
    """The version's `.env` into the environment, then its main.py imported (inside the cpu
    limit): what a function's and a service's process do before calling the user's code."""
    from dotenv import dotenv_values

    env_file = os.path.join(code_dir, ".env")
    if os.path.exists(env_file):
        for key, value in dotenv_values(env_file).items():
            if value is not None:
                os.environ.setdefault(key, value)
    sys.path.insert(0, code_dir)
    _enter_cpu_limit()
    import importlib

    importlib.import_module("main")


def _load_function(code_dir: str, name: str) -> Any:
    load_main(code_dir)
    from multinode._definition import registered_functions

    function = registered_functions().get(name)
    if function is None or function.local_callable is None:
        raise LookupError(f"main.py defines no function named {name!r}")
    return function


def run(reporter: FrameWriter) -> int:
    from multinode.contract import codec

    with open(os.environ[ENV_INPUT_PATH]) as handle:
        arguments = json.load(handle)
    function = _load_function(os.environ[ENV_CODE_DIR], os.environ[ENV_FUNCTION])
    here = "in the function's environment"
    args = [codec.decode(text, f"argument {index}", here) for index, text in enumerate(arguments["args"])]
    kwargs = {key: codec.decode(text, f"argument {key!r}", here) for key, text in arguments["kwargs"].items()}

    def on_yield(latest: Any) -> None:
        reporter.progress(codec.encode(latest, "the yielded value"))

    value = complete(function.local_callable(*args, **kwargs), on_yield)
    reporter.result(codec.encode(value, "the result"))
    return 0


def complete(value: Any, on_yield: Callable[[Any], None], tidy: bool = False) -> Any:
    """What the function's call returned, run to its end: each yield of a generator (sync or
    async) goes to `on_yield`, and the last one is the result (a sync generator's non-None
    `return` value wins); a coroutine is awaited. Decided on what the call returned, not on how
    the function was declared, so a plain `def` wrapper around an `async def` runs its body
    too. `tidy`: see `event_loop.run`."""
    if inspect.isgenerator(value):
        last: Any = None
        while True:
            try:
                last = next(value)
            except StopIteration as stop:
                if stop.value is not None:
                    last = stop.value
                return last
            on_yield(last)
    if inspect.iscoroutine(value) or inspect.isasyncgen(value):
        from multinode.runtime import event_loop

        awaitable = value
        if inspect.iscoroutine(awaitable):
            return event_loop.run(lambda: event_loop.drive(awaitable), tidy=tidy)
        return event_loop.run(lambda: event_loop.iterate(awaitable, on_yield), tidy=tidy)
    return value


def main() -> NoReturn:
    parent_pid = os.getppid()
    _install_signal_handlers()
    fd = int(os.environ[ENV_REPORT_FD])
    os.set_inheritable(fd, False)  # the user's own subprocesses must not hold the pipe open
    reporter = FrameWriter(os.fdopen(fd, "w", encoding="utf-8"))
    watch_parent(parent_pid)
    from multinode import _function

    _function.child_listeners.append(reporter.child)
    try:
        code = run(reporter)
    except BaseException as exc:  # every failure, even SystemExit, is reported, never lost
        # Also in the attempt's log, where `multinode logs` shows it.
        traceback.print_exception(type(exc), exc, _user_frames(exc))
        try:
            text = "".join(traceback.format_exception(type(exc), exc, _user_frames(exc)))
            reporter.error(type(exc).__qualname__, str(exc), text)
        except BaseException:
            pass
        code = 1
    exit_now(code)


if __name__ == "__main__":
    main()
