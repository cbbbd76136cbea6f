"""An attempt's process on this machine: what it inherits, how it is signalled, and how it and
everything it started are made to disappear."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from temporal_workers.backends.local.cgroups import Cgroup

# Runs work off the attempt's path (starting a task the backend waits for when it closes).
Background = Callable[[Coroutine[Any, Any, None]], None]


class AttemptProcess(Protocol):
    """A spawned or forked attempt: a pid leading its own process group, and its exit code."""

    pid: int

    @property
    def returncode(self) -> int | None: ...

    async def wait(self) -> int: ...


def base_environment() -> dict[str, str]:
    """What a function's process inherits from the worker's environment: nothing secret."""
    return {
        name: os.environ[name]
        for name in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ")
        if name in os.environ
    }


def send_signal(proc: AttemptProcess, signum: int) -> None:
    try:
        os.kill(proc.pid, signum)
    except ProcessLookupError:
        pass


def kill_tree(proc: AttemptProcess, cgroup: Cgroup | None) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if cgroup is not None:
        cgroup.kill_all()


async def reap(proc: AttemptProcess, cgroup: Cgroup | None) -> None:
    """Make sure nothing of the attempt survives: the process, its group, its cgroup."""
    if proc.returncode is None:
        await proc.wait()
    kill_tree(proc, cgroup)
    if cgroup is not None:
        for _ in range(50):
            if not cgroup.pids():
                break
            await asyncio.sleep(0.01)
