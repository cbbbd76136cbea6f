"""Standby processes: children forked ahead of the next attempt with its limits, already in
its cgroups. Joining a cgroup costs a kernel RCU grace period (10-20 ms on a busy host):
standbys pay it between attempts instead of on the attempt's start."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from temporal_workers.backends.local.cgroups import Cgroup, CgroupLimiter
from temporal_workers.backends.local.forkserver import ForkedProcess, ForkServer, ForkServers
from temporal_workers.backends.local.process import Background, kill_tree, reap

log = logging.getLogger("multinode.worker")

# Standby children kept at most, one per (environment, code, cpu, memory): the recently used ones.
MAX_STANDBYS = 16

StandbyKey = tuple[Path, Path, float, int]  # python, code, cpu, memory_mib


@dataclass
class Standby:
    """A child forked ahead of the next attempt with these limits, already in its cgroups."""

    server: ForkServer
    process: ForkedProcess
    cgroup: Cgroup


class StandbyPool:
    """At most one standby per key, the recently used ones; `in_background` runs the forks and
    the clean-ups off the attempts' path (the backend waits for them when it closes)."""

    def __init__(self, forks: ForkServers, limiter: CgroupLimiter, in_background: Background) -> None:
        self._forks = forks
        self._limiter = limiter
        self._in_background = in_background
        self._standbys: dict[StandbyKey, Standby] = {}
        self._replenishing: set[StandbyKey] = set()
        self._closed = False

    def take(self, key: StandbyKey) -> Standby | None:
        standby = self._standbys.pop(key, None)
        if standby is not None and (standby.process.returncode is not None or not standby.server.alive):
            self._discard(standby)
            return None
        return standby

    def replenish(self, key: StandbyKey) -> None:
        """Fork the next attempt's standby in the background (only where cgroups are used:
        without them there is no join to hide)."""
        if not self._limiter.enabled:
            return
        if key in self._standbys or key in self._replenishing:
            return
        self._replenishing.add(key)
        self._in_background(self._fork(key))

    async def _fork(self, key: StandbyKey) -> None:
        python, code_dir, cpu, memory_mib = key
        cgroup = None
        try:
            cgroup = self._limiter.create(f"standby-{os.urandom(6).hex()}", cpu, memory_mib)
            if cgroup is None:
                return
            procs = [d / "cgroup.procs" for d in cgroup.dirs]
            server = await self._forks.get(python, code_dir)
            process = await server.standby(procs)
        except (TimeoutError, OSError) as exc:
            log.warning("could not prepare a standby process (%s)", exc)
            if cgroup is not None:
                cgroup.remove()
            return
        finally:
            self._replenishing.discard(key)
        self._standbys[key] = Standby(server, process, cgroup)
        if self._closed:
            self._discard(self._standbys.pop(key))
        while len(self._standbys) > MAX_STANDBYS:  # dicts keep insertion order: oldest first
            self._discard(self._standbys.pop(next(iter(self._standbys))))

    def _discard(self, standby: Standby) -> None:
        kill_tree(standby.process, standby.cgroup)

        async def remove_when_gone() -> None:
            await reap(standby.process, standby.cgroup)
            standby.cgroup.remove()

        self._in_background(remove_when_gone())

    def close(self) -> None:
        """Discard every standby, and any still being forked once it is."""
        self._closed = True
        for standby in self._standbys.values():
            self._discard(standby)
        self._standbys.clear()
