"""Fargate, played by local processes: when the backend runs a task, `LocalFargate` starts the
function image's entrypoint (`python -m multinode.runtime.fargate_container`) with the environment
the task definition and the overrides give it; StopTask becomes SIGTERM, then SIGKILL after the
stop timeout; describe_tasks reports the process's real state and exit code. moto still validates
and records every ECS call."""

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


@dataclass
class LocalTask:
    process: subprocess.Popen[bytes]
    started_at: datetime
    output: list[str] = field(default_factory=list)
    reader: threading.Thread | None = None
    stop_reason: str | None = None
    killer: threading.Timer | None = None


class LocalFargate(EcsApi):
    """moto validates and records the ECS calls; the tasks themselves run here."""

    def __init__(self, inner: EcsApi, root: Path) -> None:
        self.inner = inner
        self.root = root
        self.tasks: dict[str, LocalTask] = {}
        self.environments: dict[str, dict[str, str]] = {}
        self.stops: list[str] = []

    def run_task(self, params: Mapping[str, Any]) -> dict[str, Any]:
        response = self.inner.run_task(params)
        for task in response.get("tasks", []):
            self._start(task["taskArn"], params)
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
        }
        env.update({e["name"]: e["value"] for e in container.get("environment", [])})
        env.update({e["name"]: e["value"] for e in override.get("environment", [])})
        return env

    def _start(self, task_arn: str, params: Mapping[str, Any]) -> None:
        env = self._environment(task_arn, params)
        self.environments[task_arn] = env
        process = subprocess.Popen(
            [sys.executable, "-m", "multinode.runtime.fargate_container"],
            env=env, cwd=env["HOME"], stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        task = LocalTask(process, datetime.now(UTC))
        task.reader = threading.Thread(target=self._capture, args=(task,), daemon=True)
        task.reader.start()
        self.tasks[task_arn] = task

    @staticmethod
    def _capture(task: LocalTask) -> None:
        assert task.process.stdout is not None
        for line in task.process.stdout:
            task.output.append(line.decode(errors="replace").rstrip("\n"))

    def describe_task(self, cluster: str, task_arn: str) -> dict[str, Any] | None:
        task = self.tasks.get(task_arn)
        if task is None:
            return self.inner.describe_task(cluster, task_arn)
        code = task.process.poll()
        if code is None:
            status = "RUNNING" if task.stop_reason is None else "DEACTIVATING"
            return {"taskArn": task_arn, "lastStatus": status, "startedAt": task.started_at,
                    "containers": [{"name": "function", "lastStatus": "RUNNING"}]}
        if task.killer is not None:
            task.killer.cancel()
        return {
            "taskArn": task_arn, "lastStatus": "STOPPED", "startedAt": task.started_at,
            "stopCode": "UserInitiated" if task.stop_reason else "EssentialContainerExited",
            "stoppedReason": task.stop_reason or "Essential container in task exited",
            # Docker reports death by signal N as 128 + N.
            "containers": [{"name": "function", "lastStatus": "STOPPED",
                            "exitCode": code if code >= 0 else 128 - code}],
        }

    def describe_tasks(self, cluster: str, task_arns: Sequence[str]) -> dict[str, Any]:
        found = {arn: self.describe_task(cluster, arn) for arn in task_arns}
        return {arn: task for arn, task in found.items() if task is not None}

    def live_tasks(self, cluster: str, started_by: str) -> list[str]:
        return [arn for arn, task in self.tasks.items()
                if self.environments[arn].get("MULTINODE_INVOCATION_ID") == started_by and task.process.poll() is None]

    def stop_task(self, cluster: str, task_arn: str, reason: str) -> None:
        self.inner.stop_task(cluster, task_arn, reason)
        self.stops.append(reason)
        task = self.tasks[task_arn]
        if task.stop_reason is not None or task.process.poll() is not None:
            return
        task.stop_reason = reason
        task.process.send_signal(signal.SIGTERM)
        task.killer = threading.Timer(STOP_TIMEOUT_SECONDS, task.process.kill)
        task.killer.start()

    def ship_logs(self, task_arn: str) -> None:
        """Put the task's output where the awslogs driver would: group, prefix/function/id."""
        task = self.tasks[task_arn]
        task.process.wait(timeout=30)
        assert task.reader is not None
        task.reader.join(timeout=10)
        logs = boto3.client("logs")
        stream = stream_name(LOG_STREAM_PREFIX, task_arn)
        logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=stream)
        now = int(time.time() * 1000)
        events = [{"timestamp": now, "message": line} for line in task.output if line]
        if events:
            logs.put_log_events(logGroupName=LOG_GROUP, logStreamName=stream, logEvents=events)

    def close(self) -> None:
        for task in self.tasks.values():
            if task.process.poll() is None:
                task.process.kill()
                task.process.wait(timeout=10)
            if task.killer is not None:
                task.killer.cancel()

