"""The pieces under the CLI's read commands: UTC rendering, describing an invocation (its running
attempt and children, human and --json), Web UI links, and reading and following logs."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import multinode
from multinode import admin as _admin
from multinode.admin import logs as _logs
from multinode.contract.connection import ConnectionSettings
from multinode.contract.records import AttemptProgress, AttemptRecord, ErrorInfo, InvocationRecord, Transition
from multinode_cli import output
from tests.unit.cli_support import (
    INVOCATION_ID,
    run,
)

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("isolated")]


# ----- the pieces under the commands ------------------------------------------------------


def test_times_are_rendered_in_utc() -> None:
    moment = datetime(2025, 1, 31, 12, 0, 5, 123000, tzinfo=UTC)
    assert output.format_utc(moment) == "2025-01-31 12:00:05 UTC"
    assert output.iso_utc(moment) == "2025-01-31T12:00:05.123Z"
    assert output.format_utc(None) == "-"
    row = _admin.InvocationRow(invocation_id=INVOCATION_ID, project_name="p", function_name="f", version_id="",
                               status="SUCCEEDED", created_at=moment, ended_at=None)
    assert output.to_json([row])[0]["created_at"] == "2025-01-31T12:00:05.123Z"


class FakeEngine:
    """Answers `describe_invocation`'s three questions from a fixed record."""

    def __init__(self, record: InvocationRecord, terminated: bool, progress: AttemptProgress | None) -> None:
        self.record, self.terminated, self.progress = record, terminated, progress

    async def get_invocation(self, invocation_id: str) -> tuple[InvocationRecord, bool]:
        return self.record, self.terminated

    async def attempt_progress(self, invocation_id: str) -> AttemptProgress | None:
        return self.progress

    async def invocation_rows(self, query: str, limit: int) -> list[Any]:
        assert f'MultinodeParent = "{INVOCATION_ID}"' in query
        moment = datetime(2025, 1, 31, 12, 0, 2, tzinfo=UTC)
        return [_admin.InvocationRow(invocation_id=CHILD_ID, project_name="p", function_name="g",
                                     version_id=VERSION_ID, status="SUCCEEDED",
                                     parent_invocation_id=INVOCATION_ID, created_at=moment, ended_at=None)]


class FakeClient:
    settings = ConnectionSettings("127.0.0.1:7233", None, "default", "q", "default")

    def __init__(self, engine: FakeEngine) -> None:
        self._engine = engine

    async def engine(self) -> FakeEngine:
        return self._engine

    def run(self, coroutine: Any) -> Any:
        import asyncio

        return asyncio.run(coroutine)


CHILD_ID = "inv-" + "1" * 26
VERSION_ID = "ver-" + "1" * 26
T0 = datetime(2025, 1, 31, 12, 0, 0, 500000, tzinfo=UTC).timestamp()


def test_describe_invocation_shows_the_running_attempt_and_children(monkeypatch: pytest.MonkeyPatch) -> None:
    """The description is the public Invocation plus the attempt running now (from the worker's
    heartbeat), the children and the Web UI page; both renderings are pinned here."""
    record = InvocationRecord(
        invocation_id=INVOCATION_ID, project_name="p", function_name="f", version_id=VERSION_ID,
        parent_invocation_id=None, status="RUNNING", created_at=T0, num_failed_attempts=1,
        attempts=[AttemptRecord(1, "failed", T0 + 1, T0 + 2.25,
                                ErrorInfo("ValueError", "bad\nsecond line", "Traceback ...\n"), exit_code=1)],
        transitions=[Transition("PENDING", T0), Transition("RUNNING", T0 + 1)],
    )
    engine = FakeEngine(record, terminated=False, progress=AttemptProgress(2, "running", T0 + 3))
    described = _admin.describe_invocation("p", "f", INVOCATION_ID, client=FakeClient(engine))  # type: ignore[arg-type]
    assert described.invocation.status is multinode.InvocationStatus.RUNNING
    assert [a.number for a in described.invocation.attempts] == [1]  # finished ones only
    with pytest.raises(multinode.errors.InvocationDoesNotExistError, match=r"not an invocation of p\.g"):
        _admin.describe_invocation("p", "g", INVOCATION_ID, client=FakeClient(engine))  # type: ignore[arg-type]

    monkeypatch.setattr(_admin, "describe_invocation", lambda *a, **k: described)
    args = ["describe", "--project-name=p", "--function-name=f", f"--invocation-id={INVOCATION_ID}"]
    text = run(*args).stdout
    assert text == (
        f"invocation {INVOCATION_ID}\n"
        "  project:         p\n"
        "  function:        f\n"
        f"  version:         {VERSION_ID}\n"
        "  status:          RUNNING\n"
        "  created:         2025-01-31 12:00:00 UTC\n"
        "  ended:           -\n"
        "  parent:          -\n"
        "  children:        1\n"
        "  failed attempts: 1\n"
        "  error:           -\n"
        f"  Web UI:          http://127.0.0.1:8233/namespaces/default/workflows/{INVOCATION_ID}\n"
        "\n"
        "ATTEMPT  OUTCOME  STARTED (UTC)            ENDED (UTC)              EXIT  ERROR\n"
        "1        failed   2025-01-31 12:00:01 UTC  2025-01-31 12:00:02 UTC  1     ValueError: bad\n"
        "2        running  2025-01-31 12:00:03 UTC  -                        -     -\n"
        "\n"
        "children:\n"
        "INVOCATION                      FUNCTION  STATUS     CREATED (UTC)            ENDED (UTC)\n"
        f"{CHILD_ID}  g         SUCCEEDED  2025-01-31 12:00:02 UTC  -\n"
        "\n"
        "status history:\n"
        "  2025-01-31 12:00:00 UTC  PENDING\n"
        "  2025-01-31 12:00:01 UTC  RUNNING\n"
    )
    as_json = json.loads(run(*args, "--json").stdout)
    assert list(as_json) == [
        "invocation_id", "project_name", "function_name", "version_id", "status", "terminated",
        "created_at", "ended_at", "parent_invocation_id", "children", "attempts",
        "num_failed_attempts", "error", "status_history", "web_ui_url",
    ]
    assert (as_json["status"], as_json["terminated"], as_json["created_at"]) == (
        "RUNNING", False, "2025-01-31T12:00:00.500Z")
    assert as_json["attempts"] == [
        {"number": 1, "outcome": "failed", "started_at": "2025-01-31T12:00:01.500Z",
         "ended_at": "2025-01-31T12:00:02.750Z", "exit_code": 1, "logs_at": None,
         "error": {"type": "ValueError", "message": "bad\nsecond line", "traceback": "Traceback ...\n"}},
        {"number": 2, "outcome": "running", "started_at": "2025-01-31T12:00:03.500Z",
         "ended_at": None, "exit_code": None, "logs_at": None, "error": None},
    ]
    assert as_json["status_history"] == [{"status": "PENDING", "at": "2025-01-31T12:00:00.500Z"},
                                         {"status": "RUNNING", "at": "2025-01-31T12:00:01.500Z"}]
    assert [c["invocation_id"] for c in as_json["children"]] == [CHILD_ID]
    assert as_json["error"] is None and as_json["web_ui_url"] == described.web_ui_url


