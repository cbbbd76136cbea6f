"""The ECS seam: the three calls the Fargate backend makes, as plain dicts, and how to read
ECS's answers (which errors are worth another try, when a task started). Tests replace `EcsApi`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
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

    def describe_task(self, cluster: str, task_arn: str) -> Json | None:
        """The task, or None when ECS does not know it (not visible yet, or long gone)."""
        response = self._client.describe_tasks(cluster=cluster, tasks=[task_arn])
        tasks = response.get("tasks") or []
        return dict(tasks[0]) if tasks else None

    def stop_task(self, cluster: str, task_arn: str, reason: str) -> None:
        self._client.stop_task(cluster=cluster, task=task_arn, reason=reason)


def retryable(error: ClientError) -> bool:
    """Whether a refused call may succeed if made again (throttling, a server's error)."""
    code = str(error.response.get("Error", {}).get("Code", ""))
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return code in _RETRYABLE_ERROR_CODES or status >= 500


def capacity_shortage(failures: list[Json]) -> bool:
    """Whether RunTask started nothing only because Fargate had no capacity for now."""
    return bool(failures) and all(
        _CAPACITY_FAILURE in str(f.get("reason", "")).lower() for f in failures
    )


def timestamp(value: object) -> float | None:
    """An ECS time (a datetime from boto3, or epoch seconds) as epoch seconds."""
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, (int, float)):
        return float(value)
    return None
