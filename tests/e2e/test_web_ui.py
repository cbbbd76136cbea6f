"""Issue 19 end to end: what the Temporal Web UI shows of invocations, read through the HTTP API
the UI reads (the dev server's HTTP port): each ending closes its workflow with the matching
Temporal status and failure, each page has a summary and details a person can read, and the
links Multinode prints list invocations only. The SDK keeps reading every ending as before."""

from __future__ import annotations

import base64
import json
import urllib.parse
import urllib.request
from typing import Any

import pytest

import multinode as mn
from multinode import InvocationStatus, admin, errors
from multinode.contract import names
from tests.conftest import ControlPlane, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

TASKS = '''
import time
from datetime import timedelta
from multinode import Multinode

mn = Multinode()


@mn.function()
def double(x, label="none"):
    return {"doubled": x * 2, "label": label}


@mn.function()
def fails(x):
    raise ValueError(f"bad input {x}")


@mn.function(timeout=timedelta(seconds=1))
def too_slow():
    yield "started"
    time.sleep(60)


@mn.function()
def counts():
    for i in range(10_000):
        yield i
        time.sleep(0.05)
'''


class HttpApi:
    """The dev server's HTTP API (the JSON form of the gRPC API the Web UI reads)."""

    def __init__(self, plane: ControlPlane) -> None:
        self.base = f"http://127.0.0.1:{plane.server.config.http_port}/api/v1/namespaces/{names.DEFAULT_NAMESPACE}"

    def get(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.base}/{path}{query}", timeout=10) as response:
            return json.load(response)

    def post(self, path: str, body: dict[str, Any]) -> Any:
        request = urllib.request.Request(
            f"{self.base}/{path}", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)

    def describe(self, workflow_id: str) -> Any:
        return self.get(f"workflows/{urllib.parse.quote(workflow_id)}")

    def last_event(self, workflow_id: str) -> Any:
        events = self.get(f"workflows/{urllib.parse.quote(workflow_id)}/history")["history"]["events"]
        return events[-1]

    def current_details(self, workflow_id: str) -> str:
        """What the page shows under "Current Details" (the UI asks the workflow's metadata)."""
        reply = self.post(
            f"workflows/{urllib.parse.quote(workflow_id)}/query/__temporal_workflow_metadata",
            {"query": {"queryType": "__temporal_workflow_metadata"}},
        )
        metadata = payload_value(payloads(reply["queryResult"])[0])
        return str(metadata["currentDetails"])

    def list_types(self, query: str) -> list[str]:
        executions = self.get("workflows", query=query).get("executions", [])
        return [e["type"]["name"] for e in executions]


def payloads(value: Any) -> list[Any]:
    """A Payloads message: `{"payloads": [...]}`, or the list itself in the shorthand form."""
    return list(value["payloads"] if isinstance(value, dict) else value)


def payload_value(payload: Any) -> Any:
    """A payload as JSON: the HTTP API writes JSON payloads as their value ("shorthand"), or as
    metadata and base64 data."""
    if isinstance(payload, dict) and "metadata" in payload and "data" in payload:
        return json.loads(base64.b64decode(payload["data"]))
    return payload


@pytest.fixture
def api(control_plane: ControlPlane) -> HttpApi:
    return HttpApi(control_plane)


