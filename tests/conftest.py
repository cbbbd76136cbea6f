"""Test tiers: unit (needs nothing), engine and e2e (a real Temporal dev server, started here on
free 127.0.0.1 ports, and real workers). One dev server and worker per test session; every test
uses its own project names, so tests never see each other's invocations."""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

# The control plane is the one `multinode.testing` ships to users (its fixtures are not enabled
# here: the project's own fixtures below keep their names).
from multinode.testing.control_plane import (
    GRACE_PERIOD_SECONDS,
    HEARTBEAT_TIMEOUT_SECONDS,
    ControlPlane,
    free_port_block,
    running_control_plane,
)
from multinode.testing.deployment import write_tasks

__all__ = [
    "GRACE_PERIOD_SECONDS",
    "HEARTBEAT_TIMEOUT_SECONDS",
    "ControlPlane",
    "free_port_block",
    "running_control_plane",
    "write_tasks",
]

REPO = Path(__file__).resolve().parent.parent
# Tiers in the order they run: a broken unit fails the run in seconds, before any server starts.
TIERS = ("unit", "network", "engine", "e2e")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test with its tier (its folder; `network` for unit tests that reach the
    package index) and run the tiers in order, each in its files' order."""
    for item in items:
        folder = Path(str(item.path)).parent.name
        if item.get_closest_marker("network") is None and folder in TIERS:
            item.add_marker(getattr(pytest.mark, folder))

    def tier(item: pytest.Item) -> int:
        return next((i for i, name in enumerate(TIERS) if item.get_closest_marker(name)), len(TIERS))

    items.sort(key=tier)  # stable: within a tier, the collection order


EXAMPLE_TASKS = REPO / "tasks"


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    with running_control_plane(tmp_path_factory.mktemp("multinode-home")) as plane:
        yield plane


@pytest.fixture
def project_name(request: pytest.FixtureRequest) -> str:
    """A project name no other test uses."""
    stem = "".join(c if c.isalnum() else "_" for c in request.node.name)[:30]
    return f"t_{stem}_{uuid.uuid4().hex[:6]}"


@pytest.fixture
def deploy_tasks(control_plane: ControlPlane, project_name: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    """Deploy a tasks folder (a path, or main.py source) as this test's project."""
    from multinode.admin.deployment import deploy

    def _deploy(source: Path | str, **files: str):  # type: ignore[no-untyped-def]
        folder = source if isinstance(source, Path) else write_tasks(tmp_path / "tasks", source, **files)
        return deploy(folder, project_name)

    return _deploy


def wait_until(predicate, timeout: float = 20.0, interval: float = 0.05, message: str = "condition"):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {message}")
        time.sleep(interval)


def client_for_queue(queue: str):  # type: ignore[no-untyped-def]
    """An SDK client on the session's control plane but another task queue (for tests that run
    their own workers, or none)."""
    from multinode._client import Client
    from multinode.contract.connection import resolve_settings

    base = resolve_settings()
    return Client(type(base)(base.api_url, None, base.namespace, queue, "environment"))


def copy_example_tasks(destination: Path) -> Path:
    shutil.copytree(EXAMPLE_TASKS, destination)
    return destination
