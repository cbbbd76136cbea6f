"""The Fargate backend: each attempt is one ECS task of the function image.

The worker stays the only supervisor, exactly as with the local backend: it launches the task,
watches it, enforces the function's timeout (RunTask has none), turns a cancel into StopTask,
and maps how the task ended into an `AttemptOutcome`. The container cannot be reached by the
worker, so everything else travels through the package store's bucket, under
`<prefix>runs/<invocation id>/<attempt>/`:

    input.json      {"args": [...], "kwargs": {...}}       written by the worker before RunTask
    progress.json   {"token", "value"}                      the latest yield, by the container
    outcome.json    {"token", "result", "error", ...}       once, by the container, at its end

Every document the container writes carries the run's token, so what an earlier (lost) run of
the same attempt left behind is never mistaken for this run's.

This is the only module that talks to ECS; `EcsApi` and `ObjectStore` are the seam tests
replace.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from multinode.contract.options import format_memory
from multinode.contract.records import (
    AttemptOutcome,
    AttemptProgress,
    AttemptRequest,
    ErrorInfo,
    Outcome,
)
from multinode.errors import InvalidOptionError
from multinode.storage.s3 import normalize_prefix, parse_s3_uri
from temporal_workers.backends import (
    AttemptSession,
    ContainerBackend,
    InfrastructureError,
    attempt_environment,
    attempt_outcome,
)
from temporal_workers.backends.fargate.sizes import smallest_fargate_size
from temporal_workers.settings import WorkerSettings

if TYPE_CHECKING:
    from mypy_boto3_ecs import ECSClient
    from mypy_boto3_s3 import S3Client

log = logging.getLogger("multinode.worker")

T = TypeVar("T")
Json = dict[str, Any]

CONTAINER_NAME = "function"
LOG_STREAM_PREFIX = "multinode"
# RunTask refuses overrides whose JSON is longer than this.
MAX_OVERRIDES_CHARS = 8192
# Fargate's stop timeout is at most 120 s; the container must kill the function sooner, so
# that it still has time to upload the outcome before the SIGKILL.
MAX_CONTAINER_GRACE_SECONDS = 110.0
# The container exits with this when it could not prepare the attempt for a reason outside the
# function (the bucket unreachable): the engine retries, it is not the function's failure.
EXIT_INFRASTRUCTURE = 75

ENV_RUN_URI = "MULTINODE_RUN_URI"
ENV_RUN_TOKEN = "MULTINODE_RUN_TOKEN"
ENV_PACKAGE_URI = "MULTINODE_PACKAGE_URI"
ENV_PACKAGE_SHA256 = "MULTINODE_PACKAGE_SHA256"
ENV_REQUIREMENTS_SHA256 = "MULTINODE_REQUIREMENTS_SHA256"
ENV_TIMEOUT_SECONDS = "MULTINODE_TIMEOUT_SECONDS"
ENV_GRACE_PERIOD_SECONDS = "MULTINODE_GRACE_PERIOD_SECONDS"

INPUT_NAME = "input.json"
PROGRESS_NAME = "progress.json"
OUTCOME_NAME = "outcome.json"
TASK_NAME = "task.json"  # which ECS task ran the attempt: `multinode logs` finds its stream

STOP_CANCEL = "multinode: cancel"
STOP_TIMEOUT = "multinode: timeout"

# Stops decided by AWS, not by the function: the engine runs the attempt again, uncounted.
INFRASTRUCTURE_STOP_CODES = frozenset(
    {"SpotInterruption", "TerminationNotice", "InfrastructureHealth", "TaskFailedToStart"}
)
_RETRYABLE_ERROR_CODES = frozenset(
    {
        "ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded",
        "ServerException", "ServiceUnavailable", "ServiceUnavailableException", "InternalFailure",
    }
)
_CAPACITY_FAILURE = "capacity is unavailable"


# ---------------------------------------------------------------------------------------------
# Where a run's documents live


@dataclass(frozen=True)
class RunLocation:
    bucket: str
    prefix: str  # ends in "/"

    @classmethod
    def for_attempt(cls, store_spec: str, invocation_id: str, attempt_number: int) -> RunLocation:
        bucket, prefix = parse_s3_uri(store_spec)
        return cls(bucket, f"{normalize_prefix(prefix)}runs/{invocation_id}/{attempt_number}/")

    @classmethod
    def from_uri(cls, uri: str) -> RunLocation:
        bucket, prefix = parse_s3_uri(uri)
        return cls(bucket, normalize_prefix(prefix))

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def key(self, name: str) -> str:
        return self.prefix + name


# ---------------------------------------------------------------------------------------------
# The AWS seam


def _endpoint(endpoint_url: str | None) -> str | None:
    return endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


class ObjectStore:
    """JSON documents in S3."""

    def __init__(self, client: S3Client) -> None:
        self._client = client

    @classmethod
    def connect(cls, endpoint_url: str | None = None) -> ObjectStore:
        return cls(boto3.client("s3", endpoint_url=_endpoint(endpoint_url)))

    def put_json(self, bucket: str, key: str, document: Mapping[str, Any]) -> None:
        body = json.dumps(document, separators=(",", ":")).encode()
        self._client.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")

    def get_json(self, bucket: str, key: str) -> Json | None:
        """The document, or None when there is none."""
        changed = self.get_json_if_changed(bucket, key, None)
        return changed[1] if changed else None

    def get_json_if_changed(self, bucket: str, key: str, etag: str | None) -> tuple[str, Json] | None:
        """(etag, document) when the object exists and its etag is not `etag`, else None."""
        arguments: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if etag is not None:
            arguments["IfNoneMatch"] = etag
        try:
            response = self._client.get_object(**arguments)
        except ClientError as error:
            if _error_code(error) in ("304", "NotModified", "NoSuchKey", "404", "NotFound"):
                return None
            raise
        document = json.loads(response["Body"].read())
        if not isinstance(document, dict):
            raise TypeError(f"s3://{bucket}/{key} does not hold a JSON object")
        return str(response.get("ETag", "")), document


class EcsApi:
    """The three ECS calls the backend makes, as plain dicts."""

    def __init__(self, client: ECSClient) -> None:
        self._client = client

    @classmethod
    def connect(cls, endpoint_url: str | None = None) -> EcsApi:
        return cls(boto3.client("ecs", endpoint_url=_endpoint(endpoint_url)))

    def run_task(self, params: Mapping[str, Any]) -> Json:
        return dict(self._client.run_task(**params))

    def describe_task(self, cluster: str, task_arn: str) -> Json | None:
        """The task, or None when ECS does not know it (not visible yet, or long gone)."""
        response = self._client.describe_tasks(cluster=cluster, tasks=[task_arn])
        tasks = response.get("tasks") or []
        return dict(tasks[0]) if tasks else None

    def stop_task(self, cluster: str, task_arn: str, reason: str) -> None:
        self._client.stop_task(cluster=cluster, task=task_arn, reason=reason)


# ---------------------------------------------------------------------------------------------
# Configuration


@dataclass(frozen=True)
class FargateConfig:
    cluster: str
    task_definition: str
    subnets: tuple[str, ...]
    security_groups: tuple[str, ...]
    assign_public_ip: str
    package_store: str
    log_group: str
    endpoint_url: str | None = None


_REQUIRED_VARIABLES = {
    "cluster": "MULTINODE_FARGATE_CLUSTER",
    "task_definition": "MULTINODE_FARGATE_TASK_DEFINITION",
    "subnets": "MULTINODE_FARGATE_SUBNETS",
    "security_groups": "MULTINODE_FARGATE_SECURITY_GROUPS",
    "package_store": "MULTINODE_PACKAGE_STORE",
    "log_group": "MULTINODE_FUNCTION_LOG_GROUP",
}


def _split_list(value: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in value.split(",") if item.strip())


def load_fargate_config(environ: Mapping[str, str]) -> FargateConfig:
    values = {name: environ.get(variable, "").strip() for name, variable in _REQUIRED_VARIABLES.items()}
    missing = [_REQUIRED_VARIABLES[name] for name, value in values.items() if not value]
    if missing:
        raise InvalidOptionError(
            f"the fargate backend needs these environment variables: {', '.join(missing)}"
        )
    public_ip = environ.get("MULTINODE_FARGATE_ASSIGN_PUBLIC_IP", "").strip().upper() or "DISABLED"
    if public_ip not in ("ENABLED", "DISABLED"):
        raise InvalidOptionError(
            f"MULTINODE_FARGATE_ASSIGN_PUBLIC_IP={public_ip!r}: use ENABLED or DISABLED"
        )
    if not values["package_store"].lower().startswith("s3://"):
        raise InvalidOptionError(
            f"MULTINODE_PACKAGE_STORE={values['package_store']!r}: the fargate backend needs an "
            "s3://bucket/prefix store, the only one its containers can read"
        )
    return FargateConfig(
        cluster=values["cluster"],
        task_definition=values["task_definition"],
        subnets=_split_list(values["subnets"]),
        security_groups=_split_list(values["security_groups"]),
        assign_public_ip=public_ip,
        package_store=values["package_store"],
        log_group=values["log_group"],
        endpoint_url=environ.get("AWS_ENDPOINT_URL") or None,
    )


@dataclass(frozen=True)
class Timings:
    """How often the backend looks, and how patient it is. Tests shrink these."""

    # How often describe_tasks is called: ECS's read rate limit is shared by all attempts.
    describe_interval: float = 2.0
    progress_interval: float = 0.5
    # Cancellation reaches the activity only through heartbeats; this bounds its latency.
    tick: float = 0.25
    # Waits between RunTask tries on throttling, server errors and capacity shortage.
    launch_delays: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
    # ECS is eventually consistent: a task just launched may not be visible for a while.
    visibility_grace: float = 60.0
    # Provisioning and image pulls on Fargate take up to a few minutes; far beyond is a stuck task.
    start_timeout: float = 900.0
    # Added to the function's timeout before the worker stops the task, so that the container,
    # counting from its own start on another clock, surely agrees the deadline has passed.
    timeout_margin: float = 1.0


# ---------------------------------------------------------------------------------------------
# The request


class OverridesTooLargeError(InvalidOptionError):
    """The per-task overrides do not fit RunTask's limit."""


