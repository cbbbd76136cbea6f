"""The seam of services on Fargate: the ECS and Cloud Map calls the backend makes for them, as
plain dicts, and where services run (the Cloud Map namespace, from the worker's environment).
Tests replace `ServiceEcsApi` (the harness plays ECS's service scheduler behind it)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_ecs import ECSClient
    from mypy_boto3_logs import CloudWatchLogsClient

Json = dict[str, Any]

ENV_NAMESPACE_ID = "MULTINODE_FARGATE_SERVICE_NAMESPACE_ID"
ENV_NAMESPACE_NAME = "MULTINODE_FARGATE_SERVICE_NAMESPACE"


@dataclass(frozen=True)
class DiscoveryConfig:
    """The Cloud Map private DNS namespace services are registered in
    (deploy/cloudformation/multinode.yaml creates it)."""

    namespace_id: str
    namespace_name: str


def load_discovery_config(environ: Mapping[str, str]) -> DiscoveryConfig | None:
    """The namespace, or None when the worker was given none (its stack predates services)."""
    namespace_id = environ.get(ENV_NAMESPACE_ID, "").strip()
    namespace_name = environ.get(ENV_NAMESPACE_NAME, "").strip()
    if not namespace_id or not namespace_name:
        return None
    return DiscoveryConfig(namespace_id, namespace_name)


class ServiceEcsApi:
    """ECS services, their tasks and task definitions, and Cloud Map services."""

    def __init__(self, ecs: ECSClient, discovery: Any, logs: CloudWatchLogsClient) -> None:
        self._ecs = ecs
        self._discovery = discovery  # no type stubs for servicediscovery are installed
        self._logs = logs

    @classmethod
    def connect(cls, endpoint_url: str | None = None) -> ServiceEcsApi:
        endpoint = endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None
        return cls(boto3.client("ecs", endpoint_url=endpoint),
                   boto3.client("servicediscovery", endpoint_url=endpoint),
                   boto3.client("logs", endpoint_url=endpoint))

    # ----- task definitions ----------------------------------------------------------------

    def describe_task_definition(self, name: str) -> Json:
        return dict(self._ecs.describe_task_definition(taskDefinition=name)["taskDefinition"])

    def register_task_definition(self, params: Mapping[str, Any]) -> str:
        response = self._ecs.register_task_definition(**params)
        return str(response["taskDefinition"]["taskDefinitionArn"])

    # ----- ECS services -----------------------------------------------------------------------

    def describe_service(self, cluster: str, name: str) -> Json | None:
        """The ECS service, or None when there is none (or only a deleted one)."""
        response = self._ecs.describe_services(cluster=cluster, services=[name])
        for service in response.get("services") or []:
            if service.get("status") != "INACTIVE":
                return dict(service)
        return None

    def create_service(self, params: Mapping[str, Any]) -> None:
        self._ecs.create_service(**params)

    def update_service(self, params: Mapping[str, Any]) -> None:
        self._ecs.update_service(**params)

    def delete_service(self, cluster: str, name: str) -> None:
        self._ecs.delete_service(cluster=cluster, service=name, force=True)

    def service_tasks(self, cluster: str, name: str) -> list[Json]:
        """The ECS service's tasks that ECS still wants running (a stopped one drops out)."""
        arns = self._ecs.list_tasks(cluster=cluster, serviceName=name, desiredStatus="RUNNING").get("taskArns") or []
        if not arns:
            return []
        # One call for all of them (a service has one task, two during a deployment).
        return [dict(task) for task in self._ecs.describe_tasks(cluster=cluster, tasks=arns[:100]).get("tasks") or []]

    def describe_task(self, cluster: str, task_arn: str) -> Json | None:
        tasks = self._ecs.describe_tasks(cluster=cluster, tasks=[task_arn]).get("tasks") or []
        return dict(tasks[0]) if tasks else None

    def stop_task(self, cluster: str, task_arn: str, reason: str) -> None:
        self._ecs.stop_task(cluster=cluster, task=task_arn, reason=reason)

    # ----- Cloud Map ----------------------------------------------------------------------------

    def discovery_service(self, namespace_id: str, name: str, create: bool = True) -> str | None:
        """The ARN of the Cloud Map service `name` in the namespace, created if missing (an A
        record per task: ECS registers each task's address as it starts) unless not `create`."""
        filters: Any = [{"Name": "NAMESPACE_ID", "Values": [namespace_id], "Condition": "EQ"}]
        for page in self._discovery.get_paginator("list_services").paginate(Filters=filters):
            for service in page.get("Services") or []:
                if service.get("Name") == name:
                    return str(service["Arn"])
        if not create:
            return None
        created = self._discovery.create_service(
            Name=name, NamespaceId=namespace_id,
            DnsConfig={"RoutingPolicy": "MULTIVALUE", "DnsRecords": [{"Type": "A", "TTL": 10}]},
            HealthCheckCustomConfig={"FailureThreshold": 1},
        )
        return str(created["Service"]["Arn"])

    def delete_discovery_service(self, service_arn: str) -> None:
        self._discovery.delete_service(Id=service_arn.rsplit("/", 1)[-1])

    # ----- CloudWatch Logs ------------------------------------------------------------------------

    def log_tail(self, log_group: str, stream: str, lines: int) -> str:
        """The last lines of a task's log stream ("" when there is none yet)."""
        try:
            events = self._logs.get_log_events(logGroupName=log_group, logStreamName=stream,
                                               limit=lines, startFromHead=False)["events"]
        except ClientError:
            return ""
        return "".join(f"{event['message']}\n" for event in events)
