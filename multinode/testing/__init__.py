"""`multinode.testing`: test your own tasks against the real semantics, as a pytest plugin.

Enable it in your `conftest.py` with `pytest_plugins = ["multinode.testing"]`. It gives:

- `multinode_control_plane` (session): Temporal's dev server on free 127.0.0.1 ports and a real
  worker running attempts as local processes; the SDK of the test process points at it.
- `multinode_deploy` (per test): `multinode_deploy(folder)` (or main.py's source as a string,
  with more files as keyword arguments) deploys a tasks folder as a project of its own and
  returns a `Deployment` whose functions (`deployment["name"]`) are ready to call remotely.
- `multinode_worker_env` (session): extra environment for the worker; override it in your
  conftest (e.g. `{"MULTINODE_GRACE_PERIOD_SECONDS": "5"}`).
- `run_locally(fn, *args, **kwargs)`: a function's body run in-process, no control plane, the
  way an attempt runs it (generators and async included) for fast unit tests.

Never imported by `import multinode`; it imports pytest, and the operator side (`multinode.admin`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from multinode.testing.control_plane import ControlPlane, running_control_plane
from multinode.testing.deployment import Deployment, deploy_tasks, write_tasks
from multinode.testing.local import run_locally

__all__ = [
    "ControlPlane",
    "Deployment",
    "multinode_control_plane",
    "multinode_deploy",
    "multinode_worker_env",
    "run_locally",
    "running_control_plane",
    "write_tasks",
]


@pytest.fixture(scope="session")
def multinode_worker_env() -> dict[str, str]:
    """Extra environment for the session's worker (the `MULTINODE_*` worker settings)."""
    return {}


@pytest.fixture(scope="session")
def multinode_control_plane(
    tmp_path_factory: pytest.TempPathFactory, multinode_worker_env: dict[str, str]
) -> Iterator[ControlPlane]:
    """One embedded control plane for the whole test session (a few seconds to start)."""
    with running_control_plane(tmp_path_factory.mktemp("multinode-home"), (), **multinode_worker_env) as plane:
        yield plane


@pytest.fixture
def multinode_deploy(
    multinode_control_plane: ControlPlane, request: pytest.FixtureRequest, tmp_path: Path
) -> Callable[..., Deployment]:
    """Deploys a tasks folder as a project only this test uses: `multinode_deploy(path)`, or
    `multinode_deploy(main_py_source, **more_files)`; `project_name=` to choose the name."""
    stem = "".join(c if c.isalnum() else "_" for c in request.node.name)[:30]
    deployed: list[str] = []

    def deploy(source: Path | str, project_name: str | None = None, **files: str) -> Deployment:
        folder = Path(source) if isinstance(source, Path) else write_tasks(tmp_path / f"tasks-{len(deployed)}", source, **files)
        name = project_name or f"t_{stem}_{uuid.uuid4().hex[:6]}"
        deployment = deploy_tasks(folder, name, upgrade=name in deployed)
        deployed.append(name)
        return deployment

    return deploy
