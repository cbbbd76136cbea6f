"""deploy/cloudformation/multinode.yaml's economy and networking (issue 18): the networking choice
and the endpoints it creates, Spot for function tasks, and the bucket's data lifecycle."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from moto import mock_aws

from tests.unit.cloudformation_template import load_template, template_for_moto

REGION = "us-east-1"

pytestmark = [pytest.mark.timeout(60),
              pytest.mark.filterwarnings("ignore:Tried to parse AWS..S3..BucketPolicy:UserWarning")]




def _deploy(monkeypatch: pytest.MonkeyPatch, **chosen: str) -> dict[str, Any]:
    """The stack in moto with the given parameters: its worker's environment, its outputs and
    the VPC endpoints it made."""
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        ec2 = boto3.client("ec2")
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
        table = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
        parameters = {
            "VpcId": vpc, "SubnetIds": subnet, "FunctionImage": "f:1", "WorkerImage": "w:1",
            "TemporalAddress": "t:7233", "TemporalNamespace": "n",
            **{k: v.replace("{route_table}", table) for k, v in chosen.items()},
        }
        cloudformation = boto3.client("cloudformation")
        cloudformation.create_stack(
            StackName="mn", TemplateBody=template_for_moto(),
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
            Capabilities=["CAPABILITY_IAM"],
        )
        stack = cloudformation.describe_stacks(StackName="mn")["Stacks"][0]
        assert stack["StackStatus"] == "CREATE_COMPLETE", stack.get("StackStatusReason")
        ecs = boto3.client("ecs")
        cluster = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}["ClusterName"]
        [service] = ecs.describe_services(cluster=cluster, services=ecs.list_services(cluster=cluster)["serviceArns"])[
            "services"]
        [worker] = ecs.describe_task_definition(taskDefinition=service["taskDefinition"])["taskDefinition"][
            "containerDefinitions"]
        return {
            "env": {e["name"]: e["value"] for e in worker["environment"] if e is not None},
            "outputs": {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]},
            "endpoints": sorted(e["ServiceName"] for e in ec2.describe_vpc_endpoints()["VpcEndpoints"]),
        }


def test_by_default_tasks_get_a_public_ip_and_no_endpoints(monkeypatch: pytest.MonkeyPatch) -> None:
    stack = _deploy(monkeypatch)
    assert stack["env"]["MULTINODE_FARGATE_ASSIGN_PUBLIC_IP"] == "ENABLED"
    service = load_template()["Resources"]["WorkerService"]["Properties"]["NetworkConfiguration"]
    assert service["AwsvpcConfiguration"]["AssignPublicIp"] == {"Fn::If": ["PublicIp", "ENABLED", "DISABLED"]}
    assert stack["outputs"]["Networking"].startswith("PublicSubnets")
    assert stack["endpoints"] == []
    assert stack["env"]["MULTINODE_FARGATE_CAPACITY_PROVIDER"] == "FARGATE"


def test_private_subnets_with_nat_get_no_public_ip(monkeypatch: pytest.MonkeyPatch) -> None:
    stack = _deploy(monkeypatch, Networking="PrivateSubnetsWithNat")
    assert stack["env"]["MULTINODE_FARGATE_ASSIGN_PUBLIC_IP"] == "DISABLED"
    assert stack["outputs"]["Networking"].startswith("PrivateSubnetsWithNat")
    assert stack["endpoints"] == []


def test_private_subnets_with_endpoints_get_every_endpoint_tasks_need(monkeypatch: pytest.MonkeyPatch) -> None:
    stack = _deploy(monkeypatch, Networking="PrivateSubnetsWithEndpoints",
                    PrivateRouteTableIds="{route_table}", FunctionCapacityProvider="FARGATE_SPOT")
    assert stack["env"]["MULTINODE_FARGATE_ASSIGN_PUBLIC_IP"] == "DISABLED"
    # Image pulls (ecr.api, ecr.dkr, layers from s3), logs, and the worker's ECS calls; Secrets
    # Manager only when the stack reads Temporal secrets (none here).
    assert stack["endpoints"] == [f"com.amazonaws.{REGION}.{name}" for name in ("ecr.api", "ecr.dkr", "ecs", "logs", "s3")]
    assert stack["env"]["MULTINODE_FARGATE_CAPACITY_PROVIDER"] == "FARGATE_SPOT"


def test_endpoints_without_route_tables_are_refused_at_the_door() -> None:
    rule = load_template()["Rules"]["EndpointsNeedRouteTables"]
    assert rule["RuleCondition"] == {"Fn::Equals": [{"Ref": "Networking"}, "PrivateSubnetsWithEndpoints"]}
    assert rule["Assertions"][0]["Assert"] == {"Fn::Not": [{"Fn::Contains": [{"Ref": "PrivateRouteTableIds"}, ""]}]}


def test_the_endpoints_accept_https_from_the_tasks_only() -> None:
    group = load_template()["Resources"]["EndpointSecurityGroup"]["Properties"]
    [ingress] = group["SecurityGroupIngress"]
    assert (ingress["FromPort"], ingress["ToPort"]) == (443, 443)
    assert ingress["SourceSecurityGroupId"] == {"Fn::GetAtt": ["TaskSecurityGroup", "GroupId"]}


def test_run_documents_expire_and_are_not_versioned() -> None:
    bucket = load_template()["Resources"]["PackagesBucket"]["Properties"]
    assert bucket["VersioningConfiguration"] == {"Status": "Suspended"}
    rules = {r["Id"]: r for r in bucket["LifecycleConfiguration"]["Rules"]}
    assert rules["expire-runs"]["Prefix"] == "runs/"
    assert rules["expire-runs"]["ExpirationInDays"] == {"Ref": "RunsRetentionDays"}
    assert rules["expire-old-versions"]["NoncurrentVersionExpiration"] == {"NoncurrentDays": 1}
    # Packages never expire: a deployed version needs its package as long as it is deployed.
    assert all(not r.get("Prefix", "").startswith("packages") for r in rules.values())
    # An attempt runs for up to 24 hours: its documents must outlive it.
    assert load_template()["Parameters"]["RunsRetentionDays"]["MinValue"] >= 2
