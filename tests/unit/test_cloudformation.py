"""deploy/cloudformation/multinode.yaml: lint clean, deployable in moto, safe settings."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tests.unit.cloudformation_template import TEMPLATE, load_template, template_for_moto

REGION = "us-east-1"

EXPECTED_OUTPUTS = {
    "ClusterName",
    "PackagesBucketName",
    "PackageStore",
    "SecretsKmsKeyArn",
    "FunctionTaskDefinitionArn",
    "SecurityGroupId",
    "FunctionLogGroupName",
    "WorkerLogGroupName",
    "Networking",
    "ServiceNamespaceId",
}


def _cfn_lint(*paths: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("cfn-lint")
    command = str(exe) if exe.exists() else shutil.which("cfn-lint")
    if command is None:
        pytest.fail("cfn-lint is not installed (it is a dev dependency)")
    return subprocess.run(
        [command, "--format", "parseable", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )




def _resources_of_type(template: Any, type_name: str) -> dict[str, Any]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == type_name}


def _container(template: Any, name: str) -> dict[str, Any]:
    for definition in _resources_of_type(template, "AWS::ECS::TaskDefinition").values():
        for container in definition["Properties"]["ContainerDefinitions"]:
            if container["Name"] == name:
                return dict(container)
    raise AssertionError(f"no container named {name!r}")


def _task_definition_with(template: Any, container_name: str) -> dict[str, Any]:
    for definition in _resources_of_type(template, "AWS::ECS::TaskDefinition").values():
        names = [c["Name"] for c in definition["Properties"]["ContainerDefinitions"]]
        if container_name in names:
            return dict(definition["Properties"])
    raise AssertionError(f"no task definition runs {container_name!r}")


@pytest.mark.timeout(60)
def test_cfn_lint_reports_nothing() -> None:
    result = _cfn_lint(TEMPLATE)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


@pytest.mark.timeout(60)
def test_cfn_lint_catches_an_invalid_fargate_size(tmp_path: Path) -> None:
    # Proves the lint test above is able to fail on this template.
    broken = tmp_path / "broken.yaml"
    text = TEMPLATE.read_text()
    assert 'Cpu: "256"\n      Memory: "512"' in text
    broken.write_text(
        text.replace(
            'Cpu: "256"\n      Memory: "512"', 'Cpu: "8192"\n      Memory: "65536"'
        )
    )
    result = _cfn_lint(broken)
    assert result.returncode != 0
    assert "E3047" in result.stdout


@pytest.mark.timeout(10)
def test_function_container_settings() -> None:
    template = load_template()
    task = _task_definition_with(template, "function")
    assert task["RequiresCompatibilities"] == ["FARGATE"]
    assert task["NetworkMode"] == "awsvpc"
    assert (task["Cpu"], task["Memory"]) == ("256", "512")

    container = _container(template, "function")
    assert container["StopTimeout"] == 120
    assert container["LinuxParameters"]["InitProcessEnabled"] is True
    # A hard container limit would cap the task size chosen per call by overrides.
    assert "Memory" not in container
    assert container["MemoryReservation"] == 128
    log = container["LogConfiguration"]
    assert log["LogDriver"] == "awslogs"
    assert log["Options"]["mode"] == "blocking"
    assert log["Options"]["awslogs-stream-prefix"] == "multinode"


@pytest.mark.timeout(10)
def test_worker_passes_exactly_the_function_roles() -> None:
    template = load_template()
    function_task = _task_definition_with(template, "function")
    worker_task = _task_definition_with(template, "worker")
    worker_role = template["Resources"][worker_task["TaskRoleArn"]["Fn::GetAtt"][0]]

    passed: list[Any] = []
    for policy in worker_role["Properties"]["Policies"]:
        for statement in policy["PolicyDocument"]["Statement"]:
            actions = statement["Action"]
            if "iam:PassRole" in ([actions] if isinstance(actions, str) else actions):
                passed.extend(statement["Resource"])
    expected = [function_task["ExecutionRoleArn"], function_task["TaskRoleArn"]]
    assert sorted(map(str, passed)) == sorted(map(str, expected))


@pytest.mark.timeout(10)
def test_function_task_role_reads_packages_and_writes_only_its_runs() -> None:
    template = load_template()
    function_task = _task_definition_with(template, "function")
    role = template["Resources"][function_task["TaskRoleArn"]["Fn::GetAtt"][0]]
    statements = [
        s
        for p in role["Properties"]["Policies"]
        for s in p["PolicyDocument"]["Statement"]
    ]
    assert [s["Action"] for s in statements] == ["s3:GetObject", "s3:PutObject", "s3:ListBucket"]
    assert [s["Resource"] for s in statements] == [
        [{"Fn::Sub": "${PackagesBucket.Arn}/packages/*"}, {"Fn::Sub": "${PackagesBucket.Arn}/environments/*"},
         {"Fn::Sub": "${PackagesBucket.Arn}/runs/*"}],
        {"Fn::Sub": "${PackagesBucket.Arn}/runs/*"},
        # Listing (names only) lets S3 answer 404 for a missing package instead of 403.
        {"Fn::GetAtt": ["PackagesBucket", "Arn"]},
    ]
    assert "ManagedPolicyArns" not in role["Properties"]


@pytest.mark.timeout(10)
def test_only_the_function_execution_role_reads_and_decrypts_the_projects_env_files() -> None:
    template = load_template()
    resources = template["Resources"]
    execution = _task_definition_with(template, "function")["ExecutionRoleArn"]["Fn::GetAtt"][0]
    [files] = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::IAM::Policy"
               and r["Properties"]["PolicyName"] == "read-project-environment-files"]
    assert files["Roles"] == [{"Ref": execution}]
    statements = {s["Action"]: s["Resource"] for s in files["PolicyDocument"]["Statement"]}
    assert statements == {"s3:GetObject": {"Fn::Sub": "${PackagesBucket.Arn}/secrets/*"},
                          "s3:GetBucketLocation": {"Fn::GetAtt": ["PackagesBucket", "Arn"]},
                          "kms:Decrypt": {"Fn::GetAtt": ["SecretsKey", "Arn"]}}
    # The two roles that run code (the function's and the worker's) are refused by the bucket.
    [deny] = [s for s in resources["PackagesBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
              if s.get("Sid") == "DenyEnvironmentFilesToTaskRoles"]
    assert deny["Effect"] == "Deny" and deny["Resource"] == {"Fn::Sub": "${PackagesBucket.Arn}/secrets/*"}
    assert deny["Principal"]["AWS"] == [{"Fn::GetAtt": ["FunctionTaskRole", "Arn"]},
                                        {"Fn::GetAtt": ["WorkerTaskRole", "Arn"]}]
    # Nobody else is granted the key in IAM: no role or other policy of the stack names it.
    named = [name for name, r in resources.items()
             if r["Type"] in ("AWS::IAM::Role", "AWS::IAM::Policy") and "SecretsKey" in str(r)]
    assert named == ["FunctionEnvironmentFilesPolicy"]


def present(items: list[Any] | None) -> list[Any]:
    """moto keeps an `!If [..., AWS::NoValue]` list item as null; CloudFormation drops it."""
    return [item for item in items or [] if item is not None]


def _refs(node: Any) -> set[str]:
    """Every parameter or resource a piece of the template refers to with !Ref."""
    if isinstance(node, dict):
        return {node["Ref"]} if set(node) == {"Ref"} else set().union(*map(_refs, node.values()))
    if isinstance(node, list):
        return set().union(set(), *map(_refs, node))
    return set()


@pytest.mark.timeout(10)
def test_each_execution_role_reads_exactly_its_containers_secrets() -> None:
    template = load_template()
    secret_parameters = {name for name in template["Parameters"] if name.endswith("SecretArn")}
    for container_name in ("function", "worker"):
        task = _task_definition_with(template, container_name)
        role = template["Resources"][task["ExecutionRoleArn"]["Fn::GetAtt"][0]]
        readable = _refs(role["Properties"]["Policies"]) & secret_parameters
        injected = _refs(_container(template, container_name)["Secrets"]) & secret_parameters
        assert readable == injected == secret_parameters, container_name


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # Never let a stray real credential reach anything.
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)


# How the stack reaches Temporal: Temporal Cloud with an API key, a self-hosted cluster with
# mutual TLS and a private CA, and one in plaintext on a private network.
CLUSTERS = {
    "api-key": {"TemporalApiKeySecretArn": "api-key"},
    "mutual-tls": {
        "TemporalTlsServerCaSecretArn": "ca", "TemporalTlsClientCertSecretArn": "cert",
        "TemporalTlsClientKeySecretArn": "key", "TemporalTlsServerName": "temporal.internal",
    },
    "plaintext": {"TemporalTls": "DISABLED"},
}
SECRET_VARIABLES = {  # what the engine reads (multinode.contract.connection) from each secret
    "TemporalApiKeySecretArn": ("TEMPORAL_API_KEY", "MULTINODE_API_KEY"),
    "TemporalTlsServerCaSecretArn": ("TEMPORAL_TLS_SERVER_CA_CERT_DATA",) * 2,
    "TemporalTlsClientCertSecretArn": ("TEMPORAL_TLS_CLIENT_CERT_DATA",) * 2,
    "TemporalTlsClientKeySecretArn": ("TEMPORAL_TLS_CLIENT_KEY_DATA",) * 2,
}


def test_secret_variables_are_the_ones_the_engine_reads() -> None:
    from multinode.contract.connection import CONNECTION_VARIABLES

    for names in SECRET_VARIABLES.values():
        assert set(names) <= {*CONNECTION_VARIABLES, "TEMPORAL_API_KEY"}


@pytest.mark.timeout(60)
@pytest.mark.filterwarnings("ignore:Tried to parse AWS..S3..BucketPolicy:UserWarning")
@pytest.mark.parametrize("cluster", list(CLUSTERS))
def test_stack_deploys_in_moto(aws_env: None, cluster: str) -> None:
    with mock_aws():
        ec2 = boto3.client("ec2", region_name=REGION)
        vpc_id = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnets = [
            ec2.create_subnet(VpcId=vpc_id, CidrBlock=cidr)["Subnet"]["SubnetId"]
            for cidr in ("10.0.1.0/24", "10.0.2.0/24")
        ]
        secretsmanager = boto3.client("secretsmanager", region_name=REGION)
        chosen = {
            key: secretsmanager.create_secret(Name=f"temporal-{value}", SecretString="x")["ARN"]
            if key.endswith("SecretArn") else value
            for key, value in CLUSTERS[cluster].items()
        }
        parameters = {
            "VpcId": vpc_id,
            "SubnetIds": ",".join(subnets),
            "FunctionImage": "example.com/multinode-function:1",
            "WorkerImage": "example.com/multinode-worker:1",
            "TemporalAddress": "temporal.example.com:7233",
            "TemporalNamespace": "multinode.test",
            "LogRetentionDays": "14",
            **chosen,
        }
        cloudformation = boto3.client("cloudformation", region_name=REGION)
        cloudformation.create_stack(
            StackName="mn",
            TemplateBody=template_for_moto(),
            Parameters=[
                {"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()
            ],
            Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"],
        )
        stack = cloudformation.describe_stacks(StackName="mn")["Stacks"][0]
        assert stack["StackStatus"] == "CREATE_COMPLETE", stack.get("StackStatusReason")
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
        assert set(outputs) == EXPECTED_OUTPUTS
        assert all(outputs.values())

        # The outputs must name resources that really exist.
        ecs = boto3.client("ecs", region_name=REGION)
        clusters = ecs.describe_clusters(clusters=[outputs["ClusterName"]])["clusters"]
        assert [c["status"] for c in clusters] == ["ACTIVE"]
        boto3.client("s3", region_name=REGION).head_bucket(
            Bucket=outputs["PackagesBucketName"]
        )
        assert (
            outputs["PackageStore"] == f"s3://{outputs['PackagesBucketName']}"
        )
        groups = ec2.describe_security_groups(GroupIds=[outputs["SecurityGroupId"]])
        assert groups["SecurityGroups"][0]["VpcId"] == vpc_id
        logs = boto3.client("logs", region_name=REGION)
        for key in ("FunctionLogGroupName", "WorkerLogGroupName"):
            found = logs.describe_log_groups(logGroupNamePrefix=outputs[key])[
                "logGroups"
            ]
            assert [(g["logGroupName"], g["retentionInDays"]) for g in found] == [
                (outputs[key], 14)
            ]

        function_task = ecs.describe_task_definition(
            taskDefinition=outputs["FunctionTaskDefinitionArn"]
        )["taskDefinition"]
        assert [c["name"] for c in function_task["containerDefinitions"]] == [
            "function"
        ]

        services = ecs.describe_services(
            cluster=outputs["ClusterName"],
            services=ecs.list_services(cluster=outputs["ClusterName"])["serviceArns"],
        )["services"]
        assert len(services) == 1
        worker_task = ecs.describe_task_definition(
            taskDefinition=services[0]["taskDefinition"]
        )["taskDefinition"]
        (worker,) = worker_task["containerDefinitions"]
        env = {e["name"]: e["value"] for e in present(worker["environment"])}
        assert env["MULTINODE_BACKEND"] == "fargate"
        assert env["MULTINODE_FARGATE_CLUSTER"] == outputs["ClusterName"]
        assert (
            env["MULTINODE_FARGATE_TASK_DEFINITION"]
            == outputs["FunctionTaskDefinitionArn"]
        )
        assert env["MULTINODE_FARGATE_SUBNETS"].split(",") == subnets
        assert env["MULTINODE_FARGATE_SECURITY_GROUPS"] == outputs["SecurityGroupId"]
        assert env["MULTINODE_PACKAGE_STORE"] == outputs["PackageStore"]
        assert env["MULTINODE_FUNCTION_LOG_GROUP"] == outputs["FunctionLogGroupName"]
        assert env["TEMPORAL_ADDRESS"] == parameters["TemporalAddress"]
        assert env["TEMPORAL_NAMESPACE"] == parameters["TemporalNamespace"]
        assert env["TEMPORAL_TLS"] == ("false" if cluster == "plaintext" else "true")
        assert env.get("TEMPORAL_TLS_SERVER_NAME") == chosen.get("TemporalTlsServerName")
        # Credentials come from the secrets given, never in plain environment variables.
        given = {k: v for k, v in chosen.items() if k.endswith("SecretArn")}
        assert not set(env) & {n for names in SECRET_VARIABLES.values() for n in names}
        assert present(worker.get("secrets")) == [
            {"name": SECRET_VARIABLES[k][0], "valueFrom": arn} for k, arn in given.items()
        ]
        (function,) = function_task["containerDefinitions"]
        assert present(function.get("secrets")) == [
            {"name": SECRET_VARIABLES[k][1], "valueFrom": arn} for k, arn in given.items()
        ]


@pytest.mark.timeout(10)
def test_services_have_a_namespace_a_port_rule_and_the_calls_they_need() -> None:
    template = load_template()
    namespace = template["Resources"]["ServiceNamespace"]
    assert namespace["Type"] == "AWS::ServiceDiscovery::PrivateDnsNamespace"
    assert namespace["Properties"]["Vpc"] == {"Ref": "VpcId"}
    ingress = template["Resources"]["ServiceIngressFromTasks"]["Properties"]
    assert ingress["SourceSecurityGroupId"] == ingress["GroupId"]  # the stack's own tasks
    assert (ingress["IpProtocol"], ingress["FromPort"], ingress["ToPort"]) == ("tcp", 1, 65535)
    worker = _container(template, "worker")
    variables = {e["Name"] for e in worker["Environment"] if isinstance(e, dict) and "Name" in e}
    assert {"MULTINODE_FARGATE_SERVICE_NAMESPACE_ID", "MULTINODE_FARGATE_SERVICE_NAMESPACE"} <= variables
    worker_task = _task_definition_with(template, "worker")
    role = template["Resources"][worker_task["TaskRoleArn"]["Fn::GetAtt"][0]]
    allowed: set[str] = set()
    for policy in role["Properties"]["Policies"]:
        for statement in policy["PolicyDocument"]["Statement"]:
            actions = statement["Action"]
            allowed.update([actions] if isinstance(actions, str) else actions)
    assert {"ecs:CreateService", "ecs:UpdateService", "ecs:DeleteService", "ecs:DescribeServices",
            "ecs:ListTasks", "ecs:RegisterTaskDefinition", "ecs:DescribeTaskDefinition",
            "servicediscovery:CreateService", "servicediscovery:ListServices",
            "servicediscovery:DeleteService"} <= allowed
