"""The Fargate backend's state machine against a scripted ECS, and its AWS calls against moto."""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from multinode.admin.cloudwatch import read_function_logs, stream_name
from multinode.contract.connection import ConnectionSettings
from multinode.contract.options import FunctionOptions
from multinode.contract.records import (
    AttemptOutcome,
    AttemptProgress,
    AttemptRequest,
    InvocationInput,
    Outcome,
    PackageRef,
)
from multinode.errors import InvalidOptionError, OverridesTooLargeError, PackageNotFoundError
from multinode.runtime.fargate_run import ENV_RUN_TOKEN, ENV_RUN_URI, OUTCOME_NAME, PROGRESS_NAME, RunLocation
from multinode.runtime.object_store import ObjectStore
from multinode.storage.package import sha256_hex
from multinode.storage.s3 import S3PackageStore
from temporal_workers.backends import InfrastructureError
from temporal_workers.backends.fargate.backend import FargateBackend
from temporal_workers.backends.fargate.config import FargateConfig, Timings, load_fargate_config
from temporal_workers.backends.fargate.ecs import EcsApi
from temporal_workers.backends.fargate.request import (
    MAX_OVERRIDES_CHARS,
    client_token,
    container_environment,
    run_task_params,
    task_overrides,
)
from temporal_workers.settings import WorkerSettings

pytestmark = pytest.mark.timeout(60)

REGION = "us-east-1"
BUCKET = "multinode-packages"
TASK_ARN = "arn:aws:ecs:us-east-1:123456789012:task/multinode/0123456789abcdef"
CAPACITY = "Capacity is unavailable at this time. Please try again later or in a different availability zone"
FAST = Timings(
    describe_interval=0.01, progress_interval=0.01, tick=0.01,
    launch_delays=(0.01, 0.01, 0.01), visibility_grace=0.3, start_timeout=5.0, timeout_margin=0.0,
)
CONFIG = FargateConfig(
    cluster="multinode", task_definition="multinode-function", subnets=("subnet-a", "subnet-b"),
    security_groups=("sg-1",), assign_public_ip="DISABLED",
    package_store=f"s3://{BUCKET}/store", log_group="/multinode/functions",
)


# ---------------------------------------------------------------------------------------------
# Fakes


