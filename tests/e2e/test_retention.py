"""Issue 4: a finished invocation stays readable after the namespace's retention period has
deleted its workflow (a dev server of its own, with a one-minute retention)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import multinode as mn
from multinode import InvocationStatus, errors
from tests.conftest import ControlPlane, running_control_plane, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def short_retention(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    config = (
        'system.namespaceMinRetentionLocal="1m"',
        'history.retentionTimerJitterDuration="1s"',
    )
    with running_control_plane(
        tmp_path_factory.mktemp("retention-home"), config,
        MULTINODE_ARCHIVE_INTERVAL_SECONDS="1", MULTINODE_ARCHIVE_LAG_SECONDS="2",
    ) as plane:
        from multinode._client import default_client

        async def shorten() -> None:
            from google.protobuf.duration_pb2 import Duration
            from temporalio.api.namespace.v1 import NamespaceConfig
            from temporalio.api.workflowservice.v1 import UpdateNamespaceRequest

            engine = await default_client().engine()
            await engine.client.workflow_service.update_namespace(
                UpdateNamespaceRequest(
                    namespace="default",
                    config=NamespaceConfig(workflow_execution_retention_ttl=Duration(seconds=60)),
                )
            )

        default_client().run(shorten())
        time.sleep(15)  # the history service picks up namespace changes on its ~10 s refresh
        yield plane


def test_finished_invocations_outlive_retention(short_retention: ControlPlane, tmp_path: Path) -> None:
    from multinode._client import default_client
    from multinode.admin.deployment import deploy

    folder = tmp_path / "tasks"
    folder.mkdir()
    (folder / "main.py").write_text(
        "from multinode import Multinode\nmn = Multinode()\n"
        "@mn.function()\ndef double(x):\n    return 2 * x\n"
        "@mn.function()\ndef broken():\n    raise KeyError('gone')\n"
    )
    project = deploy(folder, "retained").project_name
    double, broken = mn.get_deployed_function(project, "double"), mn.get_deployed_function(project, "broken")
    ok = double.start(21)
    assert double.await_result(ok) == 42
    bad = broken.start()
    with pytest.raises(errors.InvocationFailedError):
        broken.await_result(bad)

    async def workflow_gone(invocation_id: str) -> bool:
        from temporalio.service import RPCError, RPCStatusCode

        engine = await default_client().engine()
        try:
            await engine.client.get_workflow_handle(invocation_id).describe()
            return False
        except RPCError as error:  # anything but "not found" is a failure of the test itself
            if error.status != RPCStatusCode.NOT_FOUND:
                raise
            return True

    started = time.monotonic()
    wait_until(lambda: default_client().run(workflow_gone(ok)) and default_client().run(workflow_gone(bad)),
               timeout=240, interval=2, message="retention to delete the workflows")
    assert time.monotonic() - started > 20  # really gone through retention, not before

    kept = double.get(ok)
    assert kept.status == InvocationStatus.SUCCEEDED and kept.result == 42 and kept.terminated
    assert len(kept.attempts) == 1 and kept.attempts[0].outcome == "succeeded"
    assert double.await_result(ok) == 42
    failed = broken.get(bad)
    assert failed.status == InvocationStatus.FAILED and failed.error == "KeyError: 'gone'"
    # Its workflow closed Failed: the archive took the record from its memo, tracebacks included.
    assert failed.attempts[0].error is not None and "raise KeyError" in (failed.attempts[0].error.traceback or "")
    with pytest.raises(errors.InvocationFailedError, match="gone"):
        broken.await_result(bad)
    assert double.list().invocation_ids == [ok] and broken.list_ids() == [bad]
    double.remove(ok)
    with pytest.raises(errors.InvocationDoesNotExistError):
        double.get(ok)
