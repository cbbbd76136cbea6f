"""A moto server standing in for AWS (S3, ECS, EC2, CloudWatch Logs) on a free 127.0.0.1 port,
and the resources deploy/cloudformation/multinode.yaml would create in it, for the Fargate
harness."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3

from temporal_workers.backends.fargate.config import LOG_STREAM_PREFIX
from tests.fargate_doubles import moto_network

REGION = "us-east-1"
BUCKET = "multinode-harness"
CLUSTER = "multinode"
LOG_GROUP = "/multinode/test/functions"
NAMESPACE = "multinode.internal"


def _free_port() -> int:
    # Probed and released, not held: moto_server binds its port itself and takes no socket, and
    # port 0 would not do (moto builds the URLs in its answers from the port it was given).
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for_server(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto_server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/moto-api/", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("moto_server did not become ready")


@contextlib.contextmanager
def running_moto_server(log_path: Path) -> Iterator[str]:
    """A moto server while the block runs; boto3 in this process points at it (its URL is
    yielded) with test credentials, and the environment is restored afterwards."""
    port = _free_port()
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
            stdout=log, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    credentials = {
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION, "AWS_ENDPOINT_URL": url,
    }
    saved = {name: os.environ.get(name) for name in credentials}
    os.environ.update(credentials)
    try:
        _wait_for_server(url, server)
        yield url
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()


@dataclass(frozen=True)
class Stack:
    environ: dict[str, str]


def create_stack(moto_url: str) -> Stack:
    """What deploy/cloudformation/multinode.yaml creates, made directly in moto."""
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    subnet, group = moto_network()
    ecs = boto3.client("ecs")
    ecs.create_cluster(clusterName=CLUSTER)
    definition = ecs.register_task_definition(
        family="multinode-function", requiresCompatibilities=["FARGATE"], networkMode="awsvpc",
        cpu="256", memory="512",
        containerDefinitions=[{
            "name": "function", "image": "multinode-function:test", "essential": True,
            "stopTimeout": 120, "memoryReservation": 128,
            "environment": [{"name": "LANG", "value": "C.UTF-8"}],
            "logConfiguration": {"logDriver": "awslogs", "options": {
                "awslogs-group": LOG_GROUP, "awslogs-region": REGION,
                "awslogs-stream-prefix": LOG_STREAM_PREFIX,
            }},
        }],
    )["taskDefinition"]["taskDefinitionArn"]
    boto3.client("logs").create_log_group(logGroupName=LOG_GROUP)
    secrets_key = boto3.client("kms").create_key(Description="multinode secrets")["KeyMetadata"]["Arn"]
    namespace_id = _service_namespace(subnet)
    return Stack({
        "MULTINODE_SECRETS_KMS_KEY": secrets_key,
        "MULTINODE_FARGATE_SERVICE_NAMESPACE_ID": namespace_id,
        "MULTINODE_FARGATE_SERVICE_NAMESPACE": NAMESPACE,
        "MULTINODE_FARGATE_CLUSTER": CLUSTER,
        "MULTINODE_FARGATE_TASK_DEFINITION": definition,
        "MULTINODE_FARGATE_SUBNETS": subnet,
        "MULTINODE_FARGATE_SECURITY_GROUPS": group,
        "MULTINODE_FARGATE_ASSIGN_PUBLIC_IP": "DISABLED",
        "MULTINODE_PACKAGE_STORE": f"s3://{BUCKET}/store",
        "MULTINODE_FUNCTION_LOG_GROUP": LOG_GROUP,
        "AWS_ENDPOINT_URL": moto_url,
    })


def _service_namespace(subnet: str) -> str:
    """The stack's Cloud Map private DNS namespace for services, in the tasks' VPC."""
    vpc = boto3.client("ec2").describe_subnets(SubnetIds=[subnet])["Subnets"][0]["VpcId"]
    discovery = boto3.client("servicediscovery")
    discovery.create_private_dns_namespace(Name=NAMESPACE, Vpc=vpc)
    [namespace] = [n for n in discovery.list_namespaces()["Namespaces"] if n["Name"] == NAMESPACE]
    return str(namespace["Id"])