def test_each_ending_shows_in_the_web_ui_as_it_is(deploy_tasks, api: HttpApi) -> None:  # type: ignore[no-untyped-def]
    project = deploy_tasks(TASKS).project_name
    double, fails, too_slow, counts = (mn.get_deployed_function(project, n) for n in ("double", "fails", "too_slow", "counts"))
    ok_id, failed_id, timed_out_id, cancelled_id = (
        double.start(21, label="x"), fails.start(3), too_slow.start(), counts.start(),
    )

    # While it runs: status and attempt, no history event per yield.
    wait_until(lambda: (counts.get(cancelled_id).result or 0) >= 3, message="yields")
    running = api.current_details(cancelled_id)
    assert running.startswith("**RUNNING** · attempt 1 of at most 1"), running
    assert "Heartbeat Details" in running
    counts.cancel(cancelled_id)

    # Every reader still reads every ending.
    assert double.await_result(ok_id) == {"doubled": 42, "label": "x"}
    with pytest.raises(errors.InvocationFailedError) as failed:
        fails.await_result(failed_id)
    assert failed.value.error_type == "ValueError" and "fails" in (failed.value.remote_traceback or "")
    with pytest.raises(errors.InvocationTimedOutError):
        too_slow.await_result(timed_out_id)
    with pytest.raises(errors.InvocationCancelledError):
        counts.await_result(cancelled_id)
    final = {i: f.get(i) for f, i in ((double, ok_id), (fails, failed_id), (too_slow, timed_out_id), (counts, cancelled_id))}
    assert [final[i].status for i in (ok_id, failed_id, timed_out_id, cancelled_id)] == [
        InvocationStatus.SUCCEEDED, InvocationStatus.FAILED, InvocationStatus.TIMED_OUT, InvocationStatus.CANCELLED,
    ]
    assert final[failed_id].attempts[0].error is not None and final[failed_id].attempts[0].error.traceback
    assert isinstance(final[cancelled_id].result, int)  # the last yielded value is kept

    # Temporal's own status of each workflow.
    statuses = {i: api.describe(i)["workflowExecutionInfo"]["status"] for i in final}
    assert statuses == {
        ok_id: "WORKFLOW_EXECUTION_STATUS_COMPLETED",
        failed_id: "WORKFLOW_EXECUTION_STATUS_FAILED",
        timed_out_id: "WORKFLOW_EXECUTION_STATUS_FAILED",
        cancelled_id: "WORKFLOW_EXECUTION_STATUS_CANCELED",
    }
    failure = api.last_event(failed_id)["workflowExecutionFailedEventAttributes"]["failure"]
    assert failure["message"] == "ValueError: bad input 3"
    # The stack trace the page shows is the function's, not the worker's.
    assert "raise ValueError" in failure["stackTrace"] and "temporalio" not in failure["stackTrace"]
    info = failure["applicationFailureInfo"]
    assert info["type"] == "ValueError" and info["nonRetryable"] is True
    traceback = payload_value(payloads(info["details"])[0])
    assert "raise ValueError" in traceback and "Traceback" in traceback
    timed_out = api.last_event(timed_out_id)["workflowExecutionFailedEventAttributes"]["failure"]
    assert timed_out["applicationFailureInfo"]["type"] == "InvocationTimedOutError"
    assert timed_out["message"] == "InvocationTimedOutError: the attempt ran past its timeout of 1 s"
    assert "workflowExecutionCanceledEventAttributes" in api.last_event(cancelled_id)
    assert "workflowExecutionCompletedEventAttributes" in api.last_event(ok_id)

    # The summary names the call, the details every argument; the final details the ending.
    metadata = api.describe(ok_id)["executionConfig"]["userMetadata"]
    summary, details = payload_value(metadata["summary"]), payload_value(metadata["details"])
    assert summary.startswith(f"double(21, label='x') · {project} @ v"), summary
    assert f"**{project}.double**" in details and "- `label`: `'x'`" in details
    assert api.current_details(ok_id) == "**SUCCEEDED** after 1 attempt\n\nresult: `{'doubled': 42, 'label': 'x'}`"
    assert api.current_details(failed_id).startswith("**FAILED** after 1 attempt (1 failed)\n\nerror: `ValueError: bad input 3`")
    assert "error: `InvocationTimedOutError: the attempt ran past its timeout of 1 s`" in api.current_details(timed_out_id)
    cancelled = api.current_details(cancelled_id)
    assert cancelled.startswith("**CANCELLED** after 1 attempt") and "latest yielded value: `" in cancelled

    # Lists the CLI and `multinode dev` print show invocations only: the project's own workflow
    # carries its search attribute too (as locks and archive records do), but is not listed.
    project_link = admin.list_url(f'{names.SA_PROJECT} = "{project}"')
    query = urllib.parse.parse_qs(urllib.parse.urlparse(project_link).query)["query"][0]
    assert sorted(api.list_types(query)) == [names.INVOCATION_WORKFLOW] * 4
    assert names.PROJECT_WORKFLOW in api.list_types(f'{names.SA_PROJECT} = "{project}"')
    everything = urllib.parse.parse_qs(urllib.parse.urlparse(admin.list_url()).query)["query"][0]
    types = api.list_types(everything)
    assert types and set(types) == {names.INVOCATION_WORKFLOW}
