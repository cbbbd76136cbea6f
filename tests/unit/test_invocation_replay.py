"""Invocation and lock histories replay with today's workflows: the same commands in the same order,
or replay fails with a nondeterminism error.

`invocation-before-close-status-*` were recorded by the code before invocations closed with the
Temporal status matching theirs (each completes, whatever its ending: succeeded, failed once,
failed then retried, timed out, cancelled while running, started under a lock);
`invocation-close-status-*` by the code that closes them Failed or Canceled;
`invocation-compact-record-*` by the code whose result leaves the attempts to the memo and whose
start seen in an attempt's outcome is not published on its own; `lock-*` by the lock
workflow before it gave its invocation static details. All from scripted attempts on a dev
server."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner

from multinode.engine.converter import DATA_CONVERTER
from temporal_workers.workflows.invocation import InvocationWorkflow
from temporal_workers.workflows.lock import LockWorkflow

pytestmark = pytest.mark.timeout(60)

HISTORIES = Path(__file__).parent / "histories"
OLD = sorted(HISTORIES.glob("invocation-before-close-status-*.json"))
NEW = sorted(HISTORIES.glob("invocation-close-status-*.json"))
COMPACT = sorted(HISTORIES.glob("invocation-compact-record-*.json"))
# How each recorded history closed (its last event's type).
CLOSED_BY_OLD_CODE = {p.stem.rsplit("-", 1)[1]: "EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED" for p in OLD}
CLOSED_BY_NEW_CODE = {
    "ok": "EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED",
    "fail": "EVENT_TYPE_WORKFLOW_EXECUTION_FAILED",
    "retry": "EVENT_TYPE_WORKFLOW_EXECUTION_FAILED",
    "timeout": "EVENT_TYPE_WORKFLOW_EXECUTION_FAILED",
    "locked": "EVENT_TYPE_WORKFLOW_EXECUTION_FAILED",
    "cancel": "EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED",
}
# The compact recordings' retry succeeds at its second attempt (a failed attempt, then PENDING
# published, then the ending), and their locked one succeeds.
CLOSED_BY_COMPACT_CODE = {**CLOSED_BY_NEW_CODE, "retry": "EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED",
                          "locked": "EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED"}


def _replayer() -> Replayer:
    return Replayer(
        workflows=[InvocationWorkflow, LockWorkflow],
        data_converter=DATA_CONVERTER,
        workflow_runner=UnsandboxedWorkflowRunner(),
    )


def _last_event_type(path: Path) -> str:
    return str(json.loads(path.read_text())["events"][-1]["eventType"])


def test_the_recordings_cover_every_ending_both_ways() -> None:
    assert {p.stem.rsplit("-", 1)[1]: _last_event_type(p) for p in OLD} == CLOSED_BY_OLD_CODE
    assert set(CLOSED_BY_OLD_CODE) == set(CLOSED_BY_NEW_CODE)
    assert {p.stem.rsplit("-", 1)[1]: _last_event_type(p) for p in NEW} == CLOSED_BY_NEW_CODE
    assert {p.stem.rsplit("-", 1)[1]: _last_event_type(p) for p in COMPACT} == CLOSED_BY_COMPACT_CODE


def _events(path: Path) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = json.loads(path.read_text())["events"]
    return events


def _payload(payload: dict[str, Any]) -> Any:
    return json.loads(base64.b64decode(payload["data"]))


def test_a_compact_record_succeeds_with_the_record_in_the_memo_once() -> None:
    events = _events(HISTORIES / "invocation-compact-record-ok.json")
    memos = [_payload(e["workflowPropertiesModifiedEventAttributes"]["upsertedMemo"]["fields"]["state"])
             for e in events if e["eventType"] == "EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED"]
    result = _payload(events[-1]["workflowExecutionCompletedEventAttributes"]["result"]["payloads"][0])
    # One memo upsert, the final one, with everything `.get` reads; the result without the attempts.
    assert [m["status"] for m in memos] == ["SUCCEEDED"]
    assert [t["status"] for t in memos[0]["transitions"]] == ["PENDING", "RUNNING", "SUCCEEDED"]
    assert len(memos[0]["attempts"]) == 1 and memos[0]["result"] == result["result"]
    assert result["status"] == "SUCCEEDED" and "attempts" not in result and "transitions" not in result
    # Fields holding nothing are left out of every payload.
    assert "error" not in memos[0] and "parent_invocation_id" in memos[0]


@pytest.mark.asyncio
@pytest.mark.parametrize("path", [*OLD, *NEW, *COMPACT, *sorted(HISTORIES.glob("lock-*.json"))], ids=lambda p: p.stem)
async def test_recorded_histories_replay(path: Path) -> None:
    history = WorkflowHistory.from_json("recorded", path.read_text())
    result = await _replayer().replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure
