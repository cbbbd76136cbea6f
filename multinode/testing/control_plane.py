"""An embedded control plane for tests: Temporal's dev server on free 127.0.0.1 ports and a real
worker running attempts as local processes, with the SDK of this process pointed at it while it
runs. The project's own tests and `multinode.testing`'s fixtures both use it."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from multinode.admin.devserver import DevServer, DevServerConfig

# Short, so tests of cancellation and of lost attempts do not wait for production's figures.
GRACE_PERIOD_SECONDS = 2
HEARTBEAT_TIMEOUT_SECONDS = 3


def stop_process(process: subprocess.Popen[Any], timeout_seconds: float = 20) -> None:
    """SIGTERM, then SIGKILL if it has not ended within `timeout_seconds`."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout_seconds)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def free_port_block(span: int = 13) -> int:
    """A base port whose next `span` ports are free (the dev server pins port+10, port+11, and
    `multinode dev` its worker's metrics on port+12).

    Probed and released, not held: the Temporal dev server binds its ports itself, takes
    neither port 0 (its address must be known before it starts, and the HTTP and metrics ports
    follow from it) nor open sockets. A port taken by someone else in between makes the
    server's start fail loudly, never a test pass by accident."""
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base: int = probe.getsockname()[1]
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
    """A running dev server and its workers. `env` is the environment the workers run with (the
    SDK settings among it are also set in this process while the plane runs)."""

    home: Path
    address: str
    task_queue: str
    server: DevServer
    env: dict[str, str]
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start_worker(self, **env: str) -> subprocess.Popen[bytes]:
        """Another worker (e.g. on another task queue: `MULTINODE_TASK_QUEUE=...`)."""
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
        stop_process(worker, timeout_seconds=15)

    def worker_log(self) -> str:
        """Every worker's log so far: what to print when a test fails mysteriously."""
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.home.glob("worker-*.log")))


@contextlib.contextmanager
def running_control_plane(
    home: Path, extra_dynamic_config: tuple[str, ...] = (), **worker_env: str
) -> Iterator[ControlPlane]:
    """A dev server on free ports and one worker; the SDK points at it while it runs. `home`
    holds its state (database, packages, environments, attempt logs)."""
    from multinode import _client

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
    plane = ControlPlane(home, config.address, env["MULTINODE_TASK_QUEUE"], server, env)
    try:
        plane.start_worker()
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
