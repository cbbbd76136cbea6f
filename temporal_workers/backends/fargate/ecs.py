"""The ECS seam: the three calls the Fargate backend makes, as plain dicts, and how to read
ECS's answers (which errors are worth another try, when a task started). Tests replace `EcsApi`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_ecs import ECSClient

Json = dict[str, Any]

_RETRYABLE_ERROR_CODES = frozenset(
    {
        "ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded",
        "ServerException", "ServiceUnavailable", "ServiceUnavailableException", "InternalFailure",
    }
)
_CAPACITY_FAILURE = "capacity is unavailable"
# Refusals worth another try although their code says "your fault": ECS wraps some throttling
# of the calls it makes for you (EC2's, for the task's network interface) in
# InvalidParameterException, and the per-cluster PROVISIONING quota in ClientException.
_TRANSIENT_REFUSALS = ("rate exceeded", "request limit exceeded", "throttl", "too many requests",
                       "provisioning capacity limit", "try again")
# What a permanent refusal most likely means, by the words AWS uses for it.
_REFUSAL_HINTS = (
    ("limit on the number of vcpus", "the account's Fargate vCPU quota is used up: ask AWS for more "
     "(Service Quotas, 'Fargate On-Demand vCPU resource count') or lower max_concurrency"),
    ("cpu configuration is above your limit", "the account may not run a task this large yet: "
     "ask AWS for a higher Fargate vCPU quota or request fewer CPUs"),
    ("accessdenied", "the worker's role may not run this task (ecs:RunTask, iam:PassRole)"),
    ("not authorized", "the worker's role may not run this task (ecs:RunTask, iam:PassRole)"),
    ("task definition", "check MULTINODE_FARGATE_TASK_DEFINITION and the function task definition"),
    ("cluster", "check MULTINODE_FARGATE_CLUSTER"),
    ("subnet", "check MULTINODE_FARGATE_SUBNETS"),
    ("security group", "check MULTINODE_FARGATE_SECURITY_GROUPS"),
)


class EcsApi:
    """The three ECS calls the backend makes, as plain dicts."""

    def __init__(self, client: ECSClient) -> None:
        self._client = client

    @classmethod
    def connect(cls, endpoint_url: str | None = None) -> EcsApi:
        endpoint = endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None
        return cls(boto3.client("ecs", endpoint_url=endpoint))

    def run_task(self, params: Mapping[str, Any]) -> Json:
        return dict(self._client.run_task(**params))

    def describe_tasks(self, cluster: str, task_arns: Sequence[str]) -> dict[str, Json]:
        """Up to 100 tasks in one call, by ARN; those ECS does not know (not visible yet, or
        long gone: its `failures[]` say MISSING) are absent."""
        response = self._client.describe_tasks(cluster=cluster, tasks=list(task_arns))
        return {str(task["taskArn"]): dict(task) for task in response.get("tasks") or []}

    def describe_task(self, cluster: str, task_arn: str) -> Json | None:
        """The task, or None when ECS does not know it."""
        return self.describe_tasks(cluster, [task_arn]).get(task_arn)

    def live_tasks(self, cluster: str, started_by: str) -> list[str]:
        """The tasks started by `started_by` (an invocation id) that have not stopped yet, those
        already asked to stop included (they may run for their stop timeout still)."""
        arns: list[str] = []
        for desired in ("RUNNING", "STOPPED"):
            pages = self._client.get_paginator("list_tasks").paginate(
                cluster=cluster, startedBy=started_by, desiredStatus=desired
            )
            arns += [arn for page in pages for arn in page.get("taskArns", [])]
        found: dict[str, Json] = {}
        for start in range(0, len(arns), 100):
            found |= self.describe_tasks(cluster, arns[start:start + 100])
        return [arn for arn, task in found.items() if task.get("lastStatus") != "STOPPED"]

    def stop_task(self, cluster: str, task_arn: str, reason: str) -> None:
        self._client.stop_task(cluster=cluster, task=task_arn, reason=reason)


def retryable(error: ClientError) -> bool:
    """Whether a refused call may succeed if made again (throttling, a server's error)."""
    code = str(error.response.get("Error", {}).get("Code", ""))
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return code in _RETRYABLE_ERROR_CODES or status >= 500


def transient_refusal(error: ClientError) -> bool:
    """Whether RunTask's refusal may pass by itself: throttling or a server's error, even when
    ECS words it as a bad parameter."""
    if retryable(error):
        return True
    message = str(error.response.get("Error", {}).get("Message", "")).lower()
    return any(words in message for words in _TRANSIENT_REFUSALS)


def refusal_message(problem: str) -> str:
    """A permanent launch refusal (a RunTask error, or its `failures[]` reasons), with what
    most likely causes it."""
    lowered = problem.lower()
    hint = next((hint for words, hint in _REFUSAL_HINTS if words in lowered), None)
    return f"Fargate refused to launch the task: {problem}" + (f" ({hint})" if hint else "")


def transient_failures(failures: list[Json]) -> bool:
    """Whether RunTask started nothing for reasons that pass: capacity, or throttling."""
    def passing(reason: str) -> bool:
        return _CAPACITY_FAILURE in reason or any(words in reason for words in _TRANSIENT_REFUSALS)

    return bool(failures) and all(passing(str(f.get("reason", "")).lower()) for f in failures)


def timestamp(value: object) -> float | None:
    """An ECS time (a datetime from boto3, or epoch seconds) as epoch seconds."""
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, (int, float)):
        return float(value)
    return None
