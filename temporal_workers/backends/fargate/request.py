"""The RunTask request of one attempt: the container's environment, the task's overrides (its
size), the call's parameters and its idempotency token."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from multinode.contract.records import AttemptRequest
from multinode.errors import OverridesTooLargeError
from multinode.runtime.fargate_run import (
    ENV_GRACE_PERIOD_SECONDS,
    ENV_PACKAGE_SHA256,
    ENV_PACKAGE_URI,
    ENV_PROGRESS_INTERVAL_SECONDS,
    ENV_REQUIREMENTS_SHA256,
    ENV_RUN_TOKEN,
    ENV_RUN_URI,
    ENV_TIMEOUT_SECONDS,
    MAX_CONTAINER_GRACE_SECONDS,
    PROGRESS_INTERVAL_SECONDS,
    RunLocation,
)
from multinode.storage.secrets import s3_object_arn
from temporal_workers.backends import attempt_environment
from temporal_workers.backends.fargate.config import CONTAINER_NAME, FargateConfig
from temporal_workers.backends.fargate.sizes import smallest_fargate_size
from temporal_workers.settings import WorkerSettings

Json = dict[str, Any]

# RunTask refuses overrides whose JSON is longer than this.
MAX_OVERRIDES_CHARS = 8192


def client_token(invocation_id: str, attempt_number: int, engine_attempt: int, launch: int) -> str:
    """The RunTask idempotency key of one launch: a retried call after a lost response finds
    the task it already started instead of starting a second one."""
    token = f"{invocation_id}-a{attempt_number}-e{engine_attempt}-l{launch}"
    if len(token) <= 64:
        return token
    return "mn-" + hashlib.sha256(token.encode()).hexdigest()[:61]


def engine_attempt() -> int:
    """The engine's own retry number of this activity, so that its next try launches a fresh
    task instead of being handed the lost one's by RunTask's idempotency."""
    from temporalio import activity

    try:
        return activity.info().attempt
    except RuntimeError:  # not inside an activity (tests, tools)
        return 1


def container_environment(
    request: AttemptRequest,
    settings: WorkerSettings,
    location: RunLocation,
    run_token: str,
    progress_interval_seconds: float = PROGRESS_INTERVAL_SECONDS,
) -> dict[str, str]:
    """What the entrypoint needs to run the attempt; never the arguments (they are in S3)."""
    invocation = request.invocation
    env = attempt_environment(request, settings.connection)
    env |= {
        ENV_PACKAGE_URI: invocation.package.uri,
        ENV_PACKAGE_SHA256: invocation.package.sha256,
        ENV_RUN_URI: location.uri,
        ENV_RUN_TOKEN: run_token,
        ENV_TIMEOUT_SECONDS: repr(float(invocation.options.timeout_seconds)),
        ENV_GRACE_PERIOD_SECONDS: repr(min(settings.grace_period_seconds, MAX_CONTAINER_GRACE_SECONDS)),
        ENV_PROGRESS_INTERVAL_SECONDS: repr(float(progress_interval_seconds)),
    }
    if invocation.requirements_sha256:
        env[ENV_REQUIREMENTS_SHA256] = invocation.requirements_sha256
    # The API key and the TLS material never travel in overrides (DescribeTasks would show
    # them): the function task definition injects them from Secrets Manager
    # (deploy/cloudformation/multinode.yaml).
    return env


def task_overrides(request: AttemptRequest, environment: Mapping[str, str]) -> Json:
    options = request.invocation.options
    size = smallest_fargate_size(options.cpu, options.memory_mib)
    container: Json = {
        "name": CONTAINER_NAME,
        "environment": [{"name": k, "value": v} for k, v in sorted(environment.items())],
    }
    secrets_uri = request.invocation.secrets_uri
    if secrets_uri:
        # The project's .env: ECS's agent reads it with the task execution role (the function's
        # own role cannot), so the worker never holds the values, nor do the overrides.
        container["environmentFiles"] = [{"value": s3_object_arn(secrets_uri), "type": "s3"}]
    overrides: Json = {"cpu": size.cpu, "memory": size.memory, "containerOverrides": [container]}
    length = len(json.dumps(overrides, separators=(",", ":")))
    if length > MAX_OVERRIDES_CHARS:
        raise OverridesTooLargeError(
            f"the task overrides are {length} characters of JSON, above RunTask's limit of "
            f"{MAX_OVERRIDES_CHARS}; shorten the project or function name, or the API key"
        )
    return overrides


def run_task_params(
    request: AttemptRequest, config: FargateConfig, overrides: Json
) -> Json:
    invocation = request.invocation
    tags = {
        "multinode:invocation-id": invocation.invocation_id,
        "multinode:project": invocation.project_name,
        "multinode:function": invocation.function_name,
        "multinode:attempt": str(request.attempt_number),
    }
    # Spot needs a capacity provider strategy (the cluster lists FARGATE_SPOT); on-demand keeps
    # the launch type, which works on any cluster. ECS refuses both at once.
    placement: Json = (
        {"launchType": "FARGATE"} if config.capacity_provider == "FARGATE"
        else {"capacityProviderStrategy": [{"capacityProvider": config.capacity_provider, "weight": 1}]}
    )
    return {
        "cluster": config.cluster,
        "taskDefinition": config.task_definition,
        **placement,
        "count": 1,
        "networkConfiguration": {
            "awsvpcConfiguration": {
                "subnets": list(config.subnets),
                "securityGroups": list(config.security_groups),
                "assignPublicIp": config.assign_public_ip,
            }
        },
        "overrides": overrides,
        "startedBy": invocation.invocation_id,
        "tags": [{"key": k, "value": v} for k, v in tags.items()],
    }
