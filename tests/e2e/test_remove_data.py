"""`.remove` deletes what the invocation's attempts left where they ran (issue 18 item 7): on
the local backend, the attempt logs under the state folder's runs/ (the Fargate backend's run
documents in S3 are the unit tier's, tests/unit/test_fargate_forget.py)."""

from __future__ import annotations

import pytest

import multinode as mn
from multinode import errors
from multinode.testing.control_plane import ControlPlane

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

TASKS = '''
from multinode import Multinode

mn = Multinode()


@mn.function()
def chatter(word):
    print(f"the function says {word}", flush=True)
    return word
'''


@pytest.mark.timeout(240)  # the engine applies deletions asynchronously, in about 30 s
def test_remove_deletes_the_attempt_logs(control_plane: ControlPlane, deploy_tasks, project_name: str) -> None:  # type: ignore[no-untyped-def]
    deploy_tasks(TASKS)
    chatter = mn.get_deployed_function(project_name, "chatter")
    kept, removed = chatter.start("kept"), chatter.start("removed")
    assert chatter.await_result(kept) == "kept" and chatter.await_result(removed) == "removed"
    runs = control_plane.home / "runs"
    assert "the function says removed" in (runs / f"{removed}.attempt-1.log").read_text()
    chatter.remove(removed)
    assert not list(runs.glob(f"{removed}*"))
    assert (runs / f"{kept}.attempt-1.log").exists()  # only the removed invocation's data goes
    with pytest.raises(errors.InvocationDoesNotExistError):
        chatter.get(removed)
    chatter.remove(kept)
