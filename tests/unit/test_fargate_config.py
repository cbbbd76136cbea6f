"""The Fargate backend's configuration, read from the stack's outputs in the worker's environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from multinode.errors import InvalidOptionError
from temporal_workers.backends.fargate.backend import FargateBackend
from temporal_workers.backends.fargate.config import FargateConfig, load_fargate_config
from tests.unit.scripted_fargate import REGION, settings

pytestmark = pytest.mark.timeout(60)


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


def test_the_capacity_provider_is_checked_at_the_door() -> None:
    environ = {
        "MULTINODE_FARGATE_CLUSTER": "c", "MULTINODE_FARGATE_TASK_DEFINITION": "arn:td",
        "MULTINODE_FARGATE_SUBNETS": "subnet-1", "MULTINODE_FARGATE_SECURITY_GROUPS": "sg-1",
        "MULTINODE_PACKAGE_STORE": "s3://b", "MULTINODE_FUNCTION_LOG_GROUP": "/g",
    }
    assert load_fargate_config(environ).capacity_provider == "FARGATE"
    spot = {**environ, "MULTINODE_FARGATE_CAPACITY_PROVIDER": "fargate_spot"}
    assert load_fargate_config(spot).capacity_provider == "FARGATE_SPOT"
    with pytest.raises(InvalidOptionError, match=r"'SPOTTY'.*FARGATE or FARGATE_SPOT"):
        load_fargate_config({**environ, "MULTINODE_FARGATE_CAPACITY_PROVIDER": "spotty"})
