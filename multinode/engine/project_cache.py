"""What `.start` knows of a project (its latest version, whether it is closing) without asking
the engine each time.

A start must run the project's latest version and be refused once the project is closing, so
it used to describe the project's registry workflow first: a second round trip, as long as the
start itself. Instead, the first lookup describes the registry and then follows its history
with a long poll, which the engine answers the moment the registry changes (a deploy, an
upgrade, an undeploy). A description stays good exactly while the history it was taken at is
the latest one the watch has seen; any newer event, or a watch that ended (the registry closed
or continued as new, the connection broke), sends the next lookup back to the engine.

So a long-lived application picks up an upgrade within the engine's push delay (milliseconds),
and this process's own deploys and undeploys forget the description at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from multinode.contract.records import VersionManifest

log = logging.getLogger("multinode")


@dataclass(frozen=True)
class ProjectSnapshot:
    """One description of a project's registry."""

    latest: VersionManifest
    closing: bool
    run_id: str
    history_length: int  # events in the registry's history when it was described


Describe = Callable[[str], Awaitable[ProjectSnapshot]]
# Event ids of one registry run, from the first, long-polling for new ones; ends with the run.
Follow = Callable[[str, str], AsyncIterator[int]]


@dataclass(eq=False)
class _Watched:
    run_id: str
    snapshot: ProjectSnapshot | None = None
    seen: int = 0  # the newest event id the watch has delivered
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    def fresh(self) -> ProjectSnapshot | None:
        snapshot = self.snapshot
        if snapshot is None or self.task is None or self.task.done():
            return None
        return snapshot if self.seen == snapshot.history_length else None


class ProjectCache:
    def __init__(self, describe: Describe, follow: Follow) -> None:
        self._describe = describe
        self._follow = follow
        self._watched: dict[str, _Watched] = {}

    async def snapshot(self, project_name: str) -> ProjectSnapshot:
        """The project's current description: from the watch when it vouches for it, else
        from the engine (which raises for a missing project)."""
        watched = self._watched.get(project_name)
        if watched is not None and (snapshot := watched.fresh()) is not None:
            return snapshot
        try:
            snapshot = await self._describe(project_name)
        except Exception:  # the project is gone, or unreachable: no watch to keep
            self._stop(project_name)
            raise
        watched = self._watched.get(project_name)
        if watched is None or watched.run_id != snapshot.run_id or watched.task is None or watched.task.done():
            self._stop(project_name)
            watched = self._watched[project_name] = _Watched(snapshot.run_id)
            watched.task = asyncio.ensure_future(self._watch(project_name, watched))
        # Concurrent lookups may finish out of order: keep the newest description.
        if watched.snapshot is None or snapshot.history_length >= watched.snapshot.history_length:
            watched.snapshot = snapshot
        return snapshot

    def forget(self, project_name: str) -> None:
        """This process changed the project: the next lookup asks the engine."""
        watched = self._watched.get(project_name)
        if watched is not None:
            watched.snapshot = None

    async def _watch(self, project_name: str, watched: _Watched) -> None:
        try:
            async for event_id in self._follow(project_name, watched.run_id):
                watched.seen = event_id
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # lookups go to the engine until a new watch starts
            log.debug("stopped following project %s: %s", project_name, exc)

    def _stop(self, project_name: str) -> None:
        watched = self._watched.pop(project_name, None)
        if watched is not None and watched.task is not None:
            watched.task.cancel()

    async def close(self) -> None:
        tasks = [w.task for w in self._watched.values() if w.task is not None]
        self._watched.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
