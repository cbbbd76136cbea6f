"""ECS's service scheduler and Cloud Map, played over moto for the Fargate harness.

moto validates and records CreateService / UpdateService / DeleteService and the Cloud Map
calls, but starts no task for a service (and cannot list a service's tasks). `LocalEcsServices`
does what ECS would, with `LocalFargate`'s task processes (`python -m
multinode.runtime.fargate_service`, the service task definition's entrypoint):
- keeps one task of the service's current task definition running: a task that exits is
  replaced (ECS's restart of a stopped task);
- on UpdateService, starts the new task definition's task and stops the old one only once the
  new one's port accepts connections (minimumHealthyPercent 100 with the container health check);
- on DeleteService, stops every task (SIGTERM, then the kill after the stop timeout);
- registers each task's address in the service's Cloud Map service while it runs, as ECS does.

Each task gets its own loopback address (127.0.0.N, in `ECS_HARNESS_TASK_IP`), standing for the network
interface awsvpc gives each task: old and new tasks of an upgrade listen on the same port at once.
"""

from __future__ import annotations

import itertools
import os
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import boto3

from temporal_workers.backends.fargate.service_definition import SERVICE_CONTAINER
from temporal_workers.backends.fargate.service_ecs import ServiceEcsApi
from tests.e2e.local_fargate import LocalFargate, LocalTask, environment_file
from tests.e2e.moto_stack import REGION

TICK_SECONDS = 0.1
_FIRST_ADDRESS = 20  # 127.0.0.20 and up


@dataclass
class PlayedService:
    name: str
    task_definition: str
    params: dict[str, Any]
    registry_id: str
    port: int
    environment: dict[str, str]
    stream_prefix: str
    deleted: bool = False
    tasks: list[LocalTask] = field(default_factory=list)
    deregistered: set[str] = field(default_factory=set)
    started: int = 0  # tasks started for it, replacements included