def client_token(invocation_id: str, attempt_number: int, engine_attempt: int, launch: int) -> str:
    """The RunTask idempotency key of one launch: a retried call after a lost response finds
    the task it already started instead of starting a second one."""
    token = f"{invocation_id}-a{attempt_number}-e{engine_attempt}-l{launch}"
    if len(token) <= 64:
        return token
    return "mn-" + hashlib.sha256(token.encode()).hexdigest()[:61]


def container_environment(
    request: AttemptRequest,
    settings: WorkerSettings,
    location: RunLocation,
    run_token: str,
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
    }
    if invocation.requirements_sha256:
        env[ENV_REQUIREMENTS_SHA256] = invocation.requirements_sha256
    # The API key never travels in overrides (DescribeTasks would show it): the function task
    # definition injects it from Secrets Manager.
    return env


def task_overrides(request: AttemptRequest, environment: Mapping[str, str]) -> Json:
    options = request.invocation.options
    size = smallest_fargate_size(options.cpu, options.memory_mib)
    overrides: Json = {
        "cpu": size.cpu,
        "memory": size.memory,
        "containerOverrides": [
            {
                "name": CONTAINER_NAME,
                "environment": [{"name": k, "value": v} for k, v in sorted(environment.items())],
            }
        ],
    }
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
    return {
        "cluster": config.cluster,
        "taskDefinition": config.task_definition,
        "launchType": "FARGATE",
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


def _engine_attempt() -> int:
    # The engine's own retry number of this activity, so that its next try launches a fresh
    # task instead of being handed the lost one's by RunTask's idempotency.
    from temporalio import activity

    try:
        return activity.info().attempt
    except RuntimeError:  # not inside an activity (tests, tools)
        return 1


# ---------------------------------------------------------------------------------------------
# Reading how a task ended




def _function_container(task: Mapping[str, Any]) -> Json:
    containers = task.get("containers") or []
    for container in containers:
        if container.get("name") == CONTAINER_NAME:
            return dict(container)
    return dict(containers[0]) if containers else {}


def _error_from(document: Mapping[str, Any] | None) -> ErrorInfo | None:
    error = (document or {}).get("error")
    if not isinstance(error, dict):
        return None
    return ErrorInfo(
        type=str(error.get("type", "Exception")),
        message=str(error.get("message", "")),
        traceback=error.get("traceback"),
    )


def crash_error(task: Mapping[str, Any], memory_mib: int) -> ErrorInfo:
    """Why the function's container ended without reporting a result or an error."""
    container = _function_container(task)
    reason = str(container.get("reason") or "")
    exit_code = container.get("exitCode")
    if "OutOfMemoryError" in reason:
        return ErrorInfo(
            type="MemoryLimitExceeded",
            message=f"killed: memory limit of {format_memory(memory_mib)} exceeded",
        )
    if exit_code is None:
        stopped = task.get("stoppedReason") or reason or "no reason given"
        return ErrorInfo(type="ProcessKilled", message=f"the container ended without an exit code ({stopped})")
    if exit_code > 128:
        # A container reports death by signal N as 128 + N.
        try:
            name = signal.Signals(exit_code - 128).name
        except ValueError:
            name = f"signal {exit_code - 128}"
        return ErrorInfo(type="ProcessKilled", message=f"exit code {exit_code} (killed by {name})")
    if exit_code == 0:
        return ErrorInfo(
            type="ProcessExited",
            message="the function's process exited (code 0) without reporting a result",
        )
    return ErrorInfo(type="ProcessExited", message=f"exit code {exit_code}")


def classify(
    request: AttemptRequest,
    task: Mapping[str, Any],
    document: Mapping[str, Any] | None,
    interrupt: str | None,
    started_at: float | None,
    progress: tuple[str | None, bool],
) -> AttemptOutcome:
    """Map a STOPPED task (and the outcome its container uploaded, if any) to an outcome.
    Raises InfrastructureError when AWS, not the function, ended the task."""
    stop_code = task.get("stopCode")
    if interrupt is None and stop_code in INFRASTRUCTURE_STOP_CODES:
        raise InfrastructureError(
            f"the task was stopped by AWS ({stop_code}: {task.get('stoppedReason', '')})"
        )
    exit_code = _function_container(task).get("exitCode")
    if interrupt is None and document is None and exit_code == EXIT_INFRASTRUCTURE:
        raise InfrastructureError("the container could not prepare the attempt (see its log)")
    if interrupt is None and document is not None and document.get("infrastructure"):
        raise InfrastructureError(f"the container could not prepare the attempt: {document['infrastructure']}")
    last, has_last = progress
    if document is not None and document.get("has_progress"):
        last, has_last = document.get("progress"), True
    if interrupt == "cancel":
        return attempt_outcome(Outcome.CANCELLED, last, has_value=has_last, started_at=started_at, exit_code=exit_code)
    if interrupt == "timeout":
        timeout = request.invocation.options.timeout_seconds
        error = ErrorInfo(
            type="InvocationTimedOutError", message=f"the attempt ran past its timeout of {timeout:g} s"
        )
        return attempt_outcome(Outcome.TIMED_OUT, last, has_value=has_last, started_at=started_at,
                        error=error, exit_code=exit_code)
    reported = _error_from(document)
    if reported is not None:
        return attempt_outcome(Outcome.FAILED, last, has_value=has_last, started_at=started_at,
                        error=reported, exit_code=exit_code)
    if document is not None and document.get("has_result") and exit_code == 0:
        return attempt_outcome(Outcome.SUCCEEDED, document.get("result"), has_value=True,
                        started_at=started_at, exit_code=0)
    memory = request.invocation.options.memory_mib
    return attempt_outcome(Outcome.FAILED, last, has_value=has_last, started_at=started_at,
                    error=crash_error(task, memory), exit_code=exit_code)


def _timestamp(value: object) -> float | None:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, (int, float)):
        return float(value)
    return None


