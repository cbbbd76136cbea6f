"""Code written for the original Multinode keeps working: its import paths and error names are
aliases of ours (README, "Coming from the original Multinode"), checked in a fresh interpreter
the way an application imports them, and without loading the engine's heavy client."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import multinode as mn
from multinode import errors
from multinode._client import Client
from tests.unit.fake_engine import FakeEngine, manifest

REPO = Path(__file__).resolve().parents[2]

# The original's import, and what it is now.
ORIGINAL = [
    ("multinode.core.invocation", "InvocationStatus", mn.InvocationStatus),
    ("multinode.core.invocation", "Invocation", mn.Invocation),
    ("multinode.core.errors", "InvocationFailedError", errors.InvocationFailedError),
    ("multinode.core.errors", "InvocationTimedOutError", errors.InvocationTimedOutError),
    ("multinode.core.errors", "InvocationCancelledError", errors.InvocationCancelledError),
    ("multinode.api_client.error_types", "InvocationDoesNotExist", errors.InvocationDoesNotExistError),
    ("multinode.api_client.error_types", "FunctionDoesNotExist", errors.FunctionDoesNotExistError),
    ("multinode.api_client.error_types", "VersionDoesNotExist", errors.VersionDoesNotExistError),
    ("multinode.api_client.error_types", "ProjectDoesNotExist", errors.ProjectDoesNotExistError),
    ("multinode.api_client.error_types", "ProjectAlreadyExists", errors.ProjectAlreadyExistsError),
    ("multinode.api_client.error_types", "MultinodeApiException", errors.MultinodeError),
    # The original's `multinode.errors` re-exported the API client's names.
    ("multinode.errors", "InvocationDoesNotExist", errors.InvocationDoesNotExistError),
    ("multinode.errors", "LockAlreadyInUse", errors.LockAlreadyInUseError),
    ("multinode.errors", "JobDoesNotExist", errors.InvocationDoesNotExistError),
    ("multinode", "Multinode", mn.Multinode),
    ("multinode", "get_deployed_function", mn.get_deployed_function),
]


@pytest.mark.parametrize(("module", "name", "now"), ORIGINAL, ids=[f"{m}.{n}" for m, n, _ in ORIGINAL])
def test_an_original_import_is_our_name(module: str, name: str, now: object) -> None:
    imported = __import__(module, fromlist=[name])
    assert getattr(imported, name) is now


def test_the_original_imports_load_no_heavy_client() -> None:
    lines = [f"from {module} import {name}" for module, name, _ in ORIGINAL]
    code = "\n".join([*lines, "import sys",
                      "print(sorted(m for m in sys.modules if m.split('.')[0] in {'temporalio', 'pydantic'}))"])
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                               timeout=60, check=False)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "[]"


def test_the_original_example_apps_error_handling_works() -> None:
    """The original TSP app answered "does not exist" for any id it could not read: a mistyped
    id included."""
    from multinode.api_client.error_types import InvocationDoesNotExist
    from multinode.core.invocation import InvocationStatus

    client = Client(engine=FakeEngine(manifest("tsp", "solve_tsp")))
    try:
        solve = mn.Function("solve_tsp", project_name="tsp", client=client)
        for unknown in ("inv-00000000000000000000000000", "inv-mistyped", "12"):
            with pytest.raises(InvocationDoesNotExist):
                solve.get(unknown)
        invocation = solve.get(solve.start(50, [[0.0, 1.0], [1.0, 0.0]]))
        assert invocation.status == InvocationStatus.PENDING
        assert (invocation.result, invocation.error, invocation.terminated) == (None, None, False)
    finally:
        client.close()
