"""What ECS is asked for a service: the names of its ECS and Cloud Map services, its task
definition (one per project, service and version), and the CreateService / UpdateService calls.

The task definition copies the function task definition's image, roles, secrets and log
configuration (so the stack defines them once), with the service's own size, port mapping,
environment and entrypoint (`multinode.runtime.fargate_service`). The ECS service keeps one task
running; its deployment settings (at least 100 % healthy, at most 200 %) make an upgrade start
the new version's task before ECS stops the old one.
"""

from __future__ import annotations

import hashlib
from typing import Any

from multinode.contract.connection import connection_environment
from multinode.contract.service_state import ServiceTarget, service_stream_prefix
from multinode.runtime import service as _service_runtime
from multinode.runtime.fargate_run import ENV_PACKAGE_SHA256, ENV_PACKAGE_URI, ENV_REQUIREMENTS_SHA256
from multinode.storage.secrets import s3_object_arn
from temporal_workers.backends.fargate.config import CONTAINER_NAME, FargateConfig
from temporal_workers.backends.fargate.service_ecs import DiscoveryConfig
from temporal_workers.backends.fargate.sizes import smallest_fargate_size
from temporal_workers.settings import WorkerSettings

Json = dict[str, Any]

SERVICE_CONTAINER = "service"
ENTRYPOINT = ["python", "-m", "multinode.runtime.fargate_service"]
ENV_VERSION = "MULTINODE_VERSION_ID"


def ecs_service_name(project_name: str, service_name: str) -> str:
    """Readable, and unambiguous although both names may hold '-' (the digest of the pair)."""
    digest = hashlib.sha256(f"{project_name}\0{service_name}".encode()).hexdigest()[:8]
    return f"mn-{project_name}-{service_name}-{digest}"


def discovery_name(project_name: str, service_name: str) -> str:
    """The Cloud Map service: `S.P`, so its DNS name is `S.P.<namespace>` (names hold no dots)."""
    return f"{service_name}.{project_name}"


def service_address(target: ServiceTarget, discovery: DiscoveryConfig) -> str:
    name = discovery_name(target.project_name, target.spec.name)
    return f"http://{name}.{discovery.namespace_name}:{target.spec.port}"


def version_of(definition: Json) -> str | None:
    """The version a service task definition runs (None for any other task definition)."""
    for container in definition.get("containerDefinitions") or []:
        if container.get("name") == SERVICE_CONTAINER:
            for variable in container.get("environment") or []:
                if variable.get("name") == ENV_VERSION:
                    return str(variable.get("value"))
    return None


def service_environment(target: ServiceTarget, settings: WorkerSettings) -> dict[str, str]:
    """What the service's entrypoint is told; the key and TLS material come from the secrets the
    task definition copies from the function's."""
    public, _secret = connection_environment(settings.connection)
    env = {
        "PYTHONUNBUFFERED": "1",
        **public,
        "MULTINODE_PROJECT": target.project_name,
        ENV_VERSION: target.version_id,
        _service_runtime.ENV_SERVICE: target.spec.name,
        _service_runtime.ENV_PORT: str(target.spec.port),
        ENV_PACKAGE_URI: target.package.uri,
        ENV_PACKAGE_SHA256: target.package.sha256,
    }
    if target.requirements_sha256:
        env[ENV_REQUIREMENTS_SHA256] = target.requirements_sha256
    return env


def task_definition_params(target: ServiceTarget, base: Json, settings: WorkerSettings) -> Json:
    """RegisterTaskDefinition's parameters, from the function task definition `base`."""
    [function] = [c for c in base["containerDefinitions"] if c["name"] == CONTAINER_NAME]
    spec = target.spec
    size = smallest_fargate_size(spec.cpu, spec.memory_mib)
    environment = {e["name"]: e["value"] for e in function.get("environment") or []}
    environment.update(service_environment(target, settings))
    container: Json = {
        "name": SERVICE_CONTAINER,
        "image": function["image"],
        "essential": True,
        "entryPoint": ENTRYPOINT,
        "portMappings": [{"containerPort": spec.port, "protocol": "tcp"}],
        # ECS counts the task healthy (the deployment stops the old one, a failing one is
        # replaced) only once its port accepts connections, as the worker's own watch does.
        "healthCheck": {
            "command": ["CMD", "python", "-c",
                        f"import socket; socket.create_connection(('127.0.0.1', {spec.port}), 2).close()"],
            "interval": 10, "timeout": 5, "retries": 3,
            "startPeriod": min(300, max(0, int(settings.service_start_seconds))),
        },
        "environment": [{"name": k, "value": v} for k, v in sorted(environment.items())],
    }
    for copied in ("secrets", "stopTimeout", "memoryReservation", "ulimits", "linuxParameters"):
        if function.get(copied) is not None:
            container[copied] = function[copied]
    if target.secrets_uri:
        # The project's .env, read by ECS's agent with the execution role, as for functions.
        container["environmentFiles"] = [{"value": s3_object_arn(target.secrets_uri), "type": "s3"}]
    logging = function.get("logConfiguration")
    if logging is not None:
        options = {**logging.get("options", {}),
                   "awslogs-stream-prefix": service_stream_prefix(target.project_name, spec.name)}
        container["logConfiguration"] = {**logging, "options": options}
    params: Json = {
        "family": ecs_service_name(target.project_name, spec.name),
        "requiresCompatibilities": ["FARGATE"],
        "networkMode": "awsvpc",
        "cpu": size.cpu,
        "memory": size.memory,
        "containerDefinitions": [container],
        "tags": [{"key": "multinode:project", "value": target.project_name},
                 {"key": "multinode:service", "value": spec.name},
                 {"key": "multinode:version", "value": target.version_id}],
    }
    for copied in ("executionRoleArn", "taskRoleArn", "runtimePlatform", "ephemeralStorage"):
        if base.get(copied):
            params[copied] = base[copied]
    return params


def _deployment() -> Json:
    # New before old on every deployment; a task that never gets healthy rolls back.
    return {"minimumHealthyPercent": 100, "maximumPercent": 200,
            "deploymentCircuitBreaker": {"enable": True, "rollback": True}}


def create_service_params(target: ServiceTarget, config: FargateConfig, task_definition: str,
                          registry_arn: str) -> Json:
    return {
        "cluster": config.cluster,
        "serviceName": ecs_service_name(target.project_name, target.spec.name),
        "taskDefinition": task_definition,
        "desiredCount": 1,
        "launchType": "FARGATE",
        "deploymentConfiguration": _deployment(),
        "networkConfiguration": {"awsvpcConfiguration": {
            "subnets": list(config.subnets),
            "securityGroups": list(config.security_groups),
            "assignPublicIp": config.assign_public_ip,
        }},
        "serviceRegistries": [{"registryArn": registry_arn}],
        "propagateTags": "SERVICE",
        "enableECSManagedTags": True,
        "tags": [{"key": "multinode:project", "value": target.project_name},
                 {"key": "multinode:service", "value": target.spec.name}],
    }


def update_service_params(target: ServiceTarget, config: FargateConfig, task_definition: str) -> Json:
    return {
        "cluster": config.cluster,
        "service": ecs_service_name(target.project_name, target.spec.name),
        "taskDefinition": task_definition,
        "desiredCount": 1,
        "deploymentConfiguration": _deployment(),
    }
