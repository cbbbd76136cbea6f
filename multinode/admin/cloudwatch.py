"""A function's output as the awslogs driver stores it in CloudWatch Logs.

On Fargate the stream of a task's container is `<stream prefix>/<container name>/<task id>`,
so it is known from the task ARN alone; the container of a function is always `function`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import boto3
from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_logs import CloudWatchLogsClient

CONTAINER_NAME = "function"
# How often a followed stream is read again once its end is reached.
FOLLOW_INTERVAL_SECONDS = 1.0


def logs_client(endpoint_url: str | None = None) -> CloudWatchLogsClient:
    endpoint = endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None
    return boto3.client("logs", endpoint_url=endpoint)


def stream_name(stream_prefix: str, task_arn: str) -> str:
    task_id = task_arn.rsplit("/", 1)[-1]
    return f"{stream_prefix}/{CONTAINER_NAME}/{task_id}"


def read_function_logs(
    log_group: str,
    stream_prefix: str,
    task_arn: str,
    follow: bool = False,
    *,
    client: CloudWatchLogsClient | None = None,
    interval_seconds: float = FOLLOW_INTERVAL_SECONDS,
    stop: Callable[[], bool] | None = None,
) -> Iterator[str]:
    """Yield the lines of a task's function container, oldest first.

    Without `follow` it ends at the stream's current end; with it, it keeps waiting for new
    lines until the caller stops iterating. A stream that does not exist yet (nothing was
    logged so far) reads as empty.
    """
    logs = client or logs_client()
    name = stream_name(stream_prefix, task_arn)
    token: str | None = None
    while True:
        page = _page(logs, log_group, name, token, seen_any=token is not None)
        if page is not None:
            lines, next_token = page
            yield from lines
            # The end of the stream: the service hands back the token it was given.
            at_end = next_token == token
            token = next_token
            if not at_end:
                continue
        if not follow:
            return
        if stop is not None and stop():
            follow = False  # one more read catches what was written before the end
            continue
        time.sleep(interval_seconds)


def _page(
    logs: CloudWatchLogsClient, group: str, stream: str, token: str | None, *, seen_any: bool
) -> tuple[list[str], str] | None:
    arguments: dict[str, object] = {"logGroupName": group, "logStreamName": stream, "startFromHead": True}
    if token is not None:
        arguments["nextToken"] = token
    try:
        response = logs.get_log_events(**arguments)  # type: ignore[arg-type]
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code == "ResourceNotFoundException" and not seen_any:
            return None
        raise
    lines = [event.get("message", "") for event in response.get("events", [])]
    return lines, response["nextForwardToken"]


class CloudWatchLogSource:
    """The logs of an attempt that ran as a Fargate task, for `multinode logs`."""

    def __init__(self, log_group: str, task_arn: str, stream_prefix: str = "multinode") -> None:
        self._log_group = log_group
        self._task_arn = task_arn
        self._stream_prefix = stream_prefix
        self.description = f"CloudWatch Logs {log_group}/{stream_name(stream_prefix, task_arn)}"

    def exists(self) -> bool:
        return True  # the task ran; an empty stream reads as no lines

    def chunks(self, *, follow: bool, attempt_ended: Callable[[], bool]) -> Iterator[str]:
        for line in read_function_logs(self._log_group, self._stream_prefix, self._task_arn,
                                       follow=follow, stop=attempt_ended):
            yield line if line.endswith("\n") else line + "\n"


def fargate_log_source(store_spec: str, invocation_id: str, attempt: int) -> CloudWatchLogSource | None:
    """The attempt's CloudWatch stream, found through the task the worker recorded beside the
    attempt's documents in the package store's bucket; None when it did not run on Fargate."""
    import json

    from multinode.runtime.fargate_run import TASK_NAME, RunLocation
    from multinode.storage.s3 import s3_client

    location = RunLocation.for_attempt(store_spec, invocation_id, attempt)
    try:
        body = s3_client().get_object(Bucket=location.bucket, Key=location.key(TASK_NAME))["Body"].read()
    except ClientError:
        return None
    task = json.loads(body)
    return CloudWatchLogSource(str(task["log_group"]), str(task["task_arn"]))


def read_service_streams(
    log_group: str,
    stream_prefix: str,
    follow: bool = False,
    *,
    client: CloudWatchLogsClient | None = None,
    interval_seconds: float = FOLLOW_INTERVAL_SECONDS,
) -> Iterator[str]:
    """Yield the lines of every task a Fargate service ran (streams `<stream_prefix>/...`), task
    by task in the order they were created; with `follow`, new lines of any task as they come."""
    logs = client or logs_client()
    tokens: dict[str, str | None] = {}
    while True:
        pages = logs.get_paginator("describe_log_streams").paginate(
            logGroupName=log_group, logStreamNamePrefix=f"{stream_prefix}/")
        streams = sorted((s for page in pages for s in page.get("logStreams", [])),
                         key=lambda s: (s.get("creationTime", 0), s.get("logStreamName", "")))
        for stream in streams:
            name = stream["logStreamName"]
            token = tokens.get(name)
            while True:
                page = _page(logs, log_group, name, token, seen_any=token is not None)
                if page is None:
                    break
                lines, next_token = page
                yield from lines
                at_end = next_token == token
                token = next_token
                if at_end:
                    break
            tokens[name] = token
        if not follow:
            return
        time.sleep(interval_seconds)


def fargate_service_logs(store_spec: str, project_name: str, service_name: str) -> tuple[str, str] | None:
    """(log group, stream prefix) of a service that ran on Fargate, as its worker recorded them
    in the package store's bucket; None when it never ran there."""
    import json

    from multinode.contract.service_state import service_logs_key
    from multinode.runtime.fargate_run import RunLocation
    from multinode.storage.s3 import s3_client

    location = RunLocation.from_uri(store_spec)
    key = location.key(service_logs_key(project_name, service_name))
    try:
        body = s3_client().get_object(Bucket=location.bucket, Key=key)["Body"].read()
    except ClientError:
        return None
    document = json.loads(body)
    return str(document["log_group"]), str(document["stream_prefix"])
