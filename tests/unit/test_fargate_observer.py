"""DescribeTasks batched per worker (issue 18 item 7): every attempt the worker supervises shares
one call per interval, up to 100 tasks per call."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from botocore.exceptions import ClientError

from temporal_workers.backends.fargate.observer import MAX_TASKS_PER_CALL, TaskObserver

pytestmark = pytest.mark.timeout(20)


class CountingEcs:
    def __init__(self, known: set[str]) -> None:
        self.known = known
        self.calls: list[list[str]] = []

    def describe_tasks(self, cluster: str, task_arns: Sequence[str]) -> dict[str, Any]:
        assert cluster == "multinode"
        self.calls.append(list(task_arns))
        return {arn: {"taskArn": arn, "lastStatus": "RUNNING"} for arn in task_arns if arn in self.known}


async def _observe_all(observer: TaskObserver, arns: list[str]) -> list[Any]:
    return await asyncio.gather(*(observer.observe(arn) for arn in arns))


def test_attempts_share_one_call_per_round_of_at_most_100_tasks() -> None:
    arns = [f"arn:task/{i}" for i in range(250)]
    ecs = CountingEcs(set(arns[:-1]))  # the last one is unknown to ECS
    observer = TaskObserver(ecs.describe_tasks, "multinode", interval_seconds=0.05)
    seen = asyncio.run(_observe_all(observer, arns))
    assert [len(call) for call in ecs.calls] == [MAX_TASKS_PER_CALL, MAX_TASKS_PER_CALL, 50]
    assert [s["taskArn"] for s in seen[:-1]] == arns[:-1] and seen[-1] is None


async def _three_rounds(observer: TaskObserver) -> None:
    for _ in range(3):
        await _observe_all(observer, ["a", "b", "c"])


def test_rounds_keep_the_interval_whoever_asks() -> None:
    ecs = CountingEcs({"a", "b", "c"})
    observer = TaskObserver(ecs.describe_tasks, "multinode", interval_seconds=0.2)
    loop = asyncio.new_event_loop()
    started = loop.time()
    loop.run_until_complete(_three_rounds(observer))
    elapsed = loop.time() - started
    loop.close()
    assert ecs.calls == [["a", "b", "c"]] * 3  # three attempts, one call a round
    assert elapsed >= 0.4  # the second and third rounds each waited out the interval


def test_a_failed_call_reaches_every_attempt_that_asked() -> None:
    def refuse(cluster: str, task_arns: Sequence[str]) -> dict[str, Any]:
        raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "DescribeTasks")

    observer = TaskObserver(refuse, "multinode", interval_seconds=0.01)

    async def observe() -> list[Any]:
        return await asyncio.gather(observer.observe("a"), observer.observe("b"), return_exceptions=True)

    assert all(isinstance(r, ClientError) for r in asyncio.run(observe()))
