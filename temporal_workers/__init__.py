"""Multinode's worker side: workflows, the attempt activity, container backends.

Its public face is what runs a worker (`multinode dev`, `multinode worker`,
`python -m temporal_workers`): `load_worker_settings`, `WorkerSettings`, `run_worker` and
`configure_logging`. Everything else in here is the worker's own. The names load lazily: this
package is imported by every worker process and by the CLI, which should not pay for
temporalio and pydantic before it runs a worker.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncio

    from temporal_workers.settings import WorkerSettings

__all__ = ["WorkerSettings", "configure_logging", "load_worker_settings", "run_worker"]

ENV_LOG_LEVEL = "MULTINODE_LOG_LEVEL"


def configure_logging() -> None:
    """A worker's log lines on stderr, at MULTINODE_LOG_LEVEL (default INFO)."""
    logging.basicConfig(
        level=os.environ.get(ENV_LOG_LEVEL, "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def load_worker_settings(**overrides: object) -> WorkerSettings:
    """The worker's settings: the environment (MULTINODE_*), then `overrides`."""
    from temporal_workers.settings import load_worker_settings as load

    return load(**overrides)


async def run_worker(settings: WorkerSettings, stop: asyncio.Event | None = None) -> None:
    """Run a worker until `stop` is set (or the process is interrupted)."""
    from temporal_workers.worker import run_worker as run

    await run(settings, stop)


def __getattr__(name: str) -> object:
    if name == "WorkerSettings":
        from temporal_workers.settings import WorkerSettings

        return WorkerSettings
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