def test_web_ui_links(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = ConnectionSettings("127.0.0.1:7233", None, "my ns", "q", "default")
    assert _admin.invocation_url(INVOCATION_ID, settings) == (
        f"http://127.0.0.1:8233/namespaces/my%20ns/workflows/{INVOCATION_ID}"
    )
    monkeypatch.setenv("MULTINODE_UI_URL", "https://ui.example/")
    # Lists show invocations only, never the engine's own workflows.
    assert _admin.list_url('MultinodeProject = "p"', settings) == (
        "https://ui.example/namespaces/my%20ns/workflows?query=WorkflowType%20%3D%20%22multinode.Invocation%22"
        "%20AND%20%28MultinodeProject%20%3D%20%22p%22%29"
    )
    assert _admin.list_url(settings=settings, ui_url="http://127.0.0.1:9000/") == (
        "http://127.0.0.1:9000/namespaces/my%20ns/workflows?query=WorkflowType%20%3D%20%22multinode.Invocation%22"
    )
    monkeypatch.setenv("MULTINODE_UI_URL", "ftp://nope")
    with pytest.raises(multinode.errors.InvalidOptionError):
        _admin.invocation_url(INVOCATION_ID, settings)


def test_local_logs_read_everything_and_follow_until_the_attempt_ends(tmp_path: Path) -> None:
    path = tmp_path / "attempt-1.log"
    source = _logs.LocalLogSource(path, poll_seconds=0.02)
    assert not source.exists()
    assert list(source.chunks(follow=False, attempt_ended=lambda: True)) == []
    ended = threading.Event()
    seen = [threading.Event() for _ in range(5)]
    streamed: list[bool] = []

    def writer() -> None:
        # Each line is written only once the reader has the previous one (without it for 10 s,
        # the lines were not streamed: stop waiting, and say so).
        with open(path, "ab", buffering=0) as handle:
            for i in range(5):
                handle.write(f"line {i} é\n".encode())
                streamed.append(streamed[-1:] != [False] and seen[i].wait(timeout=10))
            handle.write(b"tail without newline")
        ended.set()

    thread = threading.Thread(target=writer)
    thread.start()
    lines = []
    for line in _logs.iter_lines(source.chunks(follow=True, attempt_ended=ended.is_set)):
        lines.append(line)
        if len(lines) <= len(seen):
            seen[len(lines) - 1].set()
    thread.join()
    assert lines == [f"line {i} é" for i in range(5)] + ["tail without newline"]
    assert streamed == [True] * 5  # each line read as written, not once at the end
    # After the attempt: the whole file, also in pieces bigger than one read.
    monkeypatch_chunk = _logs.READ_CHUNK_BYTES
    try:
        _logs.READ_CHUNK_BYTES = 7
        text = "".join(source.chunks(follow=False, attempt_ended=lambda: True))
    finally:
        _logs.READ_CHUNK_BYTES = monkeypatch_chunk
    assert text == path.read_text()


def test_log_sources_are_pluggable(isolated: Path) -> None:
    local = _logs.find_log_source(INVOCATION_ID, 2)
    assert isinstance(local, _logs.LocalLogSource)
    assert local.path == isolated / "runs" / INVOCATION_ID / "attempt-2.log"

    class Remote:
        description = "remote"

        def exists(self) -> bool:
            return True

        def chunks(self, *, follow: bool, attempt_ended: Any) -> Any:
            yield "from elsewhere\n"

    def factory(invocation_id: str, attempt: int) -> Any:
        return Remote() if attempt == 3 else None

    _logs.register_log_source(factory)
    try:
        assert _logs.find_log_source(INVOCATION_ID, 3).description == "remote"
        assert isinstance(_logs.find_log_source(INVOCATION_ID, 1), _logs.LocalLogSource)
    finally:
        _logs._factories.remove(factory)


def test_throttled_check() -> None:
    calls: list[int] = []
    answers = iter([False, True])

    def check() -> bool:
        calls.append(1)
        return next(answers)

    ask = _logs.throttled(check, every_seconds=0.2)
    assert ask() is False and ask() is False and len(calls) == 1
    time.sleep(0.25)
    assert ask() is True and ask() is True and len(calls) == 2
