"""A version's requirements and `.env` on the Fargate path: the deploy builds the requirements'
environment once for the image's Python and stores it beside the package, so a task with no
package index runs; the `.env` stays out of the package, is stored encrypted with the stack's
KMS key, and reaches the function through the task's environment file, never through the
worker or the overrides."""

from __future__ import annotations

import io
import json
import os
import re
import tarfile
import uuid

import boto3
import pytest

import multinode as mn
from multinode.errors import InvocationFailedError
from tests.e2e.fargate.conftest import FargateTier
from tests.e2e.moto_stack import BUCKET

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

MAIN_PY = '''
import os

from multinode import Multinode

mn = Multinode()


@mn.function()
def probe():
    import six
    print(f"set-up probe: six {six.__version__}", flush=True)
    return {"six": six.__version__, "token": os.environ.get("API_TOKEN"), "path": os.environ["PATH"]}
'''
# An index nobody listens on: any install from it fails at once.
UNREACHABLE_INDEX = "http://127.0.0.1:9/simple"


def deploy_with_requirements(tier: FargateTier, token: str) -> dict[str, object]:
    folder = tier.root / "env-tasks"
    folder.mkdir()
    (folder / "main.py").write_text(f"# project {tier.project}-env\n{MAIN_PY}")
    (folder / "requirements.txt").write_text("six==1.16.0\n")
    (folder / ".env").write_text(f'API_TOKEN="{token}"\nPATH=/the/project/cannot/replace/this\n')
    project = f"{tier.project}_env"
    result = tier.cli("deploy", str(folder), f"--project-name={project}", "--json", timeout=120)
    assert result.returncode == 0, result.stderr
    manifest: dict[str, object] = json.loads(result.stdout)
    return manifest


def test_requirements_and_env_reach_a_task_without_index_or_package(tier: FargateTier) -> None:
    token = f"tok-{uuid.uuid4().hex}"
    manifest = deploy_with_requirements(tier, token)
    project = str(manifest["project_name"])
    s3 = boto3.client("s3")

    # The package holds no .env; the values sit in an object of the project's own, under the
    # stack's KMS key.
    package = s3.get_object(Bucket=BUCKET, Key=f"store/packages/{manifest['package_sha256']}.tar.gz")
    with tarfile.open(fileobj=io.BytesIO(package["Body"].read())) as archive:
        assert ".env" not in archive.getnames() and "requirements.txt" in archive.getnames()
    [secret_key] = tier.bucket_keys(f"store/secrets/{project}/")
    head = s3.head_object(Bucket=BUCKET, Key=secret_key)
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"] == tier.stack.environ["MULTINODE_SECRETS_KMS_KEY"]
    # The requirements' environment, built once at deploy for the image's Python.
    [archive_key] = [k for k in tier.bucket_keys("store/environments/") if k.endswith("-py311-x86_64.tar.gz")]

    # The image trusts this machine's CAs (as a real one would its network's), so an install could
    # reach an index: only the index's address keeps it from one.
    certificates = {k: os.environ[k] for k in ("SSL_CERT_FILE", "SSL_CERT_DIR") if k in os.environ}
    tier.fargate.image_environment = {**certificates, "UV_INDEX_URL": UNREACHABLE_INDEX,
                                      "PIP_INDEX_URL": UNREACHABLE_INDEX, "UV_DEFAULT_INDEX": UNREACHABLE_INDEX}
    probe: mn.Function[[], dict[str, str]] = mn.Function("probe", project_name=project, client=tier.client)
    invocation_id = probe.start()
    result = probe.await_result(invocation_id, timeout=90)
    assert result["six"] == "1.16.0" and result["token"] == token
    assert result["path"] != "/the/project/cannot/replace/this"
    [task] = tier.fargate.tasks_of(invocation_id)
    output = "\n".join(task.output)
    assert "unpacked the prebuilt environment" in output and "creating the Python environment" not in output
    assert re.search(r"the attempt was set up in [0-9.]+ s", output), output
    # The worker passed where the values are, never the values.
    [launch] = [p for p in tier.fargate.launches if invocation_id in json.dumps(p)]
    assert token not in json.dumps(launch)
    [container] = launch["overrides"]["containerOverrides"]
    assert container["environmentFiles"] == [{"value": f"arn:aws:s3:::{BUCKET}/{secret_key}", "type": "s3"}]

    # Without the prebuilt environment the same task needs the index, which it cannot reach:
    # the archive is what made the first run work.
    s3.delete_object(Bucket=BUCKET, Key=archive_key)
    failing = probe.start()
    with pytest.raises(InvocationFailedError) as failed:
        probe.await_result(failing, timeout=90)
    assert "RequirementsInstallError" in str(failed.value) and "127.0.0.1:9" in str(failed.value)
