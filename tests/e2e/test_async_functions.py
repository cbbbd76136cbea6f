"""Issue 15, items 2 and 4 end to end: `async def` functions and async generators on the real dev
server and worker (fork server and all), and values that cannot be decoded on the other side
because the two environments differ."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import multinode as mn
from multinode import InvocationStatus, errors
from tests.conftest import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

TASKS = '''
import asyncio, traceback
from datetime import timedelta
from pathlib import Path
from multinode import Multinode
from multinode.errors import InvocationCancelledError, InvocationTimedOutError
from functionside import Measured

mn = Multinode()


def where(error):
    line = [f.line for f in traceback.extract_tb(error.__traceback__) if f.filename.endswith("main.py")][-1]
    return f"{type(error).__name__} at {line}"


@mn.function()
async def fetch(x):
    await asyncio.sleep(0.01)
    return {"fetched": x}


@mn.function()
async def countdown(n):
    for i in range(n, -1, -1):
        yield {"left": i}
        await asyncio.sleep(0.2 if i else 0)


@mn.function()
async def polite(marker_dir):
    i = 0
    try:
        while True:
            yield i
            i += 1
            if i > 2:
                # Written once the coroutine is suspended at the await below.
                asyncio.get_running_loop().call_soon(Path(marker_dir, "waiting").write_text, "")
            await asyncio.sleep(600 if i > 2 else 0.01)
    except InvocationCancelledError as error:
        await asyncio.sleep(0.05)  # clean-up still awaits
        Path(marker_dir, "caught").write_text(where(error))


@mn.function(timeout=timedelta(seconds=2))
async def slow(marker_dir):
    try:
        await asyncio.sleep(600)
    except InvocationTimedOutError as error:
        Path(marker_dir, "caught").write_text(where(error))
        raise


@mn.function()
def takes(value):
    return repr(value)


@mn.function()
def measures():
    return Measured(7)
'''

# A module only the function's environment has (a sibling of main.py in the tasks folder).
FUNCTION_SIDE = '''
class Measured:
    def __init__(self, n):
        self.n = n
'''

# A module only the caller has: its reducing function is what numpy 2's arrays need
# (numpy._core.multiarray._reconstruct) and numpy 1 lacks.
CALLER_SIDE = '''
class Grid:
    def __init__(self, n):
        self.n = n

    def __reduce__(self):
        return (_reconstruct, (self.n,))


def _reconstruct(n):
    return Grid(n)
'''


@pytest.fixture
def project(deploy_tasks):  # type: ignore[no-untyped-def]
    manifest = deploy_tasks(TASKS, **{"functionside.py": FUNCTION_SIDE})
    kinds = {spec.name: spec.function_kind.value for spec in manifest.functions}
    assert kinds == {
        "fetch": "async function",
        "countdown": "async generator",
        "polite": "async generator",
        "slow": "async function",
        "takes": "function",
        "measures": "function",
    }
    return manifest.project_name


@pytest.fixture
def caller_only_module(tmp_path: Path) -> Iterator[Any]:
    folder = tmp_path / "caller_path"
    folder.mkdir()
    (folder / "callerside_grid.py").write_text(CALLER_SIDE)
    sys.path.insert(0, str(folder))
    import callerside_grid  # type: ignore[import-not-found]

    try:
        yield callerside_grid
    finally:
        sys.path.remove(str(folder))
        sys.modules.pop("callerside_grid", None)


def fn(project: str, name: str) -> mn.Function:  # type: ignore[type-arg]
    return mn.get_deployed_function(project, name)


def test_an_async_function_returns_its_value(project: str) -> None:
    assert fn(project, "fetch").call_remote("a") == {"fetched": "a"}


def test_an_async_generators_latest_yield_is_its_progress_then_its_result(project: str) -> None:
    countdown = fn(project, "countdown")
    invocation_id = countdown.start(5)
    seen = wait_until(lambda: countdown.get(invocation_id).result, message="progress")
    assert seen in [{"left": i} for i in range(6)]
    assert countdown.await_result(invocation_id) == {"left": 0}


def test_cancel_arrives_inside_the_await(project: str, tmp_path: Path) -> None:
    polite = fn(project, "polite")
    invocation_id = polite.start(str(tmp_path))
    wait_until(lambda: (tmp_path / "waiting").exists(), message="the long await")
    assert polite.cancel(invocation_id) is True
    with pytest.raises(errors.InvocationCancelledError):
        polite.await_result(invocation_id)
    assert (tmp_path / "caught").read_text() == (
        "InvocationCancelledError at await asyncio.sleep(600 if i > 2 else 0.01)"
    )
    final = polite.get(invocation_id)
    assert final.status == InvocationStatus.CANCELLED and final.result == 2 and final.terminated


def test_the_timeout_arrives_inside_the_await(project: str, tmp_path: Path) -> None:
    slow = fn(project, "slow")
    invocation_id = slow.start(str(tmp_path))
    with pytest.raises(errors.InvocationTimedOutError):
        slow.await_result(invocation_id)
    assert (tmp_path / "caught").read_text() == "InvocationTimedOutError at await asyncio.sleep(600)"
    assert slow.get(invocation_id).status == InvocationStatus.TIMED_OUT


def test_an_argument_the_functions_environment_cannot_decode_fails_the_attempt(
    project: str, caller_only_module: Any
) -> None:
    takes = fn(project, "takes")
    invocation_id = takes.start(caller_only_module.Grid(3))
    with pytest.raises(errors.InvocationFailedError):
        takes.await_result(invocation_id)
    final = takes.get(invocation_id)
    assert final.error_details is not None and final.error_details.type == "EncodingError"
    assert final.error_details.message.startswith(
        "argument 0 cannot be decoded in the function's environment: it needs the function "
        "callerside_grid._reconstruct, which is missing in the function's environment "
        "(No module named 'callerside_grid')"
    )


def test_a_result_the_caller_cannot_decode_leaves_the_invocation_readable(project: str) -> None:
    measures = fn(project, "measures")
    invocation_id = measures.start()
    expected = (
        f"the result of {invocation_id} cannot be decoded in this process: it needs the class "
        f"functionside.Measured, which is missing in this process (No module named 'functionside')"
    )
    with pytest.raises(errors.EncodingError) as awaited:
        measures.await_result(invocation_id)
    assert str(awaited.value).startswith(expected)
    final = measures.get(invocation_id)
    assert final.status == InvocationStatus.SUCCEEDED and final.error is None and final.terminated
    assert [a.outcome for a in final.attempts] == ["succeeded"]
    with pytest.raises(errors.EncodingError, match=r"functionside\.Measured"):
        final.result  # noqa: B018
    # The CLI, which has no tasks folder either, shows the value as it travelled.
    shown = subprocess.run(
        [str(Path(sys.executable).parent / "multinode"), "get", project, "measures", invocation_id, "--json"],
        capture_output=True, text=True, timeout=60, check=True,
    )
    data = json.loads(shown.stdout)
    assert data["status"] == "SUCCEEDED" and data["result"] == {"py/object": "functionside.Measured", "n": 7}
    assert data["result_not_decodable_here"].startswith(expected)
