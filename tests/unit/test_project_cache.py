"""The project cache behind `.start`: a description is reused only while the registry's history
has not moved past it, as its watch reports."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from multinode.contract.records import PackageRef, VersionManifest
from multinode.engine.project_cache import ProjectCache, ProjectSnapshot
from multinode.errors import ProjectDoesNotExistError

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(20)]


def manifest(version_id: str) -> VersionManifest:
    return VersionManifest(
        project_name="p", version_id=version_id, created_at=0.0, package=PackageRef("file:///pkg.zip", "0" * 64, 1),
        requirements_sha256=None, functions=[],
    )


class Registry:
    """A project registry: its history grows with each change; watches see new events."""

    def __init__(self) -> None:
        self.version = "ver-1"
        self.closing = False
        self.exists = True
        self.run_id = "run-1"
        self.events = 5
        self.describes = 0
        self.watches = 0
        self._followers: list[asyncio.Queue[int | None]] = []

    async def describe(self, project_name: str) -> ProjectSnapshot:
        self.describes += 1
        if not self.exists:
            raise ProjectDoesNotExistError(f"project {project_name!r} does not exist")
        return ProjectSnapshot(manifest(self.version), self.closing, self.run_id, self.events)

    async def follow(self, project_name: str, run_id: str) -> AsyncIterator[int]:
        self.watches += 1
        queue: asyncio.Queue[int | None] = asyncio.Queue()
        self._followers.append(queue)
        for event_id in range(1, self.events + 1):
            yield event_id
        while (event_id_or_end := await queue.get()) is not None:
            yield event_id_or_end

    def change(self, **fields: object) -> None:
        for name, value in fields.items():
            setattr(self, name, value)
        for _ in range(3):  # an update is a few events
            self.events += 1
            for queue in self._followers:
                queue.put_nowait(self.events)

    def end_run(self) -> None:
        for queue in self._followers:
            queue.put_nowait(None)
        self._followers.clear()


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def cached_registry() -> tuple[Registry, ProjectCache]:
    registry = Registry()
    cache = ProjectCache(registry.describe, registry.follow)
    await cache.snapshot("p")
    await settle()
    return registry, cache


async def test_a_followed_project_is_read_without_asking_the_engine() -> None:
    registry, cache = await cached_registry()
    for _ in range(10):
        assert (await cache.snapshot("p")).latest.version_id == "ver-1"
    assert registry.describes == 1 and registry.watches == 1
    await cache.close()


async def test_an_upgrade_elsewhere_is_seen_at_the_next_start() -> None:
    registry, cache = await cached_registry()
    registry.change(version="ver-2")
    await settle()
    assert (await cache.snapshot("p")).latest.version_id == "ver-2"
    assert registry.describes == 2
    await settle()
    await cache.snapshot("p")
    assert registry.describes == 2  # trusted again once the watch caught up
    registry.change(closing=True)
    await settle()
    assert (await cache.snapshot("p")).closing
    await cache.close()


async def test_own_changes_are_forgotten_at_once() -> None:
    registry, cache = await cached_registry()
    registry.version = "ver-2"  # changed by this process, before its watch heard of it
    cache.forget("p")
    assert (await cache.snapshot("p")).latest.version_id == "ver-2"
    await cache.close()


async def test_an_ended_watch_sends_lookups_back_to_the_engine() -> None:
    registry, cache = await cached_registry()
    registry.end_run()  # continued as new, or the connection broke
    await settle()
    registry.run_id = "run-2"
    await cache.snapshot("p")
    await settle()
    assert registry.describes == 2 and registry.watches == 2
    await settle()
    await cache.snapshot("p")
    assert registry.describes == 2
    await cache.close()


async def test_a_missing_project_raises_every_time() -> None:
    registry, cache = await cached_registry()
    registry.exists = False
    registry.change()
    await settle()
    for _ in range(2):
        with pytest.raises(ProjectDoesNotExistError):
            await cache.snapshot("p")
    assert registry.describes == 3
    await cache.close()
