"""Test tiers: unit (needs nothing), engine and e2e (a real Temporal dev server, started here on
free 127.0.0.1 ports, and real workers). One dev server and worker per test session; every test
uses its own project names, so tests never see each other's invocations."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

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
GRACE_PERIOD_SECONDS = 2
HEARTBEAT_TIMEOUT_SECONDS = 3


def free_port_block(span: int = 12) -> int:
    """A base port whose next `span` ports are free (the dev server pins port+10, port+11)."""
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = probe.getsockname()[1]
        if base + span >= 65535:
            continue
        ok = True
        for port in range(base, base + span):
            with socket.socket() as probe:
                try:
                    probe.bind(("127.0.0.1", port))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise RuntimeError("no free port block")


@dataclass
class ControlPlane:
    home: Path
    address: str
    task_queue: str
    server: object
    env: dict[str, str]
    workers: list[subprocess.Popen[bytes]]

    def start_worker(self, **env: str) -> subprocess.Popen[bytes]:
        log = open(self.home / f"worker-{len(self.workers)}.log", "ab")
        worker = subprocess.Popen(
            [sys.executable, "-m", "temporal_workers"],
            env={**self.env, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.workers.append(worker)
        return worker

    def stop_worker(self, worker: subprocess.Popen[bytes]) -> None:
        """Stop a worker the way an operator would (SIGTERM: it gives its leases back)."""
        if worker.poll() is None:
            worker.terminate()
            try:
                worker.wait(timeout=15)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()

    def worker_log(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.home.glob("worker-*.log")))


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    with running_control_plane(tmp_path_factory.mktemp("multinode-home")) as plane:
        yield plane


@contextlib.contextmanager
def running_control_plane(
    home: Path, extra_dynamic_config: tuple[str, ...] = (), **worker_env: str
) -> Iterator[ControlPlane]:
    """A dev server on free ports and one worker; the SDK points at it while it runs."""
    from multinode import _client
    from multinode.admin.devserver import DevServer, DevServerConfig

    port = free_port_block()
    config = DevServerConfig(home=home, port=port, headless=True, extra_dynamic_config=extra_dynamic_config)
    server = DevServer(config).start()
    env = {
        **os.environ,
        "MULTINODE_HOME": str(home),
        "MULTINODE_API_URL": config.address,
        "MULTINODE_TASK_QUEUE": f"tests-{uuid.uuid4().hex[:8]}",
        "MULTINODE_GRACE_PERIOD_SECONDS": str(GRACE_PERIOD_SECONDS),
        "MULTINODE_HEARTBEAT_TIMEOUT_SECONDS": str(HEARTBEAT_TIMEOUT_SECONDS),
        "MULTINODE_QUOTA_REAP_SECONDS": "2",
        **worker_env,
    }
    env.pop("MULTINODE_API_KEY", None)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update({k: v for k, v in env.items() if k.startswith("MULTINODE_")})
    _client.set_default_client(None)
    plane = ControlPlane(home, config.address, env["MULTINODE_TASK_QUEUE"], server, env, [])
    plane.start_worker()
    try:
        yield plane
    finally:
        for worker in plane.workers:
            plane.stop_worker(worker)
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        _client.set_default_client(None)


@pytest.fixture
def project_name(request: pytest.FixtureRequest) -> str:
    """A project name no other test uses."""
    stem = "".join(c if c.isalnum() else "_" for c in request.node.name)[:30]
    return f"t_{stem}_{uuid.uuid4().hex[:6]}"


def write_tasks(folder: Path, main_py: str, **files: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "main.py").write_text(main_py)
    for name, text in files.items():
        path = folder / name.replace("__", "/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return folder


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
