"""Launching a Fargate task against a scripted ECS: the RunTask request, its overrides and client
tokens, and which launch failures are retried."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from multinode.contract.options import FunctionOptions
from multinode.contract.records import Outcome
from multinode.errors import OverridesTooLargeError
from temporal_workers.backends import InfrastructureError
from temporal_workers.backends.fargate.request import MAX_OVERRIDES_CHARS, client_token, task_overrides
from tests.unit.scripted_fargate import CAPACITY, CONFIG, FAST, Script, client_error, harness, request, run

pytestmark = pytest.mark.timeout(60)


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


REFUSALS = {
    # (error code, message) as RunTask raises them -> words the attempt's error must hold
    ("ClientException", "The requested CPU configuration is above your limit"): "vCPU quota",
    ("AccessDeniedException", "User: arn:aws:sts::1:assumed-role/w is not authorized to perform: ecs:RunTask"):
        "iam:PassRole",
    ("ClusterNotFoundException", "Cluster not found."): "MULTINODE_FARGATE_CLUSTER",
    ("InvalidParameterException", "Unable to find task definition 'nope'"): "MULTINODE_FARGATE_TASK_DEFINITION",
}


@pytest.mark.parametrize(("code", "message"), list(REFUSALS))
def test_a_permanent_refusal_fails_the_attempt_at_once_naming_the_cause(
    tmp_path: Path, code: str, message: str
) -> None:
    h = harness(tmp_path, Script(), launches=[client_error(code, message=message)])
    outcome = run(h)
    assert outcome.outcome == Outcome.FAILED and outcome.started_at is None
    assert outcome.error is not None and outcome.error.type == "LaunchFailed"
    assert code in outcome.error.message and message in outcome.error.message
    assert REFUSALS[(code, message)] in outcome.error.message
    assert len(h.ecs.run_params) == 1


def test_an_exhausted_vcpu_quota_in_failures_fails_at_once(tmp_path: Path) -> None:
    reason = "You've reached the limit on the number of vCPUs you can run concurrently"
    h = harness(tmp_path, Script(), launches=[{"tasks": [], "failures": [{"arn": "", "reason": reason}]}])
    outcome = run(h)
    assert outcome.error is not None and outcome.error.type == "LaunchFailed"
    assert reason in outcome.error.message and "Service Quotas" in outcome.error.message
    assert len(h.ecs.run_params) == 1


def test_throttling_worded_as_a_bad_parameter_is_retried(tmp_path: Path) -> None:
    throttled = client_error("InvalidParameterException", message="Error retrieving security group information "
                             "for [sg-1]: Request limit exceeded. (ErrorCode: RequestLimitExceeded)")
    h = harness(tmp_path, Script(outcome={"result": "1", "has_result": True}), launches=[throttled])
    assert run(h).outcome == Outcome.SUCCEEDED
    assert len(h.ecs.run_params) == 2


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


def test_tls_material_never_travels_in_overrides_but_tls_itself_does(tmp_path: Path) -> None:
    from multinode.contract.connection import ConnectionSettings, TlsSettings
    from multinode.runtime.fargate_run import RunLocation
    from temporal_workers.backends.fargate.request import container_environment
    from tests.unit.scripted_fargate import settings

    tls = TlsSettings(server_name="temporal.internal", server_ca_cert=tmp_path / "ca.pem",
                      client_cert=b"-----BEGIN CERTIFICATE-----", client_key=b"-----BEGIN PRIVATE KEY-----")
    connection = ConnectionSettings("temporal.internal:7233", "secret-key-123", "team", "q", "environment", tls)
    worker = settings(tmp_path).model_copy(update={"connection": connection})
    env = container_environment(request(), worker, RunLocation.from_uri("s3://bucket/runs/x/"), "token")
    overrides = json.dumps(task_overrides(request(), env))
    assert "BEGIN" not in overrides and "secret-key-123" not in overrides and "ca.pem" not in overrides
    assert (env["TEMPORAL_TLS"], env["TEMPORAL_TLS_SERVER_NAME"], env["MULTINODE_NAMESPACE"]) == (
        "true", "temporal.internal", "team")


def test_client_tokens_are_bounded_and_stable() -> None:
    assert client_token("inv-x", 1, 1, 1) == client_token("inv-x", 1, 1, 1)
    long_token = client_token("inv-" + "y" * 80, 3, 2, 1)
    assert len(long_token) == 64 and long_token == client_token("inv-" + "y" * 80, 3, 2, 1)
    assert long_token != client_token("inv-" + "y" * 80, 3, 2, 2)