def _retryable(error: ClientError) -> bool:
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return _error_code(error) in _RETRYABLE_ERROR_CODES or status >= 500


def _capacity_shortage(failures: list[Json]) -> bool:
    return bool(failures) and all(
        _CAPACITY_FAILURE in str(f.get("reason", "")).lower() for f in failures
    )


# ---------------------------------------------------------------------------------------------
# The backend


class FargateBackend(ContainerBackend):
    name = "fargate"

    def __init__(
        self,
        settings: WorkerSettings,
        config: FargateConfig,
        ecs: EcsApi,
        store: ObjectStore,
        timings: Timings | None = None,
    ) -> None:
        self.settings = settings
        self.config = config
        self.ecs = ecs
        self.store = store
        self.timings = timings or Timings()
        self._running: set[str] = set()

    @classmethod
    def from_environment(
        cls, settings: WorkerSettings, environ: Mapping[str, str] | None = None
    ) -> FargateBackend:
        config = load_fargate_config(os.environ if environ is None else environ)
        return cls(
            settings,
            config,
            EcsApi.connect(config.endpoint_url),
            ObjectStore.connect(config.endpoint_url),
        )

    async def run_attempt(self, request: AttemptRequest, session: AttemptSession) -> AttemptOutcome:
        return await _Attempt(self, request, session).run()

    def track(self, task_arn: str, running: bool) -> None:
        if running:
            self._running.add(task_arn)
        else:
            self._running.discard(task_arn)

    async def close(self) -> None:
        for task_arn in list(self._running):
            try:
                await asyncio.to_thread(
                    self.ecs.stop_task, self.config.cluster, task_arn, "multinode: worker stopping"
                )
            except (ClientError, BotoCoreError) as exc:
                log.warning("could not stop %s: %s", task_arn, exc)