class LocalEcsServices:
    def __init__(self, fargate: LocalFargate, inner: ServiceEcsApi) -> None:
        self.fargate = fargate
        self.inner = inner
        self.services: dict[str, PlayedService] = {}
        self._addresses = itertools.count(_FIRST_ADDRESS)
        self._lock = threading.RLock()
        self._closed = threading.Event()
        self.errors: list[Exception] = []
        self._discovery = boto3.client("servicediscovery")
        self._ecs = boto3.client("ecs")
        self._thread = threading.Thread(target=self._schedule, name="ecs-scheduler", daemon=True)
        self._thread.start()

    def seam(self) -> ServiceEcsApi:
        return _Seam(self)

    def live_tasks(self, service: str) -> list[LocalTask]:
        with self._lock:
            played = self.services.get(service)
            return [] if played is None else [t for t in played.tasks if not _ended(t)]

    # ----- ECS's calls ----------------------------------------------------------------------

    def create_service(self, params: Mapping[str, Any]) -> None:
        self.inner.create_service(params)
        with self._lock:
            self.services[params["serviceName"]] = self._played(params["serviceName"], params["taskDefinition"],
                                                                dict(params))

    def update_service(self, params: Mapping[str, Any]) -> None:
        self.inner.update_service(params)
        with self._lock:
            old = self.services[params["service"]]
            new = self._played(old.name, params["taskDefinition"], old.params)
            new.tasks, new.started, new.deregistered = old.tasks, old.started, old.deregistered
            self.services[old.name] = new

    def delete_service(self, cluster: str, name: str) -> None:
        self.inner.delete_service(cluster, name)
        with self._lock:
            played = self.services.get(name)
            if played is not None:
                played.deleted = True
                for task in played.tasks:
                    self._stop(played, task, "ECS service deleted")

    def service_tasks(self, cluster: str, name: str) -> list[dict[str, Any]]:
        with self._lock:
            played = self.services.get(name)
            tasks = [] if played is None else [t for t in played.tasks if not _ended(t)]
        return [self.fargate.describe_task(cluster, t.arn) or {"taskArn": t.arn} for t in tasks]

    def describe_task(self, cluster: str, task_arn: str) -> dict[str, Any] | None:
        return self.fargate.describe_task(cluster, task_arn)

    def stop_task(self, cluster: str, task_arn: str, reason: str) -> None:
        self.fargate.stop_task(cluster, task_arn, reason)

    # ----- the scheduler ----------------------------------------------------------------------

    def _played(self, name: str, task_definition: str, params: dict[str, Any]) -> PlayedService:
        definition = self._ecs.describe_task_definition(taskDefinition=task_definition)["taskDefinition"]
        [container] = [c for c in definition["containerDefinitions"] if c["name"] == SERVICE_CONTAINER]
        registry_arn = params["serviceRegistries"][0]["registryArn"]
        return PlayedService(name, definition["taskDefinitionArn"], params, registry_arn.rsplit("/", 1)[-1],
                             int(container["portMappings"][0]["containerPort"]),
                             _container_environment(container),
                             str(container["logConfiguration"]["options"]["awslogs-stream-prefix"]))

    def _schedule(self) -> None:
        while not self._closed.wait(TICK_SECONDS):
            with self._lock:
                for played in list(self.services.values()):
                    if not played.deleted:
                        try:
                            self._converge(played)
                        except Exception as exc:  # raised again by close(): the test fails on it
                            self.errors.append(exc)

    def _converge(self, played: PlayedService) -> None:
        live = [t for t in played.tasks if not _ended(t) and t.stop_reason is None]
        for task in played.tasks:
            if _ended(task) and task.arn not in played.deregistered:
                played.deregistered.add(task.arn)
                self._discovery.deregister_instance(ServiceId=played.registry_id,
                                                    InstanceId=task.arn.rsplit("/", 1)[-1])
        current = [t for t in live if t.task_definition == played.task_definition]
        if not current:
            self._start(played)
            return
        if any(_accepts(t.address, played.port) for t in current):
            for task in live:
                if task.task_definition != played.task_definition:
                    self._stop(played, task, "ECS deployment: replaced by a newer task definition")

    def _start(self, played: PlayedService) -> None:
        params = played.params
        response = self.fargate.inner.run_task({
            "cluster": params["cluster"], "taskDefinition": played.task_definition, "launchType": "FARGATE",
            "count": 1, "networkConfiguration": params["networkConfiguration"],
            "startedBy": f"ecs-svc/{played.name}"[:36],
        })
        [described] = response["tasks"]
        arn = described["taskArn"]
        address = f"127.0.0.{next(self._addresses)}"
        home = self.fargate.root / arn.rsplit("/", 1)[-1]
        home.mkdir(parents=True)
        env = {
            "PATH": os.environ["PATH"], "HOME": str(home),
            "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION,
            "AWS_ENDPOINT_URL": os.environ["AWS_ENDPOINT_URL"],
            "ECS_HARNESS_TASK_IP": address,
            **self.fargate.image_environment,
            **played.environment,
        }
        task = LocalTask(arn, None, datetime.now(UTC), env, "ecs", container=SERVICE_CONTAINER,
                         task_definition=played.task_definition, address=address)
        stream = f"{played.stream_prefix}/{SERVICE_CONTAINER}/{arn.rsplit('/', 1)[-1]}"
        self.fargate.launch(task, "multinode.runtime.fargate_service", stream)
        played.tasks.append(task)
        played.started += 1
        self._discovery.register_instance(ServiceId=played.registry_id, InstanceId=arn.rsplit("/", 1)[-1],
                                          Attributes={"AWS_INSTANCE_IPV4": address,
                                                      "AWS_INSTANCE_PORT": str(played.port)})

    def _stop(self, played: PlayedService, task: LocalTask, reason: str) -> None:
        if not _ended(task):
            self.fargate.stop_task(played.params["cluster"], task.arn, reason)

    def close(self) -> None:
        self._closed.set()
        self._thread.join(timeout=10)
        if self.errors:
            raise self.errors[0]


def _ended(task: LocalTask) -> bool:
    return task.process is None or task.process.poll() is not None


def _accepts(address: str | None, port: int) -> bool:
    if address is None:
        return False
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((address, port)) == 0


class _Seam(ServiceEcsApi):
    """The worker's ServiceEcsApi: task definitions and Cloud Map go to moto, services to the
    played scheduler."""

    def __init__(self, played: LocalEcsServices) -> None:
        super().__init__(boto3.client("ecs"), boto3.client("servicediscovery"), boto3.client("logs"))
        self.played = played

    def create_service(self, params: Mapping[str, Any]) -> None:
        self.played.create_service(params)

    def update_service(self, params: Mapping[str, Any]) -> None:
        self.played.update_service(params)

    def delete_service(self, cluster: str, name: str) -> None:
        self.played.delete_service(cluster, name)

    def service_tasks(self, cluster: str, name: str) -> list[dict[str, Any]]:
        return self.played.service_tasks(cluster, name)

    def describe_task(self, cluster: str, task_arn: str) -> dict[str, Any] | None:
        return self.played.describe_task(cluster, task_arn)

    def stop_task(self, cluster: str, task_arn: str, reason: str) -> None:
        self.played.stop_task(cluster, task_arn, reason)


def _container_environment(container: dict[str, Any]) -> dict[str, str]:
    """What ECS's agent gives the container: its environment files (read with the execution
    role), then its `environment`, which wins."""
    env: dict[str, str] = {}
    for file in container.get("environmentFiles", []):
        env.update(environment_file(file))
    env.update({e["name"]: e["value"] for e in container.get("environment", [])})
    return env
