"""Real cpu and memory limits for local attempts, where the machine allows them.

Linux with a writable cgroup tree (root, or a delegated subtree) gets exact limits, OOM
detection and a whole-tree kill; anywhere else attempts run unlimited, and the worker says so
once. cgroup v2 is preferred; v1 (separate cpu and memory hierarchies) is used when the v2 tree
has no cpu/memory controllers, as on hybrid hosts.
"""

from __future__ import annotations

import logging
import os
import signal
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("multinode.worker")

CGROUP_ROOT = Path("/sys/fs/cgroup")
# A long period lets a short-lived process burst through its start-up instead of being throttled
# every 100 ms; the average rate is the same.
CPU_PERIOD_US = 1_000_000


@dataclass(frozen=True)
class Cgroup:
    """The cgroup(s) of one attempt."""

    memory_dir: Path | None
    cpu_dir: Path | None
    unified: bool

    @property
    def dirs(self) -> list[Path]:
        return [d for d in (self.memory_dir, self.cpu_dir) if d is not None]

    def join(self) -> None:
        """Move the calling process into the memory limit (and, on v2, the cpu limit too);
        runs in the child between fork and exec."""
        if self.memory_dir is not None:
            (self.memory_dir / "cgroup.procs").write_text(str(os.getpid()))

    @property
    def deferred_cpu_procs(self) -> Path | None:
        """On v1 the cpu limit is joined by the function's process itself, once the runtime's
        own start-up is done, so the function's budget pays only for the function."""
        if self.unified or self.cpu_dir is None:
            return None
        return self.cpu_dir / "cgroup.procs"

    def oom_killed(self) -> bool:
        if self.memory_dir is None:
            return False
        try:
            if self.unified:
                text = (self.memory_dir / "memory.events").read_text()
            else:
                text = (self.memory_dir / "memory.oom_control").read_text()
        except OSError:
            return False
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill" and int(value or 0) > 0:
                return True
        return False

    def pids(self) -> list[int]:
        found: set[int] = set()
        for directory in self.dirs:
            try:
                found.update(int(p) for p in (directory / "cgroup.procs").read_text().split())
            except OSError:
                continue
        return sorted(found)

    def kill_all(self) -> None:
        """Kill every process left in the cgroup, including ones that escaped the group."""
        if self.unified and self.memory_dir is not None:
            try:
                (self.memory_dir / "cgroup.kill").write_text("1")
                return
            except OSError:
                pass
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def remove(self) -> None:
        for directory in self.dirs:
            try:
                directory.rmdir()
            except OSError:
                pass  # still busy (a process in D state); harmless, it is tiny


class CgroupLimiter:
    """Creates per-attempt cgroups under the worker's own cgroup."""

    def __init__(self, root: Path = CGROUP_ROOT) -> None:
        self._root = root
        self.mode, self._memory_parent, self._cpu_parent = self._detect()
        if self.mode == "none":
            log.warning(
                "cpu and memory limits are not enforced on this machine (no writable cgroup "
                "tree with cpu and memory controllers); functions run unlimited"
            )
        else:
            log.info("cpu and memory limits enforced with cgroup %s", self.mode)

    @property
    def enabled(self) -> bool:
        return self.mode != "none"

    def _own_path(self, controller: str) -> str:
        """Our own cgroup, so attempts nest under the worker's (and its limits) on this host."""
        if self._root != CGROUP_ROOT:
            return ""
        try:
            for line in Path("/proc/self/cgroup").read_text().splitlines():
                _, controllers, path = line.split(":", 2)
                if controller in controllers.split(",") or (controller == "" and controllers == ""):
                    return path.lstrip("/")
        except OSError:
            pass
        return ""

    def _writable(self, directory: Path) -> bool:
        return directory.is_dir() and os.access(directory, os.W_OK)

    def _detect(self) -> tuple[str, Path | None, Path | None]:
        unified_root = self._root if (self._root / "cgroup.controllers").exists() else self._root / "unified"
        controllers = (unified_root / "cgroup.controllers")
        if controllers.exists() and {"cpu", "memory"} <= set(controllers.read_text().split()):
            parent = unified_root / self._own_path("") / "multinode"
            try:
                parent.mkdir(exist_ok=True)
                (parent.parent / "cgroup.subtree_control").write_text("+cpu +memory")
                (parent / "cgroup.subtree_control").write_text("+cpu +memory")
                return "v2", parent, parent
            except OSError:
                pass
        memory = self._root / "memory"
        cpu = self._root / "cpu"
        if (memory / "memory.limit_in_bytes").exists() and (cpu / "cpu.cfs_quota_us").exists():
            memory_parent = memory / self._own_path("memory") / "multinode"
            cpu_parent = cpu / self._own_path("cpu") / "multinode"
            try:
                memory_parent.mkdir(exist_ok=True)
                cpu_parent.mkdir(exist_ok=True)
                if self._writable(memory_parent) and self._writable(cpu_parent):
                    return "v1", memory_parent, cpu_parent
            except OSError:
                pass
        return "none", None, None

    def create(self, name: str, cpu: float, memory_mib: int) -> Cgroup | None:
        if self.mode == "none":
            return None
        limit = str(memory_mib * 1024 * 1024)
        quota = str(max(1000, int(cpu * CPU_PERIOD_US)))
        try:
            if self.mode == "v2":
                assert self._memory_parent is not None
                directory = self._memory_parent / name
                directory.mkdir(exist_ok=True)
                (directory / "memory.max").write_text(limit)
                try:
                    (directory / "memory.swap.max").write_text("0")
                except OSError:
                    pass
                (directory / "cpu.max").write_text(f"{quota} {CPU_PERIOD_US}")
                return Cgroup(memory_dir=directory, cpu_dir=None, unified=True)
            assert self._memory_parent is not None and self._cpu_parent is not None
            memory_dir = self._memory_parent / name
            cpu_dir = self._cpu_parent / name
            memory_dir.mkdir(exist_ok=True)
            cpu_dir.mkdir(exist_ok=True)
            (memory_dir / "memory.limit_in_bytes").write_text(limit)
            try:  # without swap accounting this file is absent; the RAM limit still holds
                (memory_dir / "memory.memsw.limit_in_bytes").write_text(limit)
            except OSError:
                pass
            (cpu_dir / "cpu.cfs_period_us").write_text(str(CPU_PERIOD_US))
            (cpu_dir / "cpu.cfs_quota_us").write_text(quota)
            return Cgroup(memory_dir=memory_dir, cpu_dir=cpu_dir, unified=False)
        except OSError as exc:
            log.warning("could not create cgroup %s (%s); this attempt runs unlimited", name, exc)
            return None
