"""What AWS does to the Fargate path, with a real worker: Spot interruptions and tasks that fail to
start are run again without counting against max_retries; a package changed in the bucket after
its deploy is refused before anything is unpacked; max_concurrency holds across two workers."""

from __future__ import annotations

import io
from pathlib import Path

import boto3
import pytest

from multinode import InvocationStatus
from multinode.errors import InvocationFailedError
from multinode.storage.package import build_package
from tests.e2e.fargate.conftest import FargateTier
from tests.e2e.local_fargate import FAIL_TO_START, IMAGE_NOT_PULLED, SPOT_INTERRUPTION, Fault
from tests.e2e.moto_stack import BUCKET

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


def test_a_spot_interruption_is_run_again_without_counting(tier: FargateTier) -> None:
    tier.fargate.plan(Fault("survivor", SPOT_INTERRUPTION, after_line="working"))
    survivor = tier.function("survivor")  # max_retries=0: a counted failure would end it
    invocation_id = survivor.start(0.5)
    assert survivor.await_result(invocation_id, timeout=60) == "survived"
    final = survivor.get(invocation_id)
    assert final.status == InvocationStatus.SUCCEEDED and final.num_failed_attempts == 0
    assert [(a.number, a.outcome) for a in final.attempts] == [(1, "succeeded")]
    interrupted, retried = tier.fargate.tasks_of(invocation_id)
    assert interrupted.stop_code == SPOT_INTERRUPTION and "working" in interrupted.output
    assert interrupted.process is not None and interrupted.process.poll() is not None
    assert retried.stop_code is None and retried.environment["MULTINODE_ATTEMPT"] == "1"
    assert tier.fargate.stops == []  # AWS stopped it; the worker had no reason to


def test_a_task_that_fails_to_start_is_run_again_without_counting(tier: FargateTier) -> None:
    tier.fargate.plan(Fault("survivor", FAIL_TO_START))
    survivor = tier.function("survivor")
    invocation_id = survivor.start(0)
    assert survivor.await_result(invocation_id, timeout=60) == "survived"
    final = survivor.get(invocation_id)
    assert final.status == InvocationStatus.SUCCEEDED and final.num_failed_attempts == 0
    assert [(a.number, a.outcome) for a in final.attempts] == [(1, "succeeded")]
    never_ran, ran = tier.fargate.tasks_of(invocation_id)
    assert never_ran.process is None and never_ran.stop_code == FAIL_TO_START
    assert ran.process is not None and "working" in ran.output


def test_an_image_that_cannot_be_pulled_fails_the_attempt_at_once(tier: FargateTier) -> None:
    tier.fargate.plan(Fault("explode", FAIL_TO_START, reason=IMAGE_NOT_PULLED))
    explode = tier.function("explode")  # max_retries=2: a transient failure would be tried again
    invocation_id = explode.start("never raised")
    with pytest.raises(InvocationFailedError, match="could not be pulled"):
        explode.await_result(invocation_id, timeout=60)
    final = explode.get(invocation_id)
    assert [(a.number, a.outcome) for a in final.attempts] == [(1, "failed")]
    assert final.error_details is not None and final.error_details.type == "LaunchFailed"
    assert len(tier.fargate.tasks_of(invocation_id)) == 1


def test_a_package_changed_in_the_bucket_is_refused(tier: FargateTier, tmp_path: Path) -> None:
    # Someone with write access to the bucket replaces the deployed package with other code.
    impostor = tmp_path / "impostor"
    impostor.mkdir()
    (impostor / "main.py").write_text(
        "from multinode import Multinode\nmn = Multinode()\n\n@mn.function()\n"
        "def greet(name):\n    print('impostor ran', flush=True)\n    return 'pwned'\n")
    key = f"store/packages/{tier.manifest['package_sha256']}.tar.gz"
    boto3.client("s3").upload_fileobj(io.BytesIO(build_package(impostor)), BUCKET, key)

    greet = tier.function("greet")
    invocation_id = greet.start("x")
    with pytest.raises(InvocationFailedError) as failed:
        greet.await_result(invocation_id, timeout=60)
    assert failed.value.error_type == "PackageIntegrityError"
    assert tier.manifest["package_sha256"] in (failed.value.error_message or "")
    final = greet.get(invocation_id)
    assert final.status == InvocationStatus.FAILED and len(final.attempts) == 1  # no retry can fix it
    [task] = tier.fargate.tasks_of(invocation_id)
    output = tier.fargate.wait_ended(task)
    assert not any("impostor ran" in line for line in output)
    assert not (Path(task.environment["HOME"]) / ".multinode" / "code").exists()  # never unpacked


def test_max_concurrency_holds_across_two_workers(tier: FargateTier) -> None:
    tier.start_worker()
    limited = tier.function("limited")  # max_concurrency=2
    invocation_ids = [limited.start(0.5) for _ in range(6)]
    assert [limited.await_result(i, timeout=80) for i in invocation_ids] == invocation_ids
    assert tier.fargate.peak_running == 2  # reached, never exceeded
    by_worker = sorted(t.worker for t in tier.fargate.tasks.values())
    assert set(by_worker) == {"w1", "w2"}, f"both workers must have run tasks: {by_worker}"
    assert len(tier.fargate.tasks) == 6
