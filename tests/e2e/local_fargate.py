"""Fargate, played by local processes: when a backend runs a task, `LocalFargate` starts the
function image's entrypoint (`python -m multinode.runtime.fargate_container`) with the environment
the task definition and the overrides give it; StopTask becomes SIGTERM, then SIGKILL after the
stop timeout; describe_tasks reports the process's real state and exit code. moto still validates
and records every ECS call.

Like the awslogs driver, each task's output goes to CloudWatch Logs line by line while it runs.
One `LocalFargate` is the region's Fargate: several workers may share it (`seam(worker)` is the
ECS client of one), and it counts the tasks running at once. `plan` makes AWS misbehave for the
next task of a function: a task that fails to start, or a Spot interruption once it runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3

from multinode.admin.cloudwatch import stream_name
from temporal_workers.backends.fargate.config import LOG_STREAM_PREFIX
from temporal_workers.backends.fargate.ecs import EcsApi
from tests.e2e.moto_stack import LOG_GROUP, REGION

# Fargate's is 120 s; the container's own grace (2 s in the harness's tests) must end well inside it.
STOP_TIMEOUT_SECONDS = 15.0

# What AWS says when it ends a task by itself (the stop codes of ECS's task state changes).
FAIL_TO_START = "TaskFailedToStart"
SPOT_INTERRUPTION = "SpotInterruption"
_AWS_REASONS = {
    FAIL_TO_START: "Timeout waiting for network interface provisioning to complete.",
    SPOT_INTERRUPTION: "Your Spot Task was interrupted.",
}
# A start failure no retry mends (the backend fails the attempt at once).
IMAGE_NOT_PULLED = "CannotPullContainerError: pull image manifest has been retried 5 time(s)"


@dataclass
class Fault:
    """AWS's misbehaviour for the next task of `function`: FAIL_TO_START (no container ever
    runs), or SPOT_INTERRUPTION once the task has printed `after_line`."""

    function: str
    stop_code: str
    after_line: str = ""
    reason: str = ""  # ECS's stoppedReason; AWS's usual one for the stop code when empty


@dataclass
class LocalTask:
    arn: str
    process: subprocess.Popen[bytes] | None  # None: it never started
    started_at: datetime
    environment: dict[str, str]
    worker: str
    output: list[str] = field(default_factory=list)
    reader: threading.Thread | None = None
    stop_reason: str | None = None
    stop_code: str | None = None
    killer: threading.Timer | None = None
    ended: bool = False
    stopped_reason: str = ""
    container: str = "function"
    # A service's task: its task definition and its own loopback address (awsvpc gives each
    # task its own interface; here each gets its own 127.0.0.N).
    task_definition: str = ""
    address: str | None = None


class LocalFargate(EcsApi):
    """moto validates and records the ECS calls; the tasks themselves run here."""

    def __init__(self, inner: EcsApi, root: Path) -> None:
        self.inner = inner
        self.root = root
        self.tasks: dict[str, LocalTask] = {}
        self.stops: list[str] = []
        self.faults: list[Fault] = []
        self.running = 0
        self.peak_running = 0
        self.image_environment: dict[str, str] = {}  # what the function image's ENV would add
        self.launches: list[Mapping[str, Any]] = []  # every RunTask's parameters, as sent
        self._lock = threading.RLock()
        self._logs = boto3.client("logs")

    # ----- the harness's own controls -----------------------------------------------------

    def seam(self, worker: str) -> EcsApi:
        """The ECS client one worker uses: its tasks are recorded as that worker's."""
        return _WorkerSeam(self, worker)

    def plan(self, fault: Fault) -> None:
        with self._lock:
            self.faults.append(fault)

    def tasks_of(self, invocation_id: str) -> list[LocalTask]:
        with self._lock:
            return [t for t in self.tasks.values()
                    if t.environment.get("MULTINODE_INVOCATION_ID") == invocation_id]

    # ----- the ECS seam -------------------------------------------------------------------

    def run_task(self, params: Mapping[str, Any], worker: str = "worker") -> dict[str, Any]:
        response = self.inner.run_task(params)
        self.launches.append(params)
        for task in response.get("tasks", []):
            self._start(task["taskArn"], params, worker)
        return response

    def _environment(self, task_arn: str, params: Mapping[str, Any]) -> dict[str, str]:
        definition = boto3.client("ecs").describe_task_definition(
            taskDefinition=params["taskDefinition"])["taskDefinition"]
        [container] = [c for c in definition["containerDefinitions"] if c["name"] == "function"]
        [override] = [c for c in params["overrides"]["containerOverrides"] if c["name"] == "function"]
        home = self.root / task_arn.rsplit("/", 1)[-1]  # each task gets a fresh filesystem
        home.mkdir(parents=True)
        env = {
            # What the image and the task role's credentials provide.
            "PATH": os.environ["PATH"], "HOME": str(home),
            "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION,
            "AWS_ENDPOINT_URL": os.environ["AWS_ENDPOINT_URL"],
            **self.image_environment,
        }
        # The agent reads the environment files with the execution role before the container
        # starts; a variable set in `environment` wins over a file's.
        for file in override.get("environmentFiles", []):
            env.update(environment_file(file))
        env.update({e["name"]: e["value"] for e in container.get("environment", [])})
        env.update({e["name"]: e["value"] for e in override.get("environment", [])})
        return env

    def _take_fault(self, function: str) -> Fault | None:
        for fault in self.faults:
            if fault.function == function:
                self.faults.remove(fault)
                return fault
        return None

    def _start(self, task_arn: str, params: Mapping[str, Any], worker: str) -> None:
        env = self._environment(task_arn, params)
        with self._lock:
            fault = self._take_fault(env.get("MULTINODE_FUNCTION", ""))
            if fault is not None and fault.stop_code == FAIL_TO_START:
                self.tasks[task_arn] = LocalTask(task_arn, None, datetime.now(UTC), env, worker,
                                                 stop_code=FAIL_TO_START, ended=True,
                                                 stopped_reason=fault.reason or _AWS_REASONS[FAIL_TO_START])
                return
            self.launch(LocalTask(task_arn, None, datetime.now(UTC), env, worker),
                        "multinode.runtime.fargate_container", stream_name(LOG_STREAM_PREFIX, task_arn), fault)

    def launch(self, task: LocalTask, module: str, stream: str, fault: Fault | None = None) -> LocalTask:
        """Runs `python -m module` as the task's container, its output shipped to `stream`."""
        with self._lock:
            self._logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=stream)
            task.process = subprocess.Popen(
                [sys.executable, "-m", module],
                env=task.environment, cwd=task.environment["HOME"], stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            )
            self.tasks[task.arn] = task
            self.running += 1
            self.peak_running = max(self.peak_running, self.running)
        task.reader = threading.Thread(target=self._capture, args=(task, stream, fault), daemon=True)
        task.reader.start()
        return task

    def _capture(self, task: LocalTask, stream: str, fault: Fault | None) -> None:
        """Ships each line to CloudWatch as it is written, as the awslogs driver does."""
        assert task.process is not None and task.process.stdout is not None
        for raw in task.process.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            task.output.append(line)
            if line:
                self._logs.put_log_events(logGroupName=LOG_GROUP, logStreamName=stream, logEvents=[
                    {"timestamp": int(time.time() * 1000), "message": line}])
            if fault is not None and fault.after_line in line:
                self._interrupt(task, fault.stop_code)
                fault = None
        task.process.wait()
        self._ended(task)

    def _ended(self, task: LocalTask) -> None:
        with self._lock:
            if not task.ended:
                task.ended = True
                self.running -= 1

    def _interrupt(self, task: LocalTask, stop_code: str) -> None:
        """AWS stops the task: SIGTERM, then SIGKILL after the stop timeout."""
        assert task.process is not None
        with self._lock:
            if task.stop_code is not None or task.stop_reason is not None:
                return
            task.stop_code = stop_code
        task.process.send_signal(signal.SIGTERM)
        task.killer = threading.Timer(STOP_TIMEOUT_SECONDS, task.process.kill)
        task.killer.start()

    def describe_task(self, cluster: str, task_arn: str) -> dict[str, Any] | None:
        task = self.tasks.get(task_arn)
        if task is None:
            return self.inner.describe_task(cluster, task_arn)
        if task.process is None:
            return {"taskArn": task_arn, "lastStatus": "STOPPED", "stopCode": task.stop_code,
                    "stoppedReason": task.stopped_reason,
                    "containers": [{"name": task.container, "lastStatus": "STOPPED"}]}
        code = task.process.poll()
        if code is None:
            stopping = task.stop_reason is not None or task.stop_code is not None
            return {"taskArn": task_arn, "lastStatus": "DEACTIVATING" if stopping else "RUNNING",
                    "startedAt": task.started_at, "createdAt": task.started_at,
                    "taskDefinitionArn": task.task_definition, "attachments": self._attachments(task),
                    "containers": [{"name": task.container, "lastStatus": "RUNNING"}]}
        self._ended(task)  # before the worker learns it: its quota slot is free only after this
        if task.killer is not None:
            task.killer.cancel()
        if task.stop_code is not None:
            stop_code, reason = task.stop_code, _AWS_REASONS[task.stop_code]
        elif task.stop_reason is not None:
            stop_code, reason = "UserInitiated", task.stop_reason
        else:
            stop_code, reason = "EssentialContainerExited", "Essential container in task exited"
        return {
            "taskArn": task_arn, "lastStatus": "STOPPED", "startedAt": task.started_at,
            "createdAt": task.started_at, "taskDefinitionArn": task.task_definition,
            "stopCode": stop_code, "stoppedReason": reason,
            # Docker reports death by signal N as 128 + N.
            "containers": [{"name": task.container, "lastStatus": "STOPPED",
                            "exitCode": code if code >= 0 else 128 - code}],
        }

    def describe_tasks(self, cluster: str, task_arns: Sequence[str]) -> dict[str, Any]:
        found = {arn: self.describe_task(cluster, arn) for arn in task_arns}
        return {arn: task for arn, task in found.items() if task is not None}

    def live_tasks(self, cluster: str, started_by: str) -> list[str]:
        with self._lock:
            return [t.arn for t in self.tasks.values()
                    if t.environment.get("MULTINODE_INVOCATION_ID") == started_by
                    and t.process is not None and t.process.poll() is None]

    @staticmethod
    def _attachments(task: LocalTask) -> list[dict[str, Any]]:
        if task.address is None:
            return []
        return [{"type": "ElasticNetworkInterface", "status": "ATTACHED",
                 "details": [{"name": "privateIPv4Address", "value": task.address}]}]

    def stop_task(self, cluster: str, task_arn: str, reason: str) -> None:
        self.inner.stop_task(cluster, task_arn, reason)
        with self._lock:
            self.stops.append(reason)
            task = self.tasks[task_arn]
            if task.stop_reason is not None or task.process is None or task.process.poll() is not None:
                return
            task.stop_reason = reason
        task.process.send_signal(signal.SIGTERM)
        task.killer = threading.Timer(STOP_TIMEOUT_SECONDS, task.process.kill)
        task.killer.start()

    @staticmethod
    def wait_ended(task: LocalTask) -> list[str]:
        """The task's whole output, once its process has ended and every line is shipped."""
        if task.process is not None:
            task.process.wait(timeout=30)
        if task.reader is not None:
            task.reader.join(timeout=10)
        return task.output

    def close(self) -> None:
        for task in list(self.tasks.values()):
            if task.process is not None and task.process.poll() is None:
                task.process.kill()
                task.process.wait(timeout=10)
            if task.killer is not None:
                task.killer.cancel()
            if task.reader is not None:
                task.reader.join(timeout=10)


def environment_file(file: Mapping[str, str]) -> dict[str, str]:
    """One of `environmentFiles`, read and parsed as the ECS agent does: `NAME=VALUE` lines,
    `#` comments and blank lines skipped, nothing unquoted."""
    assert file["type"] == "s3", file
    bucket, key = file["value"].removeprefix("arn:aws:s3:::").split("/", 1)
    body = boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read().decode()
    values = {}
    for line in body.splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name] = value
    return values


class _WorkerSeam(EcsApi):
    def __init__(self, fargate: LocalFargate, worker: str) -> None:
        self.fargate = fargate
        self.worker = worker

    def run_task(self, params: Mapping[str, Any]) -> dict[str, Any]:
        return self.fargate.run_task(params, self.worker)

    def describe_task(self, cluster: str, task_arn: str) -> dict[str, Any] | None:
        return self.fargate.describe_task(cluster, task_arn)

    def describe_tasks(self, cluster: str, task_arns: Sequence[str]) -> dict[str, Any]:
        return self.fargate.describe_tasks(cluster, task_arns)

    def live_tasks(self, cluster: str, started_by: str) -> list[str]:
        return self.fargate.live_tasks(cluster, started_by)

    def stop_task(self, cluster: str, task_arn: str, reason: str) -> None:
        self.fargate.stop_task(cluster, task_arn, reason)
