"""Stand-ins shared by the Fargate backend's unit tests and its end-to-end harness: the attempt
session a Temporal activity would give the backend, and the network a stack would create in moto."""

from __future__ import annotations

import boto3

from multinode.contract.records import AttemptProgress


class FakeSession:
    """Records what the backend reports; `reason` is what an interruption says it was."""

    def __init__(self, reason: str = "cancel") -> None:
        self.reason = reason
        self.heartbeats: list[AttemptProgress] = []
        self.started: list[float] = []

    def heartbeat(self, progress: AttemptProgress) -> None:
        self.heartbeats.append(progress)

    async def notify_started(self, started_at: float) -> None:
        self.started.append(started_at)

    def interruption(self) -> str:
        return self.reason


def moto_network() -> tuple[str, str]:
    """A VPC with one subnet and one security group in the current boto3 endpoint; returns
    (subnet id, security group id)."""
    ec2 = boto3.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="tasks", Description="tasks", VpcId=vpc)["GroupId"]
    return subnet, group
