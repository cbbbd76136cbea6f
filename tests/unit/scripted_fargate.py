"""The Fargate backend driven against a script: a scripted ECS and S3 as a dict behind a real
`FargateBackend`, with fast timings. `harness()` builds one; `run()` runs an attempt to its outcome."""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from multinode.contract.connection import ConnectionSettings
from multinode.contract.options import FunctionOptions
from multinode.contract.records import AttemptOutcome, AttemptRequest, InvocationInput, PackageRef
from multinode.runtime.fargate_run import ENV_RUN_TOKEN, ENV_RUN_URI, OUTCOME_NAME, PROGRESS_NAME, RunLocation
from multinode.runtime.object_store import ObjectStore
from temporal_workers.backends.fargate.backend import FargateBackend
from temporal_workers.backends.fargate.config import FargateConfig, Timings
from temporal_workers.backends.fargate.ecs import EcsApi
from temporal_workers.settings import WorkerSettings
from tests.fargate_doubles import FakeSession

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


def client_error(code: str, status: int = 400, message: str | None = None) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": message or code}, "ResponseMetadata": {"HTTPStatusCode": status}},
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
        # What live_tasks answers, lookup after lookup: the tasks a lost run left alive.
        self.leftovers: list[list[str]] = []
        self.live_lookups = 0

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

    def live_tasks(self, cluster: str, started_by: str) -> list[str]:
        self.live_lookups += 1
        return self.leftovers.pop(0) if self.leftovers else []

    def describe_tasks(self, cluster: str, task_arns: Sequence[str]) -> dict[str, Any]:
        found = {arn: self.describe_task(cluster, arn) for arn in task_arns}
        return {arn: task for arn, task in found.items() if task is not None}

    def _stopped(self, stopped: dict[str, Any]) -> dict[str, Any]:
        if self.script.outcome is not None:
            self._write(OUTCOME_NAME, self.script.outcome)
        return {"taskArn": TASK_ARN, "lastStatus": "STOPPED", "stoppedReason": "", **stopped}

    def stop_task(self, cluster: str, task_arn: str, reason: str) -> None:
        if self.stop_failures:
            self.stop_failures -= 1
            raise client_error("ThrottlingException")
        self.stops.append(reason)


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