class MemoryStore(ObjectStore):
    """S3 as a dict, with etags that change on every put."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}
        self.puts = 0

    def put_json(self, bucket: str, key: str, document: Any) -> None:
        self.puts += 1
        self.objects[(bucket, key)] = (f'"{self.puts}"', json.loads(json.dumps(document)))

    def get_json_if_changed(self, bucket: str, key: str, etag: str | None) -> tuple[str, dict[str, Any]] | None:
        found = self.objects.get((bucket, key))
        if found is None or found[0] == etag:
            return None
        return found


@dataclass
class Script:
    """One task's life: what describe_tasks shows, call after call, and what its container
    writes. A stop request ends it as `on_stop` says."""

    states: list[str | None] = field(default_factory=lambda: [None, "PENDING", "RUNNING", "RUNNING"])
    stopped: dict[str, Any] = field(default_factory=lambda: {
        "stopCode": "EssentialContainerExited", "containers": [{"name": "function", "exitCode": 0}]
    })
    outcome: dict[str, Any] | None = None
    progress: str | None = None
    on_stop: dict[str, Any] | None = None  # None: a stop request does not end the task
    runs_forever: bool = False


def client_error(code: str, status: int = 400) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "RunTask",
    )


class ScriptedEcs(EcsApi):
    def __init__(self, store: MemoryStore, script: Script, launches: list[Any] | None = None) -> None:
        self.store = store
        self.script = script
        self.launches = list(launches or [])
        self.run_params: list[dict[str, Any]] = []
        self.stops: list[str] = []
        self.describes = 0
        self.stop_failures = 0
        self.environment: dict[str, str] = {}

    def run_task(self, params: Any) -> dict[str, Any]:
        self.run_params.append(copy.deepcopy(dict(params)))
        if self.launches:
            scripted = self.launches.pop(0)
            if isinstance(scripted, Exception):
                raise scripted
            return dict(scripted)
        [override] = params["overrides"]["containerOverrides"]
        self.environment = {e["name"]: e["value"] for e in override["environment"]}
        return {"tasks": [{"taskArn": TASK_ARN, "lastStatus": "PROVISIONING"}], "failures": []}

    def _write(self, name: str, document: dict[str, Any]) -> None:
        location = RunLocation.from_uri(self.environment[ENV_RUN_URI])
        stamped = {"token": self.environment[ENV_RUN_TOKEN], **document}
        self.store.put_json(location.bucket, location.key(name), stamped)

    def describe_task(self, cluster: str, task_arn: str) -> dict[str, Any] | None:
        assert (cluster, task_arn) == (CONFIG.cluster, TASK_ARN)
        script = self.script
        if self.stops and script.on_stop is not None:
            return self._stopped(script.on_stop)
        index = self.describes
        self.describes += 1
        if index < len(script.states) or script.runs_forever:
            status = script.states[min(index, len(script.states) - 1)]
            if status == "RUNNING" and script.progress is not None:
                self._write(PROGRESS_NAME, {"value": script.progress})
            return None if status is None else {"taskArn": TASK_ARN, "lastStatus": status,
                                                "containers": [{"name": "function"}]}
        return self._stopped(script.stopped)

    def _stopped(self, stopped: dict[str, Any]) -> dict[str, Any]:
        if self.script.outcome is not None:
            self._write(OUTCOME_NAME, self.script.outcome)
        return {"taskArn": TASK_ARN, "lastStatus": "STOPPED", "stoppedReason": "", **stopped}

    def stop_task(self, cluster: str, task_arn: str, reason: str) -> None:
        if self.stop_failures:
            self.stop_failures -= 1
            raise client_error("ThrottlingException")
        self.stops.append(reason)


class FakeSession:
    def __init__(self, reason: str = "cancel") -> None:
        self.reason = reason
        self.heartbeats: list[AttemptProgress] = []
        self.started: list[float] = []

    def heartbeat(self, progress: AttemptProgress) -> None:
        self.heartbeats.append(progress)

    async def notify_started(self, started_at: float) -> None:
        self.started.append(started_at)

    def interruption(self) -> str:
        return self.reason


def settings(tmp_path: Path, api_key: str | None = None, namespace: str = "default") -> WorkerSettings:
    connection = ConnectionSettings("127.0.0.1:7233", api_key, namespace, "multinode", "environment")
    return WorkerSettings(connection=connection, home=tmp_path, backend="fargate", grace_period_seconds=120)


def request(options: FunctionOptions | None = None, args: list[str] | None = None) -> AttemptRequest:
    invocation = InvocationInput(
        invocation_id="inv-0000000000abcdefghjkmnpqrs",
        project_name="proj",
        function_name="work",
        version_id="ver-0000000000abcdefghjkmnpqrs",
        options=options or FunctionOptions(memory_mib=512),
        package=PackageRef(f"s3://{BUCKET}/store/packages/{'a' * 64}.tar.gz", "a" * 64, 10),
        requirements_sha256=None,
        args=args if args is not None else ['"hello"'],
        kwargs={"n": "3"},
        created_at=time.time(),
    )
    return AttemptRequest(invocation, attempt_number=2)


@dataclass
class Harness:
    backend: FargateBackend
    ecs: ScriptedEcs
    store: MemoryStore
    session: FakeSession


def harness(tmp_path: Path, script: Script, launches: list[Any] | None = None,
            session: FakeSession | None = None, api_key: str | None = None,
            namespace: str = "default") -> Harness:
    store = MemoryStore()
    ecs = ScriptedEcs(store, script, launches)
    backend = FargateBackend(settings(tmp_path, api_key, namespace), CONFIG, ecs, store, FAST)
    return Harness(backend, ecs, store, session or FakeSession())


def run(h: Harness, req: AttemptRequest | None = None) -> AttemptOutcome:
    return asyncio.run(h.backend.run_attempt(req or request(), h.session))


# ---------------------------------------------------------------------------------------------
# Outcomes


def test_success_returns_the_result_and_reports_running(tmp_path: Path) -> None:
    h = harness(tmp_path, Script(outcome={"result": '"done"', "has_result": True}, progress='"half"'))
    outcome = run(h)
    assert outcome.outcome == Outcome.SUCCEEDED
    assert (outcome.value, outcome.has_value, outcome.exit_code) == ('"done"', True, 0)
    assert outcome.started_at is not None and h.session.started
    phases = [p.phase for p in h.session.heartbeats]
    assert phases[0] == "preparing" and "running" in phases
    assert any(p.value == '"half"' and p.has_value for p in h.session.heartbeats)
    # The arguments went to S3, exactly as the local backend writes its input file.
    key = (BUCKET, "store/runs/inv-0000000000abcdefghjkmnpqrs/2/input.json")
    assert h.store.objects[key][1] == {"args": ['"hello"'], "kwargs": {"n": "3"}}


def test_a_user_failure_keeps_the_error(tmp_path: Path) -> None:
    error = {"type": "ValueError", "message": "bad input", "traceback": "Traceback ..."}
    script = Script(
        outcome={"error": error, "exit_code": 1},
        stopped={"stopCode": "EssentialContainerExited", "containers": [{"name": "function", "exitCode": 1}]},
    )
    outcome = run(harness(tmp_path, script))
    assert outcome.outcome == Outcome.FAILED and outcome.exit_code == 1
    assert outcome.error is not None
    assert (outcome.error.type, outcome.error.message) == ("ValueError", "bad input")


def test_out_of_memory_is_reported_as_the_memory_limit(tmp_path: Path) -> None:
    container = {"name": "function", "exitCode": 137, "reason": "OutOfMemoryError: Container killed due to memory usage"}
    script = Script(outcome={"exit_code": 137}, stopped={"stopCode": "EssentialContainerExited", "containers": [container]})
    outcome = run(harness(tmp_path, script))
    assert outcome.outcome == Outcome.FAILED and outcome.exit_code == 137
    assert outcome.error is not None and outcome.error.type == "MemoryLimitExceeded"
    assert outcome.error.message == "killed: memory limit of 512 MiB exceeded"


def test_a_kill_without_oom_is_a_killed_process(tmp_path: Path) -> None:
    script = Script(stopped={"stopCode": "EssentialContainerExited", "containers": [{"name": "function", "exitCode": 137}]})
    outcome = run(harness(tmp_path, script))
    assert outcome.error is not None
    assert (outcome.error.type, outcome.error.message) == ("ProcessKilled", "exit code 137 (killed by SIGKILL)")


def test_a_spot_interruption_is_retried_by_the_engine(tmp_path: Path) -> None:
    error = {"type": "InvocationCancelledError", "message": "the invocation was cancelled"}
    script = Script(outcome={"error": error},
                    stopped={"stopCode": "SpotInterruption", "containers": [{"name": "function", "exitCode": 143}]})
    with pytest.raises(InfrastructureError, match="SpotInterruption"):
        run(harness(tmp_path, script))


def test_a_task_that_failed_to_start_is_retried_by_the_engine(tmp_path: Path) -> None:
    script = Script(states=["PROVISIONING", "PENDING"], stopped={
        "stopCode": "TaskFailedToStart", "stoppedReason": "CannotPullContainerError: pull access denied",
        "containers": [{"name": "function"}],
    })
    h = harness(tmp_path, script)
    with pytest.raises(InfrastructureError, match="CannotPullContainerError"):
        run(h)
    assert h.session.started == []


def test_an_outcome_from_an_earlier_run_is_ignored(tmp_path: Path) -> None:
    h = harness(tmp_path, Script())
    location = RunLocation.for_attempt(CONFIG.package_store, request().invocation.invocation_id, 2)
    h.store.put_json(BUCKET, location.key(OUTCOME_NAME), {"token": "an-older-run", "result": "1", "has_result": True})
    outcome = run(h)
    assert outcome.outcome == Outcome.FAILED
    assert outcome.error is not None and outcome.error.type == "ProcessExited"


def test_a_task_missing_long_after_launch_has_disappeared(tmp_path: Path) -> None:
    outcome = run(harness(tmp_path, Script(states=[None], runs_forever=True)))
    assert outcome.outcome == Outcome.FAILED
    assert outcome.error is not None and outcome.error.message == "the task disappeared"


# ---------------------------------------------------------------------------------------------
# Launching


def test_capacity_failures_are_retried_with_a_fresh_token(tmp_path: Path) -> None:
    failure = {"tasks": [], "failures": [{"arn": "", "reason": CAPACITY}]}
    h = harness(tmp_path, Script(outcome={"result": "1", "has_result": True}), launches=[failure])
    assert run(h).outcome == Outcome.SUCCEEDED
    tokens = [p["clientToken"] for p in h.ecs.run_params]
    assert tokens == ["inv-0000000000abcdefghjkmnpqrs-a2-e1-l1", "inv-0000000000abcdefghjkmnpqrs-a2-e1-l2"]


def test_throttling_is_retried_with_the_same_token(tmp_path: Path) -> None:
    launches: list[Any] = [client_error("ThrottlingException"), client_error("ServerException", 500)]
    h = harness(tmp_path, Script(outcome={"result": "1", "has_result": True}), launches=launches)
    assert run(h).outcome == Outcome.SUCCEEDED
    tokens = {p["clientToken"] for p in h.ecs.run_params}
    assert len(h.ecs.run_params) == 3 and len(tokens) == 1
    assert all(len(token) <= 64 for token in tokens)


def test_capacity_that_never_comes_is_an_infrastructure_error(tmp_path: Path) -> None:
    failure = {"tasks": [], "failures": [{"reason": CAPACITY}]}
    h = harness(tmp_path, Script(), launches=[failure] * 10)
    with pytest.raises(InfrastructureError, match="Capacity is unavailable"):
        run(h)
    assert len(h.ecs.run_params) == len(FAST.launch_delays) + 1


def test_other_launch_failures_are_not_retried(tmp_path: Path) -> None:
    h = harness(tmp_path, Script(), launches=[client_error("ClientException")])
    with pytest.raises(InfrastructureError, match="refused"):
        run(h)
    assert len(h.ecs.run_params) == 1


def test_the_run_task_request(tmp_path: Path) -> None:
    h = harness(tmp_path, Script(outcome={"result": "1", "has_result": True}))
    run(h, request(FunctionOptions(cpu=1, memory_mib=9 * 1024), args=['"secret-argument"']))
    [params] = h.ecs.run_params
    assert params["launchType"] == "FARGATE" and params["taskDefinition"] == CONFIG.task_definition
    assert params["networkConfiguration"]["awsvpcConfiguration"] == {
        "subnets": ["subnet-a", "subnet-b"], "securityGroups": ["sg-1"], "assignPublicIp": "DISABLED"
    }
    overrides = params["overrides"]
    assert (overrides["cpu"], overrides["memory"]) == ("2048", "9216")  # the smallest size that fits
    [container] = overrides["containerOverrides"]
    env = {e["name"]: e["value"] for e in container["environment"]}
    assert container["name"] == "function"
    assert env["MULTINODE_INVOCATION_ID"] == "inv-0000000000abcdefghjkmnpqrs"
    assert env["MULTINODE_ATTEMPT"] == "2" and env["MULTINODE_FUNCTION"] == "work"
    assert env["MULTINODE_PACKAGE_SHA256"] == "a" * 64
    assert env["MULTINODE_GRACE_PERIOD_SECONDS"] == "110.0"
    assert "MULTINODE_API_KEY" not in env
    assert "secret-argument" not in json.dumps(overrides)
    assert params["startedBy"] == "inv-0000000000abcdefghjkmnpqrs"
    assert {"key": "multinode:invocation-id", "value": "inv-0000000000abcdefghjkmnpqrs"} in params["tags"]


def test_overrides_over_the_limit_fail_the_attempt_before_launch(tmp_path: Path) -> None:
    h = harness(tmp_path, Script(), namespace="n" * MAX_OVERRIDES_CHARS)
    outcome = run(h)
    assert outcome.outcome == Outcome.FAILED and h.ecs.run_params == []
    assert outcome.error is not None and outcome.error.type == "OverridesTooLargeError"
    assert "8192" in outcome.error.message
    with pytest.raises(OverridesTooLargeError):
        task_overrides(request(), {"MULTINODE_API_KEY": "k" * MAX_OVERRIDES_CHARS})
    assert task_overrides(request(), {"MULTINODE_API_KEY": "k" * 7000})["cpu"] == "256"


def test_the_api_key_never_travels_in_overrides(tmp_path: Path) -> None:
    h = harness(tmp_path, Script(outcome={"result": '"done"', "has_result": True}), api_key="secret-key-123")
    assert run(h).outcome == Outcome.SUCCEEDED
    assert h.ecs.run_params and "secret-key-123" not in repr(h.ecs.run_params)


def test_client_tokens_are_bounded_and_stable() -> None:
    assert client_token("inv-x", 1, 1, 1) == client_token("inv-x", 1, 1, 1)
    long_token = client_token("inv-" + "y" * 80, 3, 2, 1)
    assert len(long_token) == 64 and long_token == client_token("inv-" + "y" * 80, 3, 2, 1)
    assert long_token != client_token("inv-" + "y" * 80, 3, 2, 2)


# ---------------------------------------------------------------------------------------------
# Interruptions


async def _run_until_started(h: Harness) -> asyncio.Task[AttemptOutcome]:
    task = asyncio.ensure_future(h.backend.run_attempt(request(), h.session))
    deadline = time.monotonic() + 10
    while not h.session.started:
        assert time.monotonic() < deadline, "the attempt never started"
        await asyncio.sleep(0.01)
    return task


@pytest.mark.asyncio
async def test_cancel_stops_the_task_with_its_reason(tmp_path: Path) -> None:
    error = {"type": "InvocationCancelledError", "message": "the invocation was cancelled"}
    stopped = {"stopCode": "UserInitiated", "containers": [{"name": "function", "exitCode": 1}]}
    h = harness(tmp_path, Script(runs_forever=True, on_stop=stopped, outcome={"error": error}, progress='"p"'))
    h.ecs.stop_failures = 2  # a throttled StopTask is asked again
    task = await _run_until_started(h)
    task.cancel()
    outcome = await task
    assert h.ecs.stops == ["multinode: cancel"]
    assert outcome.outcome == Outcome.CANCELLED and outcome.error is None
    assert (outcome.value, outcome.has_value) == ('"p"', True)


@pytest.mark.asyncio
async def test_the_timeout_stops_the_task(tmp_path: Path) -> None:
    stopped = {"stopCode": "UserInitiated", "containers": [{"name": "function", "exitCode": 1}]}
    h = harness(tmp_path, Script(runs_forever=True, on_stop=stopped))
    outcome = await h.backend.run_attempt(request(FunctionOptions(timeout_seconds=0.2)), h.session)
    assert h.ecs.stops == ["multinode: timeout"]
    assert outcome.outcome == Outcome.TIMED_OUT
    assert outcome.error is not None and outcome.error.type == "InvocationTimedOutError"


@pytest.mark.asyncio
async def test_engine_shutdown_stops_the_task_and_hands_it_back(tmp_path: Path) -> None:
    h = harness(tmp_path, Script(runs_forever=True), session=FakeSession("shutdown"))
    task = await _run_until_started(h)
    task.cancel()
    with pytest.raises(InfrastructureError, match="shutdown"):
        await task
    assert h.ecs.stops == ["multinode: engine interruption (shutdown)"]


@pytest.mark.asyncio
async def test_close_stops_running_tasks(tmp_path: Path) -> None:
    h = harness(tmp_path, Script(runs_forever=True), session=FakeSession("shutdown"))
    task = await _run_until_started(h)
    await h.backend.close()
    assert h.ecs.stops == ["multinode: worker stopping"]
    task.cancel()
    with pytest.raises(InfrastructureError):
        await task


# ---------------------------------------------------------------------------------------------
# Configuration


def test_from_environment_names_every_missing_variable(tmp_path: Path) -> None:
    with pytest.raises(InvalidOptionError) as caught:
        FargateBackend.from_environment(settings(tmp_path), {"MULTINODE_FARGATE_CLUSTER": "c"})
    message = str(caught.value)
    for name in ("MULTINODE_FARGATE_TASK_DEFINITION", "MULTINODE_FARGATE_SUBNETS",
                 "MULTINODE_FARGATE_SECURITY_GROUPS", "MULTINODE_PACKAGE_STORE",
                 "MULTINODE_FUNCTION_LOG_GROUP"):
        assert name in message
    assert "MULTINODE_FARGATE_CLUSTER" not in message


def test_from_environment_reads_the_stack_outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    environ = {
        "MULTINODE_FARGATE_CLUSTER": "c", "MULTINODE_FARGATE_TASK_DEFINITION": "arn:td",
        "MULTINODE_FARGATE_SUBNETS": "subnet-1, subnet-2", "MULTINODE_FARGATE_SECURITY_GROUPS": "sg-1",
        "MULTINODE_FARGATE_ASSIGN_PUBLIC_IP": "enabled", "MULTINODE_PACKAGE_STORE": "s3://b/packages",
        "MULTINODE_FUNCTION_LOG_GROUP": "/g", "AWS_ENDPOINT_URL": "http://127.0.0.1:1",
    }
    backend = FargateBackend.from_environment(settings(tmp_path), environ)
    assert backend.config == FargateConfig("c", "arn:td", ("subnet-1", "subnet-2"), ("sg-1",), "ENABLED",
                                           "s3://b/packages", "/g", "http://127.0.0.1:1")
    with pytest.raises(InvalidOptionError, match="s3://"):
        load_fargate_config({**environ, "MULTINODE_PACKAGE_STORE": "/var/packages"})


# ---------------------------------------------------------------------------------------------
# The real boto3 calls, against moto


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        yield


def _moto_network() -> tuple[str, str]:
    ec2 = boto3.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="tasks", Description="tasks", VpcId=vpc)["GroupId"]
    return subnet, group


def test_ecs_calls_are_well_formed(aws: None, tmp_path: Path) -> None:
    subnet, group = _moto_network()
    ecs = boto3.client("ecs")
    ecs.create_cluster(clusterName="multinode")
    definition = ecs.register_task_definition(
        family="multinode-function", requiresCompatibilities=["FARGATE"], networkMode="awsvpc",
        cpu="256", memory="512",
        containerDefinitions=[{"name": "function", "image": "function:latest", "memoryReservation": 128,
                               "stopTimeout": 120}],
    )["taskDefinition"]["taskDefinitionArn"]
    config = FargateConfig("multinode", definition, (subnet,), (group,), "DISABLED",
                           f"s3://{BUCKET}/store", "/g")
    req = request()
    location = RunLocation.for_attempt(config.package_store, req.invocation.invocation_id, 2)
    env = container_environment(req, settings(tmp_path), location, "token")
    params = {**run_task_params(req, config, task_overrides(req, env)), "clientToken": "token"}
    api = EcsApi.connect()
    response = api.run_task(params)
    [task] = response["tasks"]
    described = api.describe_task("multinode", task["taskArn"])
    assert described is not None and described["taskArn"] == task["taskArn"]
    api.stop_task("multinode", task["taskArn"], "multinode: cancel")
    stopped = api.describe_task("multinode", task["taskArn"])
    assert stopped is not None and stopped["stoppedReason"] == "multinode: cancel"
    assert api.describe_task("multinode", task["taskArn"].replace(task["taskArn"][-6:], "ffffff")) is None


def test_object_store_reads_only_what_changed(aws: None) -> None:
    store = ObjectStore.connect()
    assert store.get_json(BUCKET, "runs/x/progress.json") is None
    store.put_json(BUCKET, "runs/x/progress.json", {"value": 1})
    first = store.get_json_if_changed(BUCKET, "runs/x/progress.json", None)
    assert first is not None and first[1] == {"value": 1}
    assert store.get_json_if_changed(BUCKET, "runs/x/progress.json", first[0]) is None
    store.put_json(BUCKET, "runs/x/progress.json", {"value": 2})
    second = store.get_json_if_changed(BUCKET, "runs/x/progress.json", first[0])
    assert second is not None and second[1] == {"value": 2}


def test_s3_package_store_round_trip(aws: None) -> None:
    store = S3PackageStore(f"s3://{BUCKET}/store/")
    data = b"package bytes"
    uri = store.put(data, sha256_hex(data))
    assert uri == f"s3://{BUCKET}/store/packages/{sha256_hex(data)}.tar.gz"
    assert store.put(data, sha256_hex(data)) == uri
    assert S3PackageStore(uri).get(uri) == data
    with pytest.raises(PackageNotFoundError):
        store.get(f"s3://{BUCKET}/store/packages/{'0' * 64}.tar.gz")
    with pytest.raises(InvalidOptionError):
        store.put(data, "not-a-digest")


def test_function_logs_are_read_page_by_page(aws: None) -> None:
    logs = boto3.client("logs")
    logs.create_log_group(logGroupName="/g")
    assert list(read_function_logs("/g", "multinode", TASK_ARN)) == []  # nothing logged yet
    stream = stream_name("multinode", TASK_ARN)
    assert stream == "multinode/function/0123456789abcdef"
    logs.create_log_stream(logGroupName="/g", logStreamName=stream)
    now = int(time.time() * 1000)
    events = [{"timestamp": now + i, "message": f"line {i}"} for i in range(25)]
    logs.put_log_events(logGroupName="/g", logStreamName=stream, logEvents=events)
    assert list(read_function_logs("/g", "multinode", TASK_ARN)) == [f"line {i}" for i in range(25)]
