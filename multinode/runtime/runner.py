"""The function's process: `python -m multinode.runtime.runner`, one per attempt.

It imports the version's main.py, decodes the arguments, calls the function and reports to its
supervisor over a pipe, one JSON frame per line:

    {"kind": "progress", "value": "<jsonpickle>"}     the latest yielded value
    {"kind": "result", "value": "<jsonpickle>"}       the final result
    {"kind": "error", "type": ..., "message": ..., "traceback": ...}

Cancellation arrives as SIGTERM and the timeout as SIGUSR1; both become exceptions raised in the
main thread, inside the user's code. It stays lean: no temporalio unless the function itself
starts nested invocations.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
import traceback
from typing import IO, Any, NoReturn

ENV_REPORT_FD = "MULTINODE_REPORT_FD"
ENV_INPUT_PATH = "MULTINODE_INPUT_PATH"
ENV_FUNCTION = "MULTINODE_FUNCTION"
ENV_CODE_DIR = "MULTINODE_CODE_DIR"
ENV_CPU_CGROUP = "MULTINODE_CPU_CGROUP_PROCS"

# Progress is coalesced: at most one frame per interval, always ending on the latest value.
PROGRESS_INTERVAL_SECONDS = 0.05

_interrupted: str | None = None


def _install_signal_handlers() -> None:
    # Installed before anything else, so an early cancel cannot escape as a bare signal death.
    from multinode.errors import InvocationCancelledError, InvocationTimedOutError

    def on_cancel(signum: int, frame: Any) -> None:
        global _interrupted
        if _interrupted is None:
            _interrupted = "cancel"
            raise InvocationCancelledError("the invocation was cancelled")

    def on_timeout(signum: int, frame: Any) -> None:
        global _interrupted
        if _interrupted is None:
            _interrupted = "timeout"
            raise InvocationTimedOutError("the invocation reached its timeout")

    signal.signal(signal.SIGTERM, on_cancel)
    signal.signal(signal.SIGUSR1, on_timeout)


def _watch_parent(parent_pid: int) -> None:
    """If the supervisor dies, take the whole process group down with it: no orphans."""

    def watch() -> None:
        while True:
            if os.getppid() != parent_pid:
                os.killpg(os.getpgrp(), signal.SIGKILL)
            time.sleep(0.2)

    threading.Thread(target=watch, name="multinode-parent-watch", daemon=True).start()


class Reporter:
    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self._pending: str | None = None
        self._last_sent = 0.0
        self._flusher: threading.Thread | None = None

    def _write(self, frame: dict[str, Any]) -> None:
        with self._lock:
            self._stream.write(json.dumps(frame, separators=(",", ":")) + "\n")
            self._stream.flush()

    def progress(self, encoded: str) -> None:
        now = time.monotonic()
        with self._lock:
            due = now - self._last_sent >= PROGRESS_INTERVAL_SECONDS
            if not due:
                self._pending = encoded
                if self._flusher is None:
                    self._flusher = threading.Thread(target=self._flush_loop, daemon=True)
                    self._flusher.start()
                return
            self._pending = None
            self._last_sent = now
        self._write({"kind": "progress", "value": encoded})

    def _flush_loop(self) -> None:
        while True:
            time.sleep(PROGRESS_INTERVAL_SECONDS)
            with self._lock:
                encoded, self._pending = self._pending, None
                if encoded is not None:
                    self._last_sent = time.monotonic()
            if encoded is not None:
                self._write({"kind": "progress", "value": encoded})

    def result(self, encoded: str) -> None:
        with self._lock:
            self._pending = None
        self._write({"kind": "result", "value": encoded})

    def child(self, invocation_id: str) -> None:
        self._write({"kind": "child", "id": invocation_id})

    def error(self, exc: BaseException) -> None:
        from multinode.contract import limits as L

        text = "".join(traceback.format_exception(type(exc), exc, _user_frames(exc)))
        if len(text) > L.ERROR_TRACEBACK_MAX_CHARS:
            keep = L.ERROR_TRACEBACK_MAX_CHARS // 2
            text = text[:keep] + "\n... (traceback truncated) ...\n" + text[-keep:]
        message = str(exc)
        if len(message) > L.ERROR_MESSAGE_MAX_CHARS:
            message = message[: L.ERROR_MESSAGE_MAX_CHARS] + "... (truncated)"
        with self._lock:
            self._pending = None
        self._write(
            {
                "kind": "error",
                "type": type(exc).__qualname__,
                "message": message,
                "traceback": text,
            }
        )


def _user_frames(exc: BaseException) -> Any:
    """The traceback without the runner's own frames: the user's code starts the story."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    return tb


def _exit(code: int) -> NoReturn:
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


def _load_function(code_dir: str, name: str) -> Any:
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
    from multinode._definition import registered_functions

    function = registered_functions().get(name)
    if function is None or function.local_callable is None:
        raise LookupError(f"main.py defines no function named {name!r}")
    return function


def run(reporter: Reporter) -> int:
    from multinode.contract import codec

    with open(os.environ[ENV_INPUT_PATH]) as handle:
        arguments = json.load(handle)
    function = _load_function(os.environ[ENV_CODE_DIR], os.environ[ENV_FUNCTION])
    args = [codec.decode(text) for text in arguments["args"]]
    kwargs = {key: codec.decode(text) for key, text in arguments["kwargs"].items()}

    value = function.local_callable(*args, **kwargs)
    if function.is_generator:
        last: Any = None
        iterator = iter(value)
        while True:
            try:
                last = next(iterator)
            except StopIteration as stop:
                if stop.value is not None:
                    last = stop.value
                break
            reporter.progress(codec.encode(last, "the yielded value"))
        value = last
    reporter.result(codec.encode(value, "the result"))
    return 0


def main() -> NoReturn:
    parent_pid = os.getppid()
    _install_signal_handlers()
    fd = int(os.environ[ENV_REPORT_FD])
    os.set_inheritable(fd, False)  # the user's own subprocesses must not hold the pipe open
    reporter = Reporter(os.fdopen(fd, "w", encoding="utf-8"))
    _watch_parent(parent_pid)
    from multinode import _function

    _function.child_listeners.append(reporter.child)
    try:
        code = run(reporter)
    except BaseException as exc:  # every failure, even SystemExit, is reported, never lost
        # Also in the attempt's log, where `multinode logs` shows it.
        traceback.print_exception(type(exc), exc, _user_frames(exc))
        try:
            reporter.error(exc)
        except BaseException:
            pass
        code = 1
    _exit(code)


if __name__ == "__main__":
    main()
