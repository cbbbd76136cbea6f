"""The worker's side of the fork server (see multinode/_forkserver.py): one per (environment,
code) pair, started on first use, restarted if it dies. Attempts it forks behave like spawned
processes towards the supervisor: a pid that leads its own process group, an exit code."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from multinode.runtime.forkserver import ENV_SOCKET_FD, MAX_MESSAGE

log = logging.getLogger("multinode.worker")

START_TIMEOUT_SECONDS = 30.0
# The exit code reported for attempts whose fork server vanished: an engine fault, not theirs.
FORK_SERVER_LOST = -1000


class ForkedProcess:
    """A forked attempt: enough of asyncio.subprocess.Process for the supervisor."""

    def __init__(self, pid: int, exited: asyncio.Future[int]) -> None:
        self.pid = pid
        self._exited = exited

    @property
    def returncode(self) -> int | None:
        return self._exited.result() if self._exited.done() else None

    async def wait(self) -> int:
        return await asyncio.shield(self._exited)


class StandbyProcess(ForkedProcess):
    """A child forked ahead of its attempt, already inside the attempt's cgroups."""

    def __init__(self, pid: int, exited: asyncio.Future[int], request_id: int) -> None:
        super().__init__(pid, exited)
        self.request_id = request_id


class ForkServer:
    def __init__(self, python: Path, code_dir: Path, environment: dict[str, str]) -> None:
        self._python = python
        self._code_dir = code_dir
        self._environment = environment
        self._socket: socket.socket | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._ready: asyncio.Future[None] | None = None
        self._pids: dict[int, asyncio.Future[int | None]] = {}
        self._exits: dict[int, asyncio.Future[int]] = {}
        self._ids = itertools.count(1)

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.returncode is None and self._socket is not None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._ready = loop.create_future()
        try:
            self._process = await asyncio.create_subprocess_exec(
                str(self._python), "-m", "multinode.runtime.forkserver",
                cwd=self._code_dir,
                env={**self._environment, ENV_SOCKET_FD: str(theirs.fileno())},
                pass_fds=(theirs.fileno(),),
                stdin=asyncio.subprocess.DEVNULL,
            )
        finally:
            theirs.close()
        ours.setblocking(False)
        self._socket = ours
        loop.add_reader(ours.fileno(), self._on_readable)
        await asyncio.wait_for(asyncio.shield(self._ready), START_TIMEOUT_SECONDS)

    def _on_readable(self) -> None:
        assert self._socket is not None
        try:
            message = self._socket.recv(MAX_MESSAGE)
        except BlockingIOError:
            return
        except OSError:
            message = b""
        if not message:
            self._lost()
            return
        reply: dict[str, Any] = json.loads(message)
        if reply.get("ready") and self._ready is not None and not self._ready.done():
            self._ready.set_result(None)
        elif "pid" in reply or "gone" in reply:
            future = self._pids.pop(reply["id"], None)
            if future is not None and not future.done():
                future.set_result(int(reply["pid"]) if "pid" in reply else None)
        elif "exit" in reply:
            exited = self._exits.pop(reply["id"], None)
            if exited is not None and not exited.done():
                exited.set_result(int(reply["exit"]))

    def _lost(self) -> None:
        """The server is gone: its children were killed with it (it kills them on the way out,
        and each child kills its own group when its parent vanishes)."""
        if self._socket is not None:
            asyncio.get_running_loop().remove_reader(self._socket.fileno())
            self._socket.close()
            self._socket = None
        error = OSError("the fork server exited")
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(error)
        for future in self._pids.values():
            if not future.done():
                future.set_exception(error)
        for exited in self._exits.values():
            if not exited.done():
                exited.set_result(FORK_SERVER_LOST)
        self._pids.clear()
        self._exits.clear()

    async def spawn(self, env: dict[str, str], cwd: Path, log_fd: int, report_fd: int,
                    procs: list[Path]) -> ForkedProcess:
        """Fork an attempt that joins the cgroups of `procs` first."""
        request_id, exited = self._expect_exit()
        pid = await self._request(request_id, {"env": env, "cwd": str(cwd), "procs": [str(p) for p in procs]},
                                  [log_fd, report_fd])
        assert pid is not None
        return ForkedProcess(pid, exited)

    async def standby(self, procs: list[Path]) -> ForkedProcess:
        """Fork a child that joins the cgroups of `procs` and waits for `start_standby`."""
        request_id, exited = self._expect_exit()
        pid = await self._request(request_id, {"standby": True, "procs": [str(p) for p in procs]}, [])
        assert pid is not None
        return StandbyProcess(pid, exited, request_id)

    async def start_standby(self, standby: ForkedProcess, env: dict[str, str], cwd: Path,
                            log_fd: int, report_fd: int) -> bool:
        """Turn a standby into the attempt; False if it is gone (then it never runs)."""
        assert isinstance(standby, StandbyProcess)
        if standby.returncode is not None:
            return False
        pid = await self._request(next(self._ids), {"go": standby.request_id, "env": env, "cwd": str(cwd)},
                                  [log_fd, report_fd])
        return pid is not None

    def _expect_exit(self) -> tuple[int, asyncio.Future[int]]:
        request_id = next(self._ids)
        exited: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._exits[request_id] = exited
        return request_id, exited

    async def _request(self, request_id: int, message: dict[str, Any], fds: list[int]) -> int | None:
        if not self.alive:
            self._exits.pop(request_id, None)
            raise OSError("the fork server is not running")
        assert self._socket is not None
        future: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self._pids[request_id] = future
        try:
            socket.send_fds(self._socket, [json.dumps({"id": request_id, **message}).encode()], fds)
            return await asyncio.wait_for(future, START_TIMEOUT_SECONDS)
        except (TimeoutError, OSError):
            # The request may still be forked: take the server down (its children with it)
            # before anyone spawns the attempt another way, so it can never run twice.
            self._lost()
            if self._process is not None and self._process.returncode is None:
                self._process.kill()
            raise

    async def close(self) -> None:
        # The server sees EOF, kills what it forked, and exits; waiters learn it at once.
        self._lost()
        if self._process is not None and self._process.returncode is None:
            try:
                await asyncio.wait_for(self._process.wait(), 5)
            except TimeoutError:
                self._process.kill()


class ForkServers:
    """One fork server per (environment, code), started lazily, replaced when it dies."""

    def __init__(self, environment: dict[str, str], on_start: Callable[[], None] | None = None) -> None:
        self._environment = environment
        self._on_start = on_start
        self._servers: dict[tuple[Path, Path], ForkServer] = {}
        self._locks: dict[tuple[Path, Path], asyncio.Lock] = {}

    async def get(self, python: Path, code_dir: Path) -> ForkServer:
        key = (python, code_dir)
        async with self._locks.setdefault(key, asyncio.Lock()):
            server = self._servers.get(key)
            if server is None or not server.alive:
                server = ForkServer(python, code_dir, self._environment)
                await server.start()
                self._servers[key] = server
                if self._on_start is not None:
                    self._on_start()
                log.info("fork server ready for %s", code_dir.name[:12])
            return server

    async def close(self) -> None:
        for server in self._servers.values():
            await server.close()
        self._servers.clear()
