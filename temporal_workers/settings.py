"""Worker settings, read once from the environment and validated at start."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from multinode.contract.connection import ConnectionSettings, multinode_home
from multinode.engine.connection import resolve_settings
from multinode.errors import InvalidOptionError


class WorkerSettings(BaseModel):
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    connection: ConnectionSettings
    home: Path
    backend: str = Field(default="local", pattern="^(local|fargate|fake)$")
    # How long a cancelled or timed-out function may clean up before it is killed.
    grace_period_seconds: float = Field(default=120.0, ge=0.5, le=3600)
    # How soon the engine notices a dead worker or a lost attempt, and retries it.
    heartbeat_timeout_seconds: float = Field(default=5.0, ge=1, le=600)
    max_concurrent_attempts: int = Field(default=200, ge=1, le=10_000)
    # Start attempts by forking a warm process per version environment (Linux, local backend).
    fork_server: bool = True
    # Attempts may queue in the worker for its quota lease's next free slot (temporal_workers/
    # quota/leases.py); false: an attempt without a slot queues at the semaphore at once.
    local_queue: bool = True
    # How often a function's quota checks that its holders still exist.
    quota_reap_seconds: float = Field(default=30.0, ge=1, le=3600)
    # How often finished invocations are archived, and how far behind the present (visibility
    # lag); the namespace's retention must be longer than both together.
    archive_interval_seconds: float = Field(default=60.0, ge=0.5, le=86_400)
    archive_lag_seconds: float = Field(default=30.0, ge=0, le=86_400)
    # On SIGTERM, how long running attempts may go on before they are handed back to the engine
    # (which runs them again elsewhere, not counting against max_retries). Below the worker task
    # definition's stopTimeout of 120 s, leaving time to hand back and exit.
    shutdown_grace_seconds: float = Field(default=100.0, ge=0, le=3600)
    # How long a service's process may take to accept connections on its port before the run
    # counts as never healthy (stopped, and restarted under the restart rules).
    service_start_seconds: float = Field(default=60.0, ge=1, le=3600)
    # host:port where Prometheus scrapes this worker's metrics; None: no metrics.
    metrics_address: str | None = None

    @field_validator("metrics_address")
    @classmethod
    def _host_and_port(cls, value: str | None) -> str | None:
        if value is None:
            return None
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536 or any(c.isspace() for c in host):
            raise ValueError("expected host:port, e.g. 127.0.0.1:9464 or 0.0.0.0:9464")
        return value

    @property
    def runs_dir(self) -> Path:
        return self.home / "runs"

    @property
    def code_dir(self) -> Path:
        return self.home / "code"

    @property
    def envs_dir(self) -> Path:
        return self.home / "envs"


def load_worker_settings(**overrides: object) -> WorkerSettings:
    values: dict[str, object] = {
        "connection": resolve_settings(),
        "home": multinode_home(),
    }
    env_names = {
        "backend": "MULTINODE_BACKEND",
        "grace_period_seconds": "MULTINODE_GRACE_PERIOD_SECONDS",
        "heartbeat_timeout_seconds": "MULTINODE_HEARTBEAT_TIMEOUT_SECONDS",
        "max_concurrent_attempts": "MULTINODE_MAX_CONCURRENT_ATTEMPTS",
        "fork_server": "MULTINODE_FORK_SERVER",
        "local_queue": "MULTINODE_LOCAL_QUEUE",
        "quota_reap_seconds": "MULTINODE_QUOTA_REAP_SECONDS",
        "archive_interval_seconds": "MULTINODE_ARCHIVE_INTERVAL_SECONDS",
        "archive_lag_seconds": "MULTINODE_ARCHIVE_LAG_SECONDS",
        "shutdown_grace_seconds": "MULTINODE_SHUTDOWN_GRACE_SECONDS",
        "metrics_address": "MULTINODE_METRICS_ADDRESS",
        "service_start_seconds": "MULTINODE_SERVICE_START_SECONDS",
    }
    for field, env in env_names.items():
        if os.environ.get(env):
            values[field] = os.environ[env]
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return WorkerSettings(**values)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc']))}={e.get('input')!r}: {e['msg']}" for e in exc.errors()
        )
        raise InvalidOptionError(f"invalid worker settings: {problems}") from None
