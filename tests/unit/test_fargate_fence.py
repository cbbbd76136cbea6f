"""Fencing an engine retry on Fargate (issue 18 item 3, in part): before the retry launches, the
tasks a lost run of the invocation left alive are stopped, and the retry waits for their end."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import boto3
import pytest

from multinode.contract.records import Outcome
from temporal_workers.backends import InfrastructureError
from temporal_workers.backends.fargate import supervisor
from temporal_workers.backends.fargate.ecs import EcsApi
from temporal_workers.backends.fargate.fence import FENCE_REASON
from tests.fargate_doubles import moto_network
from tests.unit.scripted_fargate import Script, harness, request, run

pytestmark = pytest.mark.timeout(60)
LEFT = "arn:aws:ecs:us-east-1:123456789012:task/multinode/lost"


@pytest.fixture
def engine_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(supervisor, "engine_attempt", lambda: 2)


def test_an_engine_retry_stops_what_the_lost_run_left_before_it_launches(tmp_path: Path, engine_retry: None) -> None:
    h = harness(tmp_path, Script(outcome={"result": "1", "has_result": True}))
    h.ecs.leftovers = [[LEFT], [LEFT], []]  # alive, still stopping, gone
    assert run(h).outcome == Outcome.SUCCEEDED
    assert h.ecs.stops == [FENCE_REASON]  # asked once, then waited for
    assert h.ecs.live_lookups == 3 and len(h.ecs.run_params) == 1


def test_a_leftover_that_never_stops_hands_the_attempt_back(tmp_path: Path, engine_retry: None) -> None:
    h = harness(tmp_path, Script())
    h.backend.timings = dataclasses.replace(h.backend.timings, fence_timeout=0.05)
    h.ecs.leftovers = [[LEFT]] * 1000
    with pytest.raises(InfrastructureError, match="did not stop in time"):
        run(h)
    assert h.ecs.run_params == []  # never a second task beside the first


def test_a_first_run_does_not_look(tmp_path: Path) -> None:
    h = harness(tmp_path, Script(outcome={"result": "1", "has_result": True}))
    assert run(h, request()).outcome == Outcome.SUCCEEDED
    assert h.ecs.live_lookups == 0


def test_live_tasks_finds_the_invocations_tasks_not_stopped_yet(aws: None) -> None:
    subnet, group = moto_network()
    ecs = boto3.client("ecs")
    ecs.create_cluster(clusterName="multinode")
    definition = ecs.register_task_definition(
        family="f", requiresCompatibilities=["FARGATE"], networkMode="awsvpc", cpu="256", memory="512",
        containerDefinitions=[{"name": "function", "image": "f:1", "memoryReservation": 128}],
    )["taskDefinition"]["taskDefinitionArn"]

    def launch(started_by: str) -> str:
        [task] = ecs.run_task(
            cluster="multinode", taskDefinition=definition, launchType="FARGATE", startedBy=started_by,
            networkConfiguration={"awsvpcConfiguration": {"subnets": [subnet], "securityGroups": [group]}},
        )["tasks"]
        return str(task["taskArn"])

    running, stopped, other = launch("inv-a"), launch("inv-a"), launch("inv-b")
    # moto stops a task at once; a task still in its stop timeout (desired STOPPED, last status
    # not yet) is the scripted tests' case above.
    ecs.stop_task(cluster="multinode", task=stopped, reason="worker stopping")
    api = EcsApi.connect()
    assert api.live_tasks("multinode", "inv-a") == [running]
    assert api.live_tasks("multinode", "inv-b") == [other]
    assert api.live_tasks("multinode", "inv-c") == []
