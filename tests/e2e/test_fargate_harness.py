"""The Fargate path end to end without AWS: a moto server plays S3, ECS and CloudWatch Logs
(`tests/e2e/moto_stack.py`), and local processes play Fargate itself: each task is the function
image's entrypoint run with the task's environment, stopped by signals (`tests/e2e/local_fargate.py`).

The backend is driven directly, with a fake session standing in for the Temporal activity.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from multinode.admin.cloudwatch import read_function_logs
from multinode.contract import codec
from multinode.contract.connection import ConnectionSettings
from multinode.contract.ids import new_invocation_id, new_version_id
from multinode.contract.options import FunctionOptions
from multinode.contract.records import AttemptOutcome, AttemptRequest, InvocationInput, Outcome, PackageRef
from multinode.storage.package import build_package, sha256_hex
from multinode.storage.s3 import S3PackageStore
from temporal_workers.backends.fargate.backend import FargateBackend
from temporal_workers.backends.fargate.config import LOG_STREAM_PREFIX, Timings, load_fargate_config
from temporal_workers.settings import WorkerSettings
from tests.e2e.local_fargate import LocalFargate
from tests.e2e.moto_stack import BUCKET, LOG_GROUP, Stack, create_stack, running_moto_server
from tests.fargate_doubles import FakeSession

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

# The container's own grace: it must end well inside local_fargate.STOP_TIMEOUT_SECONDS.
GRACE_PERIOD_SECONDS = 2.0
TIMINGS = Timings(describe_interval=0.2, progress_interval=0.2, tick=0.05,
                  launch_delays=(0.2, 0.5), visibility_grace=10.0, start_timeout=60.0)

MAIN_PY = '''
import time
from multinode import Multinode
from multinode.errors import InvocationCancelledError, InvocationTimedOutError

mn = Multinode()


@mn.function()
def greet(name):
    print(f"hello from the container, {name}", flush=True)
    return f"hello {name}"


@mn.function()
def count(n, delay):
    for i in range(1, n + 1):
        time.sleep(delay)
        yield i


@mn.function()
def explode(message):
    raise ValueError(message)


@mn.function()
def wait_for_stop(seconds):
    print("waiting for a stop", flush=True)
    try:
        time.sleep(seconds)
    except InvocationCancelledError:
        print("saw InvocationCancelledError", flush=True)
        raise
    except InvocationTimedOutError:
        print("saw InvocationTimedOutError", flush=True)
        raise
    return "never stopped"
'''


@pytest.fixture(scope="module")
def moto_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_moto_server(tmp_path_factory.mktemp("moto") / "moto.log") as url:
        yield url


@pytest.fixture(scope="module")
def stack(moto_url: str) -> Stack:
    return create_stack(moto_url)


@dataclass
class Deployed:
    backend: FargateBackend
    fargate: LocalFargate
    package: PackageRef


@pytest.fixture
def deployed(stack: Stack, tmp_path: Path) -> Iterator[Deployed]:
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "main.py").write_text(MAIN_PY)
    data = build_package(tasks)
    uri = S3PackageStore(stack.environ["MULTINODE_PACKAGE_STORE"]).put(data, sha256_hex(data))
    connection = ConnectionSettings("127.0.0.1:7233", None, "default", "harness", "environment")
    settings = WorkerSettings(connection=connection, home=tmp_path / "worker", backend="fargate",
                              grace_period_seconds=GRACE_PERIOD_SECONDS)
    config = load_fargate_config(stack.environ)
    backend = FargateBackend.from_environment(settings, stack.environ)
    fargate = LocalFargate(backend.ecs, tmp_path / "containers")
    backend = FargateBackend(settings, config, fargate, backend.store, TIMINGS)
    try:
        yield Deployed(backend, fargate, PackageRef(uri, sha256_hex(data), len(data)))
    finally:
        fargate.close()


def attempt(deployed: Deployed, function: str, *args: Any, timeout_seconds: float = 60.0) -> AttemptRequest:
    invocation = InvocationInput(
        invocation_id=new_invocation_id(),
        project_name="harness",
        function_name=function,
        version_id=new_version_id(),
        options=FunctionOptions(timeout_seconds=timeout_seconds),
        package=deployed.package,
        requirements_sha256=None,
        args=[codec.encode(value, "argument") for value in args],
        kwargs={},
        created_at=time.time(),
    )
    return AttemptRequest(invocation, attempt_number=1)


def only_task(deployed: Deployed) -> str:
    [task_arn] = deployed.fargate.tasks
    return task_arn


def function_logs(deployed: Deployed, task_arn: str) -> list[str]:
    deployed.fargate.ship_logs(task_arn)
    return list(read_function_logs(LOG_GROUP, LOG_STREAM_PREFIX, task_arn))


async def run_until_running(deployed: Deployed, request: AttemptRequest,
                            session: FakeSession) -> asyncio.Task[AttemptOutcome]:
    task = asyncio.ensure_future(deployed.backend.run_attempt(request, session))
    deadline = time.monotonic() + 60
    while not any("waiting for a stop" in line for t in deployed.fargate.tasks.values() for line in t.output):
        assert not task.done(), task.result()
        assert time.monotonic() < deadline, "the function never started"
        await asyncio.sleep(0.05)
    return task


# ---------------------------------------------------------------------------------------------
# Tests


@pytest.mark.asyncio
async def test_a_result_comes_back_and_the_logs_reach_cloudwatch(
    deployed: Deployed, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = FakeSession()
    request = attempt(deployed, "greet", "fargate")
    outcome = await deployed.backend.run_attempt(request, session)
    assert outcome.outcome == Outcome.SUCCEEDED, outcome
    assert codec.decode(outcome.value) == "hello fargate" and outcome.exit_code == 0
    assert session.started and outcome.started_at is not None
    task_arn = only_task(deployed)
    env = deployed.fargate.environments[task_arn]
    assert env["MULTINODE_FUNCTION"] == "greet" and "fargate" not in env.values()
    assert "hello from the container, fargate" in function_logs(deployed, task_arn)
    # `multinode logs` finds the same stream through the task the worker recorded.
    from multinode.admin.cloudwatch import CloudWatchLogSource
    from multinode.admin.logs import find_log_source, iter_lines

    monkeypatch.setenv("MULTINODE_PACKAGE_STORE", f"s3://{BUCKET}/store")
    source = find_log_source(request.invocation.invocation_id, request.attempt_number)
    assert isinstance(source, CloudWatchLogSource)
    lines = list(iter_lines(source.chunks(follow=False, attempt_ended=lambda: True)))
    assert "hello from the container, fargate" in lines


@pytest.mark.asyncio
async def test_progress_is_heartbeated_while_the_task_runs(deployed: Deployed) -> None:
    session = FakeSession()
    outcome = await deployed.backend.run_attempt(attempt(deployed, "count", 6, 0.4), session)
    assert outcome.outcome == Outcome.SUCCEEDED, outcome
    assert codec.decode(outcome.value) == 6
    seen = {codec.decode(p.value) for p in session.heartbeats if p.has_value}
    assert len(seen - {6}) >= 2  # intermediate yields arrived before the end


@pytest.mark.asyncio
async def test_a_failure_keeps_the_functions_error(deployed: Deployed) -> None:
    outcome = await deployed.backend.run_attempt(attempt(deployed, "explode", "boom"), FakeSession())
    assert outcome.outcome == Outcome.FAILED and outcome.exit_code == 1
    assert outcome.error is not None
    assert (outcome.error.type, outcome.error.message) == ("ValueError", "boom")
    assert outcome.error.traceback is not None and "raise ValueError(message)" in outcome.error.traceback


@pytest.mark.asyncio
async def test_a_cancel_reaches_the_function(deployed: Deployed) -> None:
    session = FakeSession()
    task = await run_until_running(deployed, attempt(deployed, "wait_for_stop", 60), session)
    task.cancel()  # how the Temporal activity learns of a cancel
    outcome = await task
    assert outcome.outcome == Outcome.CANCELLED, outcome
    assert deployed.fargate.stops == ["multinode: cancel"]
    assert "saw InvocationCancelledError" in function_logs(deployed, only_task(deployed))


@pytest.mark.asyncio
async def test_a_timeout_stops_the_task(deployed: Deployed) -> None:
    outcome = await deployed.backend.run_attempt(
        attempt(deployed, "wait_for_stop", 60, timeout_seconds=3), FakeSession())
    assert outcome.outcome == Outcome.TIMED_OUT, outcome
    assert outcome.error is not None and outcome.error.type == "InvocationTimedOutError"
    assert deployed.fargate.stops == ["multinode: timeout"]
    assert "saw InvocationTimedOutError" in function_logs(deployed, only_task(deployed))


@pytest.mark.asyncio
async def test_a_package_that_does_not_match_its_hash_is_never_unpacked(deployed: Deployed) -> None:
    request = attempt(deployed, "greet", "x")
    wrong = PackageRef(deployed.package.uri, "0" * 64, deployed.package.size_bytes)
    request = AttemptRequest(replace(request.invocation, package=wrong), request.attempt_number)
    outcome = await deployed.backend.run_attempt(request, FakeSession())
    assert outcome.outcome == Outcome.FAILED
    assert outcome.error is not None and outcome.error.type == "PackageIntegrityError"
    home = Path(deployed.fargate.environments[only_task(deployed)]["HOME"])
    assert not (home / ".multinode" / "code").exists()
