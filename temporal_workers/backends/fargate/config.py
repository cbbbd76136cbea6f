"""The Fargate backend's configuration: where its tasks run (from the worker's environment), and
how often and how patiently it looks at them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from multinode.errors import InvalidOptionError
from multinode.runtime.fargate_run import PROGRESS_INTERVAL_SECONDS

# The function task definition must agree on these: the container the overrides address, and
# the prefix of its awslogs streams (`multinode logs` reads them).
CONTAINER_NAME = "function"
LOG_STREAM_PREFIX = "multinode"
CAPACITY_PROVIDERS = ("FARGATE", "FARGATE_SPOT")


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
    # Where function tasks run: FARGATE (on-demand) or FARGATE_SPOT (up to 70% cheaper, and
    # AWS may reclaim a task with two minutes' notice: the engine retries it, uncounted).
    capacity_provider: str = "FARGATE"


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
    capacity = environ.get("MULTINODE_FARGATE_CAPACITY_PROVIDER", "").strip().upper() or "FARGATE"
    if capacity not in CAPACITY_PROVIDERS:
        raise InvalidOptionError(
            f"MULTINODE_FARGATE_CAPACITY_PROVIDER={capacity!r}: use {' or '.join(CAPACITY_PROVIDERS)}"
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
        capacity_provider=capacity,
    )


@dataclass(frozen=True)
class Timings:
    """How often the backend looks, and how patient it is. Tests shrink these."""

    # How often the worker's one DescribeTasks call (for all its tasks) is made: ECS's read
    # rate limit is shared by all attempts.
    describe_interval: float = 2.0
    # How often the container writes a changed yield and the worker reads it (a conditional
    # GET: unchanged costs no transfer, but each look is a request).
    progress_interval: float = PROGRESS_INTERVAL_SECONDS
    # How often the supervisor offers a heartbeat; the attempt's pacer decides which go out.
    tick: float = 0.25
    # Waits between RunTask tries on throttling, server errors and capacity shortage.
    launch_delays: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
    # ECS is eventually consistent: a task just launched may not be visible for a while.
    visibility_grace: float = 60.0
    # How long an engine retry waits for the tasks a lost run left to stop: Fargate's longest
    # stop timeout (120 s), and room for ECS to report it.
    fence_timeout: float = 180.0
    # Provisioning and image pulls on Fargate take up to a few minutes; far beyond is a stuck task.
    start_timeout: float = 900.0
    # Added to the function's timeout before the worker stops the task, so that the container,
    # counting from its own start on another clock, surely agrees the deadline has passed.
    timeout_margin: float = 1.0
