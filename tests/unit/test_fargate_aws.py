"""The Fargate path's real boto3 calls (ECS, the run's objects in S3, the package store, CloudWatch
Logs) against moto."""

from __future__ import annotations

import time
from pathlib import Path

import boto3
import pytest

from multinode.admin.cloudwatch import read_function_logs, stream_name
from multinode.errors import InvalidOptionError, PackageNotFoundError
from multinode.runtime.fargate_run import RunLocation
from multinode.runtime.object_store import ObjectStore
from multinode.storage.package import sha256_hex
from multinode.storage.s3 import S3PackageStore
from temporal_workers.backends.fargate.config import FargateConfig
from temporal_workers.backends.fargate.ecs import EcsApi
from temporal_workers.backends.fargate.request import container_environment, run_task_params, task_overrides
from tests.fargate_doubles import moto_network
from tests.unit.scripted_fargate import BUCKET, TASK_ARN, request, settings

pytestmark = pytest.mark.timeout(60)


def test_ecs_calls_are_well_formed(aws: None, tmp_path: Path) -> None:
    subnet, group = moto_network()
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
    # Several tasks in one call: what the worker's shared round asks.
    [second] = api.run_task({**params, "clientToken": "token-2"})["tasks"]
    unknown = task["taskArn"].replace(task["taskArn"][-6:], "ffffff")
    found = api.describe_tasks("multinode", [task["taskArn"], second["taskArn"], unknown])
    assert set(found) == {task["taskArn"], second["taskArn"]}


def test_spot_launches_through_the_capacity_provider_strategy(aws: None, tmp_path: Path) -> None:
    subnet, group = moto_network()
    ecs = boto3.client("ecs")
    ecs.create_cluster(clusterName="multinode", capacityProviders=["FARGATE", "FARGATE_SPOT"])
    definition = ecs.register_task_definition(
        family="multinode-function", requiresCompatibilities=["FARGATE"], networkMode="awsvpc",
        cpu="256", memory="512",
        containerDefinitions=[{"name": "function", "image": "function:latest", "memoryReservation": 128}],
    )["taskDefinition"]["taskDefinitionArn"]
    config = FargateConfig("multinode", definition, (subnet,), (group,), "DISABLED",
                           f"s3://{BUCKET}/store", "/g", capacity_provider="FARGATE_SPOT")
    req = request()
    location = RunLocation.for_attempt(config.package_store, req.invocation.invocation_id, 2)
    params = run_task_params(req, config, task_overrides(req, container_environment(
        req, settings(tmp_path), location, "token")))
    assert "launchType" not in params
    assert params["capacityProviderStrategy"] == [{"capacityProvider": "FARGATE_SPOT", "weight": 1}]
    [task] = EcsApi.connect().run_task({**params, "clientToken": "token"})["tasks"]
    assert task["capacityProviderName"] == "FARGATE_SPOT"


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
