"""The Fargate tier's set-up: the session's Temporal dev server, one moto server and stack for the
tier (`tests/e2e/moto_stack.py`), and per test a task queue of its own served by real workers
(`temporal_workers.run_worker`, backend "fargate") running in this process, whose ECS seam is
`LocalFargate`: each task is the function image's entrypoint run as a local process.

Everything else goes through public interfaces: the CLI as a process (`multinode deploy` with an
`s3://` package store, `multinode logs`), the SDK (`multinode.Function`) on the test's queue."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest

import multinode as mn
from multinode._client import Client
from multinode.runtime.object_store import ObjectStore
from multinode.testing.control_plane import GRACE_PERIOD_SECONDS, HEARTBEAT_TIMEOUT_SECONDS
from temporal_workers.backends.fargate.backend import FargateBackend
from temporal_workers.backends.fargate.config import Timings, load_fargate_config
from temporal_workers.backends.fargate.ecs import EcsApi
from temporal_workers.backends.fargate.service_ecs import ServiceEcsApi, load_discovery_config
from temporal_workers.backends.fargate.services import FargateServices
from temporal_workers.settings import WorkerSettings, load_worker_settings
from temporal_workers.worker import run_worker
from tests.conftest import REPO, ControlPlane, client_for_queue
from tests.e2e.fargate.tasks import MAIN_PY
from tests.e2e.local_fargate import LocalFargate
from tests.e2e.local_fargate_services import LocalEcsServices
from tests.e2e.moto_stack import BUCKET, Stack, create_stack, running_moto_server

# Production's figures shrunk so the tier runs in seconds (the look intervals bound how soon an
# end, a cancel or progress is seen).
TIMINGS = Timings(describe_interval=0.2, progress_interval=0.2, tick=0.05,
                  launch_delays=(0.2, 0.5), visibility_grace=10.0, start_timeout=60.0)


# One moto server and stack for the whole tier (its start costs seconds); every test has its own
# task queue, project and package object in it.
@pytest.fixture(scope="package")
def moto_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_moto_server(tmp_path_factory.mktemp("moto") / "moto.log") as url:
        yield url


@pytest.fixture(scope="package")
def stack(moto_url: str) -> Stack:
    return create_stack(moto_url)


class WorkerThread:
    """`run_worker` on an event loop of its own, until `close`."""

    def __init__(self, name: str, settings: WorkerSettings, backend: FargateBackend) -> None:
        self.name = name
        self.settings = settings
        self.backend = backend
        self.error: BaseException | None = None
        self._started = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name=f"worker-{name}", daemon=True)
        self._thread.start()
        assert self._started.wait(10)

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:  # surfaced by close()
            self.error = exc

    async def _run(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        self._started.set()
        await run_worker(self.settings, self._stop, self.backend)

    def request_stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)

    def close(self) -> None:
        self.request_stop()
        self._thread.join(timeout=60)
        assert not self._thread.is_alive(), f"worker {self.name} did not stop"
        if self.error is not None:
            raise self.error


@dataclass
class FargateTier:
    plane: ControlPlane
    stack: Stack
    queue: str
    root: Path
    fargate: LocalFargate
    client: Client
    ecs_services: LocalEcsServices
    project: str = ""
    manifest: dict[str, Any] = field(default_factory=dict)
    workers: list[WorkerThread] = field(default_factory=list)

    def start_worker(self) -> WorkerThread:
        name = f"w{len(self.workers) + 1}"
        base = self.client.settings
        settings = load_worker_settings(
            connection=type(base)(base.api_url, None, base.namespace, self.queue, "environment"),
            home=self.root / name, backend="fargate", grace_period_seconds=GRACE_PERIOD_SECONDS,
            heartbeat_timeout_seconds=HEARTBEAT_TIMEOUT_SECONDS, quota_reap_seconds=2,
            shutdown_grace_seconds=0,
        )
        config = load_fargate_config(self.stack.environ)
        store = ObjectStore.connect(config.endpoint_url)
        discovery = load_discovery_config(self.stack.environ)
        assert discovery is not None
        services = FargateServices(settings, config, self.ecs_services.seam(), store, TIMINGS, discovery)
        backend = FargateBackend(settings, config, self.fargate.seam(name), store, TIMINGS, services)
        worker = WorkerThread(name, settings, backend)
        self.workers.append(worker)
        return worker

    def close_workers(self) -> None:
        """Stops every worker at once: each gives its quota leases back on the way out (a few
        seconds each when no other worker is left to take the update)."""
        for worker in self.workers:
            worker.request_stop()
        for worker in self.workers:
            worker.close()

    @property
    def cli_env(self) -> dict[str, str]:
        """What an operator's shell holds: the control plane, the task queue, the bucket, and AWS
        credentials (here moto's)."""
        return {**os.environ, "MULTINODE_HOME": str(self.root / "cli-home"),
                "MULTINODE_API_URL": self.plane.address, "MULTINODE_TASK_QUEUE": self.queue,
                "MULTINODE_PACKAGE_STORE": self.stack.environ["MULTINODE_PACKAGE_STORE"],
                "MULTINODE_SECRETS_KMS_KEY": self.stack.environ["MULTINODE_SECRETS_KMS_KEY"]}

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "multinode_cli.main", *args], env=self.cli_env,
                              cwd=REPO, text=True, capture_output=True, timeout=timeout)

    def cli_process(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "multinode_cli.main", *args], env=self.cli_env,
                                cwd=REPO, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def deploy(self) -> dict[str, Any]:
        """`multinode deploy --json` of the tasks folder as this test's project; the package is
        the test's own (its main.py names the project), so no other test shares its object."""
        folder = self.root / "tasks"
        folder.mkdir()
        (folder / "main.py").write_text(f"# project {self.project}\n{MAIN_PY}")
        result = self.cli("deploy", str(folder), f"--project-name={self.project}", "--json")
        assert result.returncode == 0, result.stderr
        manifest: dict[str, Any] = json.loads(result.stdout)
        return manifest

    def function(self, name: str) -> mn.Function[..., Any]:
        return mn.Function(name, project_name=self.project, client=self.client)

    def bucket_keys(self, prefix: str = "") -> list[str]:
        pages = boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
        return [item["Key"] for page in pages for item in page.get("Contents", [])]


@pytest.fixture
def tier(control_plane: ControlPlane, stack: Stack, tmp_path: Path,
         request: pytest.FixtureRequest) -> Iterator[FargateTier]:
    """A task queue of the test's own, one Fargate worker serving it (`start_worker` adds
    more), and the test's project deployed through the CLI to the moto bucket."""
    stem = "".join(c if c.isalnum() else "_" for c in request.node.name)[:30]
    queue = f"fargate-{uuid.uuid4().hex[:8]}"
    fargate = LocalFargate(EcsApi.connect(), tmp_path / "containers")
    ecs_services = LocalEcsServices(fargate, ServiceEcsApi.connect())
    tier = FargateTier(control_plane, stack, queue, tmp_path, fargate, client_for_queue(queue),
                       ecs_services, project=f"f_{stem}_{uuid.uuid4().hex[:6]}")
    try:
        tier.start_worker()
        tier.manifest = tier.deploy()
        yield tier
    finally:
        tier.client.close()
        try:
            tier.close_workers()
        finally:
            ecs_services.close()
            fargate.close()
