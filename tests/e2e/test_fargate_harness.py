"""The Fargate path end to end without AWS: a moto server plays S3, ECS and CloudWatch Logs,
and a harness plays Fargate itself. When the backend runs a task, the harness starts the
function image's entrypoint (`python -m multinode.runtime.fargate_container`) as a local process with
the environment the task definition and the overrides give it; StopTask becomes SIGTERM, then
SIGKILL after the stop timeout; describe_tasks reports the process's real state and exit code.

The backend is driven directly, with a fake session standing in for the Temporal activity.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest

from multinode.admin.cloudwatch import read_function_logs, stream_name
from multinode.contract import codec
from multinode.contract.connection import ConnectionSettings
from multinode.contract.ids import new_invocation_id, new_version_id
from multinode.contract.options import FunctionOptions
from multinode.contract.records import (
    AttemptOutcome,
    AttemptProgress,
    AttemptRequest,
    InvocationInput,
    Outcome,
    PackageRef,
)
from multinode.storage.package import build_package, sha256_hex
from multinode.storage.s3 import S3PackageStore
from temporal_workers.backends.fargate.backend import FargateBackend
from temporal_workers.backends.fargate.config import LOG_STREAM_PREFIX, Timings, load_fargate_config
from temporal_workers.backends.fargate.ecs import EcsApi
from temporal_workers.settings import WorkerSettings

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

REPO = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
BUCKET = "multinode-harness"
CLUSTER = "multinode"
LOG_GROUP = "/multinode/test/functions"
# Fargate's is 120 s; the container's own grace (2 s here) must end well inside it.
STOP_TIMEOUT_SECONDS = 15.0
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


# ---------------------------------------------------------------------------------------------
# moto server and the AWS resources the stack would create


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for_server(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto_server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/moto-api/", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("moto_server did not become ready")


@pytest.fixture(scope="module")
def moto_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = _free_port()
    with open(tmp_path_factory.mktemp("moto") / "moto.log", "wb") as log:
        server = subprocess.Popen(
            [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
            stdout=log, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    credentials = {
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION, "AWS_ENDPOINT_URL": url,
    }
    saved = {name: os.environ.get(name) for name in credentials}
    os.environ.update(credentials)
    try:
        _wait_for_server(url, server)
        yield url
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()


@dataclass(frozen=True)
class Stack:
    environ: dict[str, str]


@pytest.fixture(scope="module")
def stack(moto_url: str) -> Stack:
    """What deploy/cloudformation/multinode.yaml creates, made directly in moto."""
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    ec2 = boto3.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="tasks", Description="tasks", VpcId=vpc)["GroupId"]
    ecs = boto3.client("ecs")
    ecs.create_cluster(clusterName=CLUSTER)
    definition = ecs.register_task_definition(
        family="multinode-function", requiresCompatibilities=["FARGATE"], networkMode="awsvpc",
        cpu="256", memory="512",
        containerDefinitions=[{
            "name": "function", "image": "multinode-function:test", "essential": True,
            "stopTimeout": 120, "memoryReservation": 128,
            "environment": [{"name": "LANG", "value": "C.UTF-8"}],
            "logConfiguration": {"logDriver": "awslogs", "options": {
                "awslogs-group": LOG_GROUP, "awslogs-region": REGION,
                "awslogs-stream-prefix": LOG_STREAM_PREFIX,
            }},
        }],
    )["taskDefinition"]["taskDefinitionArn"]
    boto3.client("logs").create_log_group(logGroupName=LOG_GROUP)
    return Stack({
        "MULTINODE_FARGATE_CLUSTER": CLUSTER,
        "MULTINODE_FARGATE_TASK_DEFINITION": definition,
        "MULTINODE_FARGATE_SUBNETS": subnet,
        "MULTINODE_FARGATE_SECURITY_GROUPS": group,
        "MULTINODE_FARGATE_ASSIGN_PUBLIC_IP": "DISABLED",
        "MULTINODE_PACKAGE_STORE": f"s3://{BUCKET}/store",
        "MULTINODE_FUNCTION_LOG_GROUP": LOG_GROUP,
        "AWS_ENDPOINT_URL": moto_url,
    })


# ---------------------------------------------------------------------------------------------
# The harness: Fargate, played by local processes


@dataclass
class LocalTask:
    process: subprocess.Popen[bytes]
    started_at: datetime
    output: list[str] = field(default_factory=list)
    reader: threading.Thread | None = None
    stop_reason: str | None = None
    killer: threading.Timer | None = None


class LocalFargate(EcsApi):
    """moto validates and records the ECS calls; the tasks themselves run here."""

    def __init__(self, inner: EcsApi, root: Path) -> None:
        self.inner = inner
        self.root = root
        self.tasks: dict[str, LocalTask] = {}
        self.environments: dict[str, dict[str, str]] = {}
        self.stops: list[str] = []

    def run_task(self, params: Mapping[str, Any]) -> dict[str, Any]:
        response = self.inner.run_task(params)
        for task in response.get("tasks", []):
            self._start(task["taskArn"], params)
        return response

    def _environment(self, task_arn: str, params: Mapping[str, Any]) -> dict[str, str]:
        definition = boto3.client("ecs").describe_task_definition(
            taskDefinition=params["taskDefinition"])["taskDefinition"]
        [container] = [c for c in definition["containerDefinitions"] if c["name"] == "function"]
        [override] = [c for c in params["overrides"]["containerOverrides"] if c["name"] == "function"]
        home = self.root / task_arn.rsplit("/", 1)[-1]  # each task gets a fresh filesystem
        home.mkdir(parents=True)
        env = {
            # What the image and the task role's credentials provide.
            "PATH": os.environ["PATH"], "HOME": str(home),
            "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION,
            "AWS_ENDPOINT_URL": os.environ["AWS_ENDPOINT_URL"],
        }
        env.update({e["name"]: e["value"] for e in container.get("environment", [])})
        env.update({e["name"]: e["value"] for e in override.get("environment", [])})
        return env

    def _start(self, task_arn: str, params: Mapping[str, Any]) -> None:
        env = self._environment(task_arn, params)
        self.environments[task_arn] = env
        process = subprocess.Popen(
            [sys.executable, "-m", "multinode.runtime.fargate_container"],
            env=env, cwd=env["HOME"], stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        task = LocalTask(process, datetime.now(UTC))
        task.reader = threading.Thread(target=self._capture, args=(task,), daemon=True)
        task.reader.start()
        self.tasks[task_arn] = task

    @staticmethod
    def _capture(task: LocalTask) -> None:
        assert task.process.stdout is not None
        for line in task.process.stdout:
            task.output.append(line.decode(errors="replace").rstrip("\n"))

    def describe_task(self, cluster: str, task_arn: str) -> dict[str, Any] | None:
        task = self.tasks.get(task_arn)
        if task is None:
            return self.inner.describe_task(cluster, task_arn)
        code = task.process.poll()
        if code is None:
            status = "RUNNING" if task.stop_reason is None else "DEACTIVATING"
            return {"taskArn": task_arn, "lastStatus": status, "startedAt": task.started_at,
                    "containers": [{"name": "function", "lastStatus": "RUNNING"}]}
        if task.killer is not None:
            task.killer.cancel()
        return {
            "taskArn": task_arn, "lastStatus": "STOPPED", "startedAt": task.started_at,
            "stopCode": "UserInitiated" if task.stop_reason else "EssentialContainerExited",
            "stoppedReason": task.stop_reason or "Essential container in task exited",
            # Docker reports death by signal N as 128 + N.
            "containers": [{"name": "function", "lastStatus": "STOPPED",
                            "exitCode": code if code >= 0 else 128 - code}],
        }

    def stop_task(self, cluster: str, task_arn: str, reason: str) -> None:
        self.inner.stop_task(cluster, task_arn, reason)
        self.stops.append(reason)
        task = self.tasks[task_arn]
        if task.stop_reason is not None or task.process.poll() is not None:
            return
        task.stop_reason = reason
        task.process.send_signal(signal.SIGTERM)
        task.killer = threading.Timer(STOP_TIMEOUT_SECONDS, task.process.kill)
        task.killer.start()

    def ship_logs(self, task_arn: str) -> None:
        """Put the task's output where the awslogs driver would: group, prefix/function/id."""
        task = self.tasks[task_arn]
        task.process.wait(timeout=30)
        assert task.reader is not None
        task.reader.join(timeout=10)
        logs = boto3.client("logs")
        stream = stream_name(LOG_STREAM_PREFIX, task_arn)
        logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=stream)
        now = int(time.time() * 1000)
        events = [{"timestamp": now, "message": line} for line in task.output if line]
        if events:
            logs.put_log_events(logGroupName=LOG_GROUP, logStreamName=stream, logEvents=events)

    def close(self) -> None:
        for task in self.tasks.values():
            if task.process.poll() is None:
                task.process.kill()
                task.process.wait(timeout=10)
            if task.killer is not None:
                task.killer.cancel()


class FakeSession:
    def __init__(self) -> None:
        self.heartbeats: list[AttemptProgress] = []
        self.started: list[float] = []

    def heartbeat(self, progress: AttemptProgress) -> None:
        self.heartbeats.append(progress)

    async def notify_started(self, started_at: float) -> None:
        self.started.append(started_at)

    def interruption(self) -> str:
        return "cancel"


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
