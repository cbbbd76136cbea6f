"""What the Fargate backend asks ECS for a service: names that cannot collide, a task definition
copied from the function's (image, roles, secrets, logs) with the service's size, port, health
check and entrypoint, deployments that start the new task before stopping the old one, and how
a stopped task's exit reads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from multinode.contract.records import PackageRef
from multinode.contract.service_state import ServiceTarget, describe_exit, service_stream_prefix
from multinode.contract.services import ServiceSpec
from temporal_workers.backends.fargate.service_definition import (
    SERVICE_CONTAINER,
    create_service_params,
    discovery_name,
    ecs_service_name,
    service_address,
    task_definition_params,
    update_service_params,
    version_of,
)
from temporal_workers.backends.fargate.service_ecs import DiscoveryConfig, load_discovery_config
from temporal_workers.backends.fargate.services import task_address, task_exit_code
from tests.unit.scripted_fargate import CONFIG, settings

pytestmark = pytest.mark.timeout(30)

TARGET = ServiceTarget("shop", "ver-2", ServiceSpec("api", 8080, 1.5, 3000),
                       PackageRef("s3://bucket/store/p.tar.gz", "ab" * 32, 10), "cd" * 32)
BASE: dict[str, Any] = {
    "executionRoleArn": "arn:aws:iam::1:role/exec", "taskRoleArn": "arn:aws:iam::1:role/task",
    "containerDefinitions": [{
        "name": "function", "image": "repo/function:1", "memoryReservation": 128, "stopTimeout": 120,
        "environment": [{"name": "LANG", "value": "C.UTF-8"}],
        "secrets": [{"name": "MULTINODE_API_KEY", "valueFrom": "arn:aws:secretsmanager:x"}],
        "logConfiguration": {"logDriver": "awslogs", "options": {
            "awslogs-group": "/multinode/functions", "awslogs-stream-prefix": "multinode"}},
    }],
}


def test_names_are_unambiguous_and_readable() -> None:
    assert ecs_service_name("a-b", "c") != ecs_service_name("a", "b-c")
    assert ecs_service_name("shop", "api").startswith("mn-shop-api-")
    assert discovery_name("shop", "api") == "api.shop"
    assert service_address(TARGET, DiscoveryConfig("ns-1", "multinode.internal")) == \
        "http://api.shop.multinode.internal:8080"


def test_the_task_definition_copies_the_functions_and_sizes_the_service(tmp_path: Path) -> None:
    params = task_definition_params(TARGET, BASE, settings(tmp_path))
    assert (params["cpu"], params["memory"]) == ("2048", "4096")  # the cheapest size that fits
    assert params["executionRoleArn"] == BASE["executionRoleArn"] and params["taskRoleArn"] == BASE["taskRoleArn"]
    [container] = params["containerDefinitions"]
    assert container["name"] == SERVICE_CONTAINER and container["image"] == "repo/function:1"
    assert container["entryPoint"] == ["python", "-m", "multinode.runtime.fargate_service"]
    assert container["portMappings"] == [{"containerPort": 8080, "protocol": "tcp"}]
    assert "8080" in container["healthCheck"]["command"][-1]
    assert container["secrets"] == BASE["containerDefinitions"][0]["secrets"]
    options = container["logConfiguration"]["options"]
    assert options["awslogs-group"] == "/multinode/functions"
    assert options["awslogs-stream-prefix"] == service_stream_prefix("shop", "api")
    env = {e["name"]: e["value"] for e in container["environment"]}
    assert env["LANG"] == "C.UTF-8" and env["MULTINODE_SERVICE"] == "api" and env["MULTINODE_SERVICE_PORT"] == "8080"
    assert env["MULTINODE_PACKAGE_SHA256"] == "ab" * 32 and env["MULTINODE_REQUIREMENTS_SHA256"] == "cd" * 32
    assert not any("KEY" in name for name in env)  # the key comes from the secrets only
    assert version_of(params) == "ver-2" and version_of(BASE) is None


def test_deployments_start_the_new_task_before_stopping_the_old() -> None:
    created = create_service_params(TARGET, CONFIG, "td:1", "arn:aws:servicediscovery:x:service/srv-1")
    updated = update_service_params(TARGET, CONFIG, "td:2")
    for params in (created, updated):
        deployment = params["deploymentConfiguration"]
        assert (deployment["minimumHealthyPercent"], deployment["maximumPercent"]) == (100, 200)
        assert params["desiredCount"] == 1
    assert created["serviceRegistries"] == [{"registryArn": "arn:aws:servicediscovery:x:service/srv-1"}]
    assert created["networkConfiguration"]["awsvpcConfiguration"]["subnets"] == list(CONFIG.subnets)


def test_a_stopped_tasks_exit_and_address_read_as_a_local_process_would() -> None:
    killed = {"containers": [{"name": SERVICE_CONTAINER, "exitCode": 137}]}
    assert task_exit_code(killed) == -9 and describe_exit(task_exit_code(killed)) == "signal 9 (SIGKILL)"
    assert task_exit_code({"containers": [{"name": SERVICE_CONTAINER, "exitCode": 3}]}) == 3
    assert task_exit_code({"containers": [{"name": SERVICE_CONTAINER}]}) is None
    eni = {"attachments": [{"details": [{"name": "subnetId", "value": "s"},
                                        {"name": "privateIPv4Address", "value": "10.0.1.7"}]}]}
    assert task_address(eni) == "10.0.1.7" and task_address({}) is None


def test_services_need_the_stacks_namespace() -> None:
    assert load_discovery_config({}) is None
    assert load_discovery_config({"MULTINODE_FARGATE_SERVICE_NAMESPACE_ID": "ns-1",
                                  "MULTINODE_FARGATE_SERVICE_NAMESPACE": "multinode.internal"}) == \
        DiscoveryConfig("ns-1", "multinode.internal")
