"""The run protocol between the worker's Fargate backend and the function image's entrypoint.

The container cannot be reached by the worker, so an attempt's run travels through the package
store's bucket, under `<prefix>runs/<invocation id>/<attempt>/`:

    input.json      {"args": [...], "kwargs": {...}}       written by the worker before RunTask
    progress.json   {"token", "value"}                      the latest yield, by the container
    outcome.json    {"token", "result", "error", ...}       once, by the container, at its end
    task.json       {"task_arn", "log_group"}               by the worker: where the logs are

Every document the container writes carries the run's token, so what an earlier (lost) run of
the same attempt left behind is never mistaken for this run's. The worker tells the container
where its run lives, and the rest of what it needs, in the environment variables below.

Pure constants and addresses: imported by the worker and by the container, never boto3.
"""

from __future__ import annotations

from dataclasses import dataclass

from multinode.storage.s3_uri import normalize_prefix, parse_s3_uri

ENV_RUN_URI = "MULTINODE_RUN_URI"
ENV_RUN_TOKEN = "MULTINODE_RUN_TOKEN"
ENV_PACKAGE_URI = "MULTINODE_PACKAGE_URI"
ENV_PACKAGE_SHA256 = "MULTINODE_PACKAGE_SHA256"
ENV_REQUIREMENTS_SHA256 = "MULTINODE_REQUIREMENTS_SHA256"
ENV_TIMEOUT_SECONDS = "MULTINODE_TIMEOUT_SECONDS"
ENV_GRACE_PERIOD_SECONDS = "MULTINODE_GRACE_PERIOD_SECONDS"
ENV_PROGRESS_INTERVAL_SECONDS = "MULTINODE_PROGRESS_INTERVAL_SECONDS"

INPUT_NAME = "input.json"
PROGRESS_NAME = "progress.json"
OUTCOME_NAME = "outcome.json"
TASK_NAME = "task.json"  # which ECS task ran the attempt: `multinode logs` finds its stream

# Fargate's stop timeout is at most 120 s; the container must kill the function sooner, so
# that it still has time to upload the outcome before the SIGKILL.
MAX_CONTAINER_GRACE_SECONDS = 110.0
# How often the container writes a changed yield (and the worker looks for one): each write is a
# billed S3 PUT, so more often than this would cost more per running hour than the smallest task.
PROGRESS_INTERVAL_SECONDS = 2.0
# The container exits with this when it could not prepare the attempt for a reason outside the
# function (the bucket unreachable): the engine retries, it is not the function's failure.
EXIT_INFRASTRUCTURE = 75


@dataclass(frozen=True)
class RunLocation:
    """Where one run's documents live."""

    bucket: str
    prefix: str  # ends in "/"

    @classmethod
    def for_invocation(cls, store_spec: str, invocation_id: str) -> RunLocation:
        """Where every attempt of the invocation keeps its documents."""
        bucket, prefix = parse_s3_uri(store_spec)
        return cls(bucket, f"{normalize_prefix(prefix)}runs/{invocation_id}/")

    @classmethod
    def for_attempt(cls, store_spec: str, invocation_id: str, attempt_number: int) -> RunLocation:
        invocation = cls.for_invocation(store_spec, invocation_id)
        return cls(invocation.bucket, f"{invocation.prefix}{attempt_number}/")

    @classmethod
    def from_uri(cls, uri: str) -> RunLocation:
        bucket, prefix = parse_s3_uri(uri)
        return cls(bucket, normalize_prefix(prefix))

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def key(self, name: str) -> str:
        return self.prefix + name
