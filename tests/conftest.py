"""Test tiers: unit (needs nothing), engine and e2e (a real Temporal dev server, started here on
free 127.0.0.1 ports, and real workers). One dev server and worker per test session; every test
uses its own project names, so tests never see each other's invocations."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


@pytest.fixture(autouse=True)
def leaves_no_trace() -> Iterator[None]:
    """Fails a test that leaves the process changed for the tests after it: MULTINODE_*
    variables set, changed or removed, folders added to sys.path, or modules imported from
    outside the installed code (a test's own tasks folder) left in sys.modules. Session and module
    fixtures set up before this runs and tear down after it, so their changes are not counted."""
    environment = {k: v for k, v in os.environ.items() if k.startswith("MULTINODE_")}
    path = list(sys.path)
    modules = set(sys.modules)
    yield
    problems = []
    now = {k: v for k, v in os.environ.items() if k.startswith("MULTINODE_")}
    if now != environment:
        changed = sorted(k for k in now.keys() | environment.keys() if now.get(k) != environment.get(k))
        problems.append(f"MULTINODE_* variables left changed: {changed}")
    if added := [entry for entry in sys.path if entry not in path]:
        problems.append(f"sys.path entries left behind: {added}")
    if strays := sorted(name for name in set(sys.modules) - modules if _from_elsewhere(sys.modules.get(name))):
        problems.append(f"modules imported from outside the installed code left in sys.modules: {strays}")
    if problems:
        pytest.fail("; ".join(problems), pytrace=False)


_INSTALLED = tuple(str(Path(p).resolve()) for p in {REPO, sys.prefix, sys.base_prefix, sys.exec_prefix})


def _from_elsewhere(module: Any) -> bool:
    location = getattr(module, "__file__", None)
    return bool(location) and not str(Path(location).resolve()).startswith(_INSTALLED)


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


_REFUSING: list[socket.socket] = []


def refused_port() -> int:
    """A 127.0.0.1 port where connections are refused, for as long as the tests run: bound here
    and never listened on (a probed and released port could be taken by anything meanwhile)."""
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    _REFUSING.append(holder)
    port: int = holder.getsockname()[1]
    return port


def interruptible(*argv: str) -> list[str]:
    """`argv` as a command whose Python answers Ctrl-C (SIGINT) with KeyboardInterrupt even when
    this process ignores SIGINT, as it does when started in the background of a shell without
    job control (the child would inherit the ignore, and Python then installs no handler)."""
    reset = "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])"
    return [sys.executable, "-c", reset, *argv]


def client_for_queue(queue: str):  # type: ignore[no-untyped-def]
    """An SDK client on the session's control plane but another task queue (for tests that run
    their own workers, or none)."""
    from multinode._client import Client
    from multinode.contract.connection import resolve_settings

    base = resolve_settings()
    return Client(type(base)(base.api_url, None, base.namespace, queue, "environment"))


@dataclass
class PrivateQueue:
    """A task queue of the test's own on the session's control plane: `function()` calls it
    through its own client; no worker serves it until the test starts one, and every worker
    started here is stopped when the test ends."""

    name: str
    plane: ControlPlane
    client: Any
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def function(self, project_name: str, function_name: str):  # type: ignore[no-untyped-def]
        import multinode as mn

        return mn.Function(function_name, project_name=project_name, client=self.client)

    def start_worker(self, **env: str) -> subprocess.Popen[bytes]:
        worker = self.plane.start_worker(MULTINODE_TASK_QUEUE=self.name, **env)
        self.workers.append(worker)
        return worker

    def kill_worker(self, worker: subprocess.Popen[bytes]) -> None:
        """`kill -9`: the worker gives nothing back."""
        worker.send_signal(signal.SIGKILL)
        worker.wait()


@pytest.fixture
def private_queue(control_plane: ControlPlane, request: pytest.FixtureRequest) -> Iterator[PrivateQueue]:
    stem = "".join(c if c.isalnum() else "-" for c in request.node.name)[:30]
    queue = PrivateQueue(f"{stem}-{uuid.uuid4().hex[:8]}", control_plane, None)
    queue.client = client_for_queue(queue.name)
    try:
        yield queue
    finally:
        for worker in queue.workers:
            control_plane.stop_worker(worker)
        queue.client.close()


def copy_example_tasks(destination: Path) -> Path:
    shutil.copytree(EXAMPLE_TASKS, destination)
    return destination
