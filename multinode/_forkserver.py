"""The fork server: `python -m multinode._forkserver`, one per version environment.

It imports the runner's dependencies once, then forks one fresh process per attempt, which
becomes `multinode._runner` without paying the interpreter's start-up and imports again (about
180 ms down to a few). The user's main.py is never imported here, only in each forked child,
so an attempt starts exactly as clean as a spawned one. The server stays single-threaded, so
forking is safe.

Protocol, over a SOCK_SEQPACKET socket inherited from the worker (one JSON message each):
  worker -> server  {"id", "env", "cwd", "memory_procs"} with two fds: the log file, the report pipe
  server -> worker  {"ready": true} once, then {"id", "pid"} after each fork and
                    {"id", "exit"} when that child is reaped (exit code, negative for a signal)
"""

from __future__ import annotations

import io
import json
import os
import select
import signal
import socket
import sys
from typing import Any, NoReturn

ENV_SOCKET_FD = "MULTINODE_FORKSERVER_FD"
MAX_MESSAGE = 1 << 20


def _preload() -> None:
    import dotenv  # noqa: F401

    import multinode._codec
    import multinode._definition
    import multinode._runner  # noqa: F401


def _become_attempt(request: dict[str, Any], log_fd: int, report_fd: int) -> NoReturn:
    """In the forked child: detach, wire up, and run the attempt."""
    try:
        os.setsid()
        memory_procs = request.get("memory_procs")
        if memory_procs:
            with open(memory_procs, "w") as handle:
                handle.write(str(os.getpid()))
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        os.close(devnull)
        os.close(log_fd)
        # Unbuffered, as PYTHONUNBUFFERED would have made them: no line is lost at a kill.
        sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), write_through=True)
        sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), write_through=True)
        os.environ.clear()
        os.environ.update(request["env"])
        from multinode import _runner

        os.environ[_runner.ENV_REPORT_FD] = str(report_fd)
        os.chdir(request["cwd"])
        sys.argv = [_runner.__file__]
        _runner.main()
    except BaseException:
        os._exit(70)


def serve(server: socket.socket) -> NoReturn:
    parent = os.getppid()
    # Ctrl-C on the terminal reaches the whole process group: the worker decides when this
    # server ends (by closing the socket), not the keyboard.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    children: dict[int, int] = {}
    server.send(json.dumps({"ready": True}).encode())

    def shut_down() -> NoReturn:
        for pid in children:
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass
        os._exit(0)

    while True:
        try:
            readable, _, _ = select.select([server.fileno(), wake_read], [], [], 0.5)
        except InterruptedError:
            readable = []
        if os.getppid() != parent:
            shut_down()  # the worker died: nothing of its attempts may outlive it
        if wake_read in readable:
            os.read(wake_read, 4096)
        while children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            request_id = children.pop(pid, None)
            if request_id is not None:
                server.send(json.dumps({"id": request_id, "exit": os.waitstatus_to_exitcode(status)}).encode())
        if server.fileno() in readable:
            message, fds, _, _ = socket.recv_fds(server, MAX_MESSAGE, 2)
            if not message:
                shut_down()  # the worker closed the connection
            request = json.loads(message)
            pid = os.fork()
            if pid == 0:
                server.close()
                os.close(wake_read)
                os.close(wake_write)
                signal.set_wakeup_fd(-1)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.default_int_handler)
                _become_attempt(request, fds[0], fds[1])
            for fd in fds:
                os.close(fd)
            children[pid] = request["id"]
            server.send(json.dumps({"id": request["id"], "pid": pid}).encode())


def main() -> NoReturn:
    server = socket.socket(fileno=int(os.environ.pop(ENV_SOCKET_FD)))
    _preload()
    serve(server)


if __name__ == "__main__":
    main()
