"""An invocation's life on the Fargate path, through the SDK, a real worker with the fargate
backend, and tasks played by local processes: deploy to the S3 store, results and progress,
failures and retries, cancel, timeout, remove."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import boto3
import pytest

from multinode import InvocationStatus
from multinode.errors import (
    InvocationCancelledError,
    InvocationDoesNotExistError,
    InvocationFailedError,
    InvocationTimedOutError,
)
from multinode.storage.package import sha256_hex
from tests.conftest import wait_until
from tests.e2e.fargate.conftest import FargateTier
from tests.e2e.local_fargate import LocalTask
from tests.e2e.moto_stack import BUCKET, CLUSTER

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


def only_task(tier: FargateTier, invocation_id: str) -> LocalTask:
    [task] = tier.fargate.tasks_of(invocation_id)
    return task


def wait_running(tier: FargateTier, invocation_id: str, line: str) -> LocalTask:
    """The invocation's single task, once the function has printed `line` (it runs)."""
    wait_until(lambda: any(line in out for t in tier.fargate.tasks_of(invocation_id) for out in t.output),
               timeout=30, message=f"{line!r} from {invocation_id}")
    return only_task(tier, invocation_id)


def test_deploy_uploads_the_package_to_the_bucket_and_an_attempt_runs_from_it(tier: FargateTier) -> None:
    sha256 = tier.manifest["package_sha256"]
    key = f"store/packages/{sha256}.tar.gz"  # MULTINODE_PACKAGE_STORE=s3://<bucket>/store
    assert key in tier.bucket_keys("store/packages/")
    data = boto3.client("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read()
    assert sha256_hex(data) == sha256
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        main = archive.extractfile("main.py")
        assert main is not None and f"# project {tier.project}" in main.read().decode()

    greet = tier.function("greet")
    invocation_id = greet.start("fargate")
    assert greet.await_result(invocation_id, timeout=60) == "hello fargate"
    task = only_task(tier, invocation_id)
    assert task.environment["MULTINODE_PACKAGE_URI"] == f"s3://{BUCKET}/{key}"
    assert task.environment["MULTINODE_FUNCTION"] == "greet" and "fargate" not in task.environment.values()
    final = greet.get(invocation_id)
    assert final.status == InvocationStatus.SUCCEEDED and final.terminated
    assert [a.outcome for a in final.attempts] == ["succeeded"] and final.attempts[0].exit_code == 0


def test_get_shows_the_latest_yield_while_the_task_runs(tier: FargateTier, tmp_path: Path) -> None:
    count = tier.function("count")
    gate = tmp_path / "gate"
    invocation_id = count.start(3, str(gate))
    for i in (1, 2):
        wait_until(lambda i=i: count.get(invocation_id).result == i, timeout=30, message=f"yield {i}")
        seen = count.get(invocation_id)
        assert seen.status == InvocationStatus.RUNNING and not seen.terminated
        Path(f"{gate}-{i}").touch()
    assert count.await_result(invocation_id, timeout=60) == 3
    assert count.get(invocation_id).status == InvocationStatus.SUCCEEDED


def test_a_failure_keeps_its_remote_traceback_and_every_attempt_counts(tier: FargateTier) -> None:
    explode = tier.function("explode")  # max_retries=2
    invocation_id = explode.start("boom")
    with pytest.raises(InvocationFailedError) as failed:
        explode.await_result(invocation_id, timeout=60)
    assert (failed.value.error_type, failed.value.error_message) == ("ValueError", "boom")
    assert failed.value.remote_traceback is not None
    assert "raise ValueError(message)" in failed.value.remote_traceback
    final = explode.get(invocation_id)
    assert final.status == InvocationStatus.FAILED and final.num_failed_attempts == 3
    assert [(a.number, a.outcome, a.exit_code) for a in final.attempts] == [
        (1, "failed", 1), (2, "failed", 1), (3, "failed", 1)]
    tasks = tier.fargate.tasks_of(invocation_id)
    assert sorted(t.environment["MULTINODE_ATTEMPT"] for t in tasks) == ["1", "2", "3"]


def test_cancel_reaches_the_code_and_ends_in_stop_task(tier: FargateTier) -> None:
    wait_for_stop = tier.function("wait_for_stop")
    invocation_id = wait_for_stop.start(60)
    task = wait_running(tier, invocation_id, "waiting for a stop")
    assert wait_for_stop.get(invocation_id).status == InvocationStatus.RUNNING
    assert wait_for_stop.cancel(invocation_id) is True
    with pytest.raises(InvocationCancelledError):
        wait_for_stop.await_result(invocation_id, timeout=60)
    final = wait_for_stop.get(invocation_id)
    assert final.status == InvocationStatus.CANCELLED and final.terminated
    assert tier.fargate.stops == ["multinode: cancel"]
    # moto recorded the StopTask call itself, not only the harness.
    seen_by_moto = boto3.client("ecs").describe_tasks(cluster=CLUSTER, tasks=[task.arn])["tasks"]
    assert [(t["lastStatus"], t.get("stoppedReason")) for t in seen_by_moto] == [("STOPPED", "multinode: cancel")]
    assert "saw InvocationCancelledError" in tier.fargate.wait_ended(task)


def test_a_timeout_stops_the_task(tier: FargateTier) -> None:
    overrun = tier.function("overrun")  # timeout 2 s
    invocation_id = overrun.start(60)
    with pytest.raises(InvocationTimedOutError):
        overrun.await_result(invocation_id, timeout=60)
    final = overrun.get(invocation_id)
    assert final.status == InvocationStatus.TIMED_OUT and final.terminated
    assert [(a.number, a.outcome) for a in final.attempts] == [(1, "timed_out")]  # never retried
    assert tier.fargate.stops == ["multinode: timeout"]
    task = only_task(tier, invocation_id)
    assert "saw InvocationTimedOutError" in tier.fargate.wait_ended(task)


def test_remove_stops_a_running_task_and_deletes_the_invocation(tier: FargateTier) -> None:
    wait_for_stop = tier.function("wait_for_stop")
    invocation_id = wait_for_stop.start(60)
    task = wait_running(tier, invocation_id, "waiting for a stop")
    wait_for_stop.remove(invocation_id)
    assert tier.fargate.stops == ["multinode: cancel"]
    assert task.process is not None and task.process.poll() is not None
    with pytest.raises(InvocationDoesNotExistError):
        wait_for_stop.get(invocation_id)
    assert invocation_id not in wait_for_stop.list_ids()