@dataclass
class _Watch:
    """What the supervisor knows of its task so far."""

    launched: float
    started_at: float | None = None
    deadline: float | None = None
    progress: str | None = None
    has_progress: bool = False
    progress_etag: str | None = None
    next_describe: float = 0.0
    next_progress: float = 0.0
    background: list[asyncio.Future[None]] = field(default_factory=list)


class _Attempt:
    """One attempt's run: launch, supervise, classify."""

    def __init__(self, backend: FargateBackend, request: AttemptRequest, session: AttemptSession) -> None:
        self.backend = backend
        self.request = request
        self.session = session
        self.timings = backend.timings
        self.cluster = backend.config.cluster
        invocation = request.invocation
        self.location = RunLocation.for_attempt(
            backend.config.package_store, invocation.invocation_id, request.attempt_number
        )
        self.engine_attempt = _engine_attempt()
        self.run_token = client_token(invocation.invocation_id, request.attempt_number, self.engine_attempt, 0)
        self.cancel_requested = False
        self.abandoned: str | None = None
        self.interrupt: str | None = None
        self.phase = "preparing"

    # ----- interruption-aware waiting -----------------------------------------------------

    def _note_interruption(self) -> None:
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
        reason = self.session.interruption()
        if reason == "cancel":
            self.cancel_requested = True
        else:
            self.abandoned = reason

    async def call(self, function: Callable[..., T], *args: Any) -> T:
        """Run a blocking AWS call in a thread. A cancellation meanwhile is recorded and the
        call still finishes: its effect (a launched task) must be known to be undone."""
        future: asyncio.Future[T] = asyncio.ensure_future(asyncio.to_thread(function, *args))
        while True:
            try:
                return await asyncio.shield(future)
            except asyncio.CancelledError:
                if future.cancelled():
                    raise
                self._note_interruption()

    async def sleep(self, seconds: float) -> None:
        try:
            await asyncio.sleep(max(0.0, seconds))
        except asyncio.CancelledError:
            self._note_interruption()

    def heartbeat(self, watch: _Watch | None = None) -> None:
        started_at = watch.started_at if watch else None
        value, has_value = (watch.progress, watch.has_progress) if watch else (None, False)
        self.session.heartbeat(
            AttemptProgress(self.request.attempt_number, self.phase, started_at, value, has_value)
        )

    # ----- the run ------------------------------------------------------------------------

    async def run(self) -> AttemptOutcome:
        self.heartbeat()
        try:
            environment = container_environment(
                self.request, self.backend.settings, self.location, self.run_token
            )
            params = run_task_params(
                self.request, self.backend.config, task_overrides(self.request, environment)
            )
        except ValueError as exc:  # overrides too large, or no Fargate size fits
            # Permanent: no launch can succeed, and no user code has run.
            error = ErrorInfo(type=type(exc).__name__, message=str(exc))
            return attempt_outcome(Outcome.FAILED, None, started_at=None, error=error)
        await self._upload_input()
        self._check_abandoned()
        if self.cancel_requested:
            return attempt_outcome(Outcome.CANCELLED, None, started_at=None)
        task_arn = await self._launch(params)
        if task_arn is None:
            self._check_abandoned()
            return attempt_outcome(Outcome.CANCELLED, None, started_at=None)
        log.info("%s attempt %d: task %s", self.request.invocation.invocation_id,
                 self.request.attempt_number, task_arn)
        await self._record_task(task_arn)
        self.backend.track(task_arn, True)
        try:
            return await self._supervise(task_arn)
        finally:
            self.backend.track(task_arn, False)

    def _check_abandoned(self) -> None:
        if self.abandoned is not None:
            raise InfrastructureError(f"attempt interrupted by the engine ({self.abandoned})")

    async def _upload_input(self) -> None:
        invocation = self.request.invocation
        document = {"args": invocation.args, "kwargs": invocation.kwargs}
        try:
            await self.call(self.backend.store.put_json, self.location.bucket,
                            self.location.key(INPUT_NAME), document)
        except (ClientError, BotoCoreError) as exc:
            raise InfrastructureError(f"uploading the arguments failed: {exc}") from exc

    async def _record_task(self, task_arn: str) -> None:
        document = {"task_arn": task_arn, "log_group": self.backend.config.log_group}
        try:
            await self.call(self.backend.store.put_json, self.location.bucket,
                            self.location.key(TASK_NAME), document)
        except (ClientError, BotoCoreError) as exc:  # only the logs' address is lost
            log.warning("could not record the task of %s: %s", self.request.invocation.invocation_id, exc)

    async def _launch(self, params: Json) -> str | None:
        """RunTask until a task exists; None if cancelled before one did."""
        invocation = self.request.invocation
        delays = self.timings.launch_delays
        launch = 1
        problem = ""
        for try_number in range(len(delays) + 1):
            self._check_abandoned()
            if self.cancel_requested:
                return None
            params["clientToken"] = client_token(
                invocation.invocation_id, self.request.attempt_number, self.engine_attempt, launch
            )
            try:
                response = await self.call(self.backend.ecs.run_task, params)
            except ClientError as exc:
                if not _retryable(exc):
                    raise InfrastructureError(f"RunTask was refused: {exc}") from exc
                problem = str(exc)  # the same token again: the call may have gone through
            except BotoCoreError as exc:
                problem = str(exc)
            else:
                tasks = response.get("tasks") or []
                if tasks:
                    return str(tasks[0]["taskArn"])
                failures = list(response.get("failures") or [])
                problem = "; ".join(f"{f.get('reason', '')} {f.get('detail', '')}".strip() for f in failures)
                if not _capacity_shortage(failures):
                    raise InfrastructureError(f"RunTask failed: {problem or 'no task and no reason'}")
                launch += 1  # nothing started: a fresh token, or AWS may answer with this failure again
            if try_number < len(delays):
                log.warning("%s attempt %d: launch retry in %gs: %s", invocation.invocation_id,
                            self.request.attempt_number, delays[try_number], problem)
                self.heartbeat()
                await self.sleep(delays[try_number])
        raise InfrastructureError(f"no task could be launched after {len(delays) + 1} tries: {problem}")

    async def _stop(self, task_arn: str, reason: str) -> bool:
        try:
            await self.call(self.backend.ecs.stop_task, self.cluster, task_arn, reason)
        except (ClientError, BotoCoreError) as exc:
            log.warning("StopTask %s (%s) failed: %s", task_arn, reason, exc)
            return False
        return True

    async def _supervise(self, task_arn: str) -> AttemptOutcome:
        watch = _Watch(launched=time.monotonic())
        while True:
            stopped = await self._observe(task_arn, watch)
            if stopped is not None:
                return stopped
            await self._react(task_arn, watch)
            self.heartbeat(watch)
            await self.sleep(self._next_wake(watch) - time.monotonic())

    def _next_wake(self, watch: _Watch) -> float:
        now = time.monotonic()
        wake = min(now + self.timings.tick, watch.next_describe, watch.next_progress)
        if self.interrupt is None and watch.deadline is not None:
            wake = min(wake, watch.deadline)
        return wake

    async def _observe(self, task_arn: str, watch: _Watch) -> AttemptOutcome | None:
        """Look at the task and its progress when due; the outcome once it has stopped."""
        now = time.monotonic()
        if now >= watch.next_progress:
            watch.next_progress = now + self.timings.progress_interval
            await self._poll_progress(watch)
        if now < watch.next_describe:
            return None
        watch.next_describe = now + self.timings.describe_interval
        try:
            task = await self.call(self.backend.ecs.describe_task, self.cluster, task_arn)
        except (ClientError, BotoCoreError) as exc:
            log.warning("DescribeTasks %s failed (will look again): %s", task_arn, exc)
            return None
        if task is None:
            if now - watch.launched > self.timings.visibility_grace:
                error = ErrorInfo(type="ProcessKilled", message="the task disappeared")
                return attempt_outcome(Outcome.FAILED, watch.progress, has_value=watch.has_progress,
                                started_at=watch.started_at, error=error)
            return None
        status = task.get("lastStatus")
        if status == "STOPPED":
            return await self._finish(task, watch)
        if watch.started_at is None and status in ("RUNNING", "DEACTIVATING", "STOPPING"):
            self._mark_running(task, watch)
        return None

    def _mark_running(self, task: Mapping[str, Any], watch: _Watch) -> None:
        watch.started_at = _timestamp(task.get("startedAt")) or time.time()
        # Counted from when the worker sees it running, never earlier than the container's own
        # start: so when the worker stops it for the timeout, the container agrees it is one.
        timeout = self.request.invocation.options.timeout_seconds
        watch.deadline = time.monotonic() + timeout + self.timings.timeout_margin
        if self.interrupt is None:
            self.phase = "running"
            watch.background.append(asyncio.ensure_future(self.session.notify_started(watch.started_at)))

    async def _poll_progress(self, watch: _Watch) -> None:
        try:
            changed = await self.call(
                self.backend.store.get_json_if_changed,
                self.location.bucket, self.location.key(PROGRESS_NAME), watch.progress_etag,
            )
        except (ClientError, BotoCoreError, ValueError, TypeError) as exc:
            log.debug("reading progress failed (will look again): %s", exc)
            return
        if changed is None:
            return
        watch.progress_etag, document = changed
        if document.get("token") == self.run_token:
            watch.progress, watch.has_progress = document.get("value"), True

    async def _react(self, task_arn: str, watch: _Watch) -> None:
        if self.abandoned is not None:
            # The engine gave up on this attempt (worker shutting down, or it timed the attempt
            # out): stop now, the engine runs it again elsewhere.
            await self._stop(task_arn, f"multinode: engine interruption ({self.abandoned})")
            self._check_abandoned()
        now = time.monotonic()
        if self.interrupt is None and self.cancel_requested:
            await self._interrupt(task_arn, "cancel", STOP_CANCEL)
        elif self.interrupt is None and watch.deadline is not None and now >= watch.deadline:
            await self._interrupt(task_arn, "timeout", STOP_TIMEOUT)
        elif watch.started_at is None and now - watch.launched > self.timings.start_timeout:
            await self._stop(task_arn, "multinode: the task did not start in time")
            raise InfrastructureError(
                f"the task did not start within {self.timings.start_timeout:g} s"
            )

    async def _interrupt(self, task_arn: str, kind: str, reason: str) -> None:
        self.interrupt, self.phase = kind, "stopping"
        if not await self._stop(task_arn, reason):
            # Not stopped (throttled, or the task is not visible yet): asked again next tick.
            self.interrupt = None

    async def _finish(self, task: Json, watch: _Watch) -> AttemptOutcome:
        document = await self._read_outcome()
        if watch.started_at is None and task.get("startedAt") is not None:
            watch.started_at = _timestamp(task.get("startedAt"))
        await _settle(watch.background)
        return classify(self.request, task, document, self.interrupt, watch.started_at,
                        (watch.progress, watch.has_progress))

    async def _read_outcome(self) -> Json | None:
        # The function has already run: a passing S3 hiccup must not cost a whole new attempt.
        problem: Exception | None = None
        for delay in (*self.timings.launch_delays[:3], None):
            try:
                document = await self.call(
                    self.backend.store.get_json, self.location.bucket, self.location.key(OUTCOME_NAME)
                )
            except (ClientError, BotoCoreError, ValueError, TypeError) as exc:
                problem = exc
                if delay is not None:
                    await self.sleep(delay)
                continue
            if document is None or document.get("token") != self.run_token:
                return None
            return document
        raise InfrastructureError(f"reading the attempt's outcome failed: {problem}")


async def _settle(futures: list[asyncio.Future[None]]) -> None:
    # The RUNNING notice must not outlive the attempt, nor its failure go unobserved.
    pending = [f for f in futures if not f.done()]
    if pending:
        await asyncio.wait(pending, timeout=1.0)
    for future in futures:
        if future.done() and not future.cancelled() and future.exception() is not None:
            log.warning("RUNNING notice failed: %s", future.exception())
