"""The fork server: `python -m multinode.runtime.forkserver`, one per version environment.

It imports the runner's dependencies once, then forks one fresh process per attempt, which
becomes `multinode.runtime.runner` without paying the interpreter's start-up and imports again (about
180 ms down to a few). The user's main.py is never imported here, only in each forked child,
so an attempt starts exactly as clean as a spawned one. The server stays single-threaded, so
forking is safe.

Joining a cgroup costs a kernel RCU grace period (10-20 ms on a busy cgroup v1 host), so the
worker can also ask for a standby: a child forked ahead of time that joins its attempt's cgroups
and then waits; starting the attempt is then one message.

Protocol, over a SOCK_SEQPACKET socket inherited from the worker (one JSON message each):
  worker -> server  {"id", "env", "cwd", "procs"} with two fds (the log file, the report pipe):
                    fork a child that joins the cgroups whose `cgroup.procs` files are listed,
                    then runs the attempt
                    {"id", "standby": true, "procs"}: fork a child that joins the cgroups, then waits
                    {"id", "go": <standby id>, "env", "cwd"} with the two fds: start that standby
  server -> worker  {"ready": true} once, then {"id", "pid"} after each fork or go (a go whose
                    standby is gone gets {"id", "gone": true}), and {"id", "exit"} when a child is
                    reaped (exit code, negative for a signal)
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
    # asyncio too: an async function's attempt would otherwise import it, some 10 ms, each time.
    import asyncio  # noqa: F401

    import dotenv  # noqa: F401

    import multinode._definition
    import multinode.contract.codec
    import multinode.runtime.runner  # noqa: F401


def _detach(procs: list[str]) -> None:
    """In a forked child: its own session, inside its attempt's cgroups."""
    os.setsid()
    for path in procs:
        with open(path, "w") as handle:
            handle.write(str(os.getpid()))


def _become_attempt(request: dict[str, Any], log_fd: int, report_fd: int) -> NoReturn:
    """In the forked child, detached: wire up, and run the attempt."""
    try:
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
        from multinode.runtime import runner as _runner

        os.environ[_runner.ENV_REPORT_FD] = str(report_fd)
        os.chdir(request["cwd"])
        sys.argv = [_runner.__file__]
        _runner.main()
    except BaseException:
        os._exit(70)


def _wait_as_standby(channel: socket.socket) -> NoReturn:
    """In a standby child, detached: wait for the attempt it will become."""
    try:
        message, fds, _, _ = socket.recv_fds(channel, MAX_MESSAGE, 2)
        channel.close()
    except BaseException:
        os._exit(70)
    if not message or len(fds) != 2:
        os._exit(0)  # the fork server is gone, or let this standby go unused
    _become_attempt(json.loads(message), fds[0], fds[1])


def _in_child(server: socket.socket, wake: tuple[int, int], standbys: dict[int, tuple[socket.socket, int]]) -> None:
    """Right after fork, in the child: drop everything of the server's."""
    server.close()
    for fd in wake:
        os.close(fd)
    for channel, _ in standbys.values():
        channel.close()
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)


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
    # standby id -> the channel its go arrives on, and its pid
    standbys: dict[int, tuple[socket.socket, int]] = {}
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
            if request_id in standbys:
                standbys.pop(request_id)[0].close()
            if request_id is not None:
                server.send(json.dumps({"id": request_id, "exit": os.waitstatus_to_exitcode(status)}).encode())
        if server.fileno() in readable:
            message, fds, _, _ = socket.recv_fds(server, MAX_MESSAGE, 2)
            if not message:
                shut_down()  # the worker closed the connection
            request = json.loads(message)
            if "go" in request:
                standby = standbys.pop(request["go"], None)
                reply: dict[str, Any] = {"id": request["id"], "gone": True}
                if standby is not None:
                    channel, standby_pid = standby
                    try:
                        socket.send_fds(channel, [message], fds)
                        reply = {"id": request["id"], "pid": standby_pid}
                    except OSError:
                        pass
                    channel.close()
                for fd in fds:
                    os.close(fd)
                server.send(json.dumps(reply).encode())
                continue
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET) if request.get("standby") else (None, None)
            pid = os.fork()
            if pid == 0:
                _in_child(server, (wake_read, wake_write), standbys)
                try:
                    _detach(request.get("procs") or [])
                except BaseException:
                    os._exit(70)
                if theirs is not None:
                    assert ours is not None
                    ours.close()
                    _wait_as_standby(theirs)
                _become_attempt(request, fds[0], fds[1])
            for fd in fds:
                os.close(fd)
            if ours is not None and theirs is not None:
                theirs.close()
                standbys[request["id"]] = (ours, pid)
            children[pid] = request["id"]
            server.send(json.dumps({"id": request["id"], "pid": pid}).encode())


def main() -> NoReturn:
    server = socket.socket(fileno=int(os.environ.pop(ENV_SOCKET_FD)))
    _preload()
    serve(server)


if __name__ == "__main__":
    main()
