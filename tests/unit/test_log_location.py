"""Where an attempt ran, for its logs: the location the local backend records with each attempt,
how `multinode logs` uses it, and one preparation of a version shared by the attempts that wait
for it (each heartbeating, so none is timed out while a slow store or build holds them up)."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import threading
from pathlib import Path

import pytest

from multinode.admin import logs as _logs
from multinode.contract.connection import ConnectionSettings
from multinode.contract.log_location import log_location, machine_name, parse_log_location
from multinode.contract.records import AttemptProgress
from multinode.errors import MultinodeError
from multinode.runtime.preparation import PreparedVersion
from temporal_workers.backends.local.backend import LocalBackend
from temporal_workers.settings import WorkerSettings
from tests.unit.scripted_fargate import request

pytestmark = pytest.mark.timeout(30)

INVOCATION_ID = "inv-0000000000abcdefghjkmnpqrs"


def test_a_machine_is_named_by_its_setting_else_its_host_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MULTINODE_MACHINE_NAME", raising=False)
    assert machine_name() == socket.gethostname()
    monkeypatch.setenv("MULTINODE_MACHINE_NAME", "gpu-box-3")
    location = log_location(Path("/srv/mn/runs/inv-x/attempt-1.log"))
    assert location == "gpu-box-3:/srv/mn/runs/inv-x/attempt-1.log"
    assert parse_log_location(location) == ("gpu-box-3", Path("/srv/mn/runs/inv-x/attempt-1.log"))


def test_logs_of_an_attempt_on_this_machine_are_read_from_its_file_whatever_the_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MULTINODE_MACHINE_NAME", "machine-a")
    monkeypatch.setenv("MULTINODE_HOME", str(tmp_path / "another-home"))
    written = tmp_path / "worker-home" / "runs" / INVOCATION_ID / "attempt-2.log"
    written.parent.mkdir(parents=True)
    written.write_text("hello\n")
    source = _logs.find_log_source(INVOCATION_ID, 2, f"machine-a:{written}")
    assert source.exists() and "".join(source.chunks(follow=False, attempt_ended=lambda: True)) == "hello\n"


def test_logs_of_an_attempt_on_another_machine_say_where_they_are(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MULTINODE_MACHINE_NAME", "machine-a")
    with pytest.raises(MultinodeError) as raised:
        _logs.find_log_source(INVOCATION_ID, 2, "machine-b:/srv/mn/runs/inv-x/attempt-2.log")
    message = str(raised.value)
    assert "attempt 2 of inv-0000000000abcdefghjkmnpqrs ran on another machine, 'machine-b'" in message
    assert "/srv/mn/runs/inv-x/attempt-2.log" in message and "'machine-a'" in message


class Heartbeats:
    def __init__(self) -> None:
        self.progress: list[AttemptProgress] = []

    def heartbeat(self, progress: AttemptProgress) -> None:
        self.progress.append(progress)

    async def notify_started(self, started_at: float) -> None:
        pass

    def interruption(self) -> str:
        return "cancel"


@pytest.mark.asyncio
async def test_attempts_waiting_for_a_version_being_prepared_share_it_and_heartbeat(tmp_path: Path) -> None:
    connection = ConnectionSettings("127.0.0.1:7233", None, "default", "multinode", "environment")
    backend = LocalBackend(WorkerSettings(connection=connection, home=tmp_path, fork_server=False))
    release, calls = threading.Event(), []

    def slow_preparation(_package: object, _requirements_sha256: object) -> PreparedVersion:
        calls.append(1)
        release.wait(10)  # a fetch from a remote store, or a venv build
        return PreparedVersion(tmp_path / "code", tmp_path / "python")

    backend._prepare_sync = slow_preparation  # type: ignore[method-assign]
    sessions = [Heartbeats(), Heartbeats()]
    first = request()
    second = dataclasses.replace(first, attempt_number=1)
    waiting = [asyncio.ensure_future(backend._prepare(r, s)) for r, s in zip((first, second), sessions, strict=True)]
    await asyncio.sleep(2.5)
    release.set()
    prepared = await asyncio.gather(*waiting)
    assert calls == [1] and prepared[0] is prepared[1]
    # Each waiter kept its attempt alive (about one heartbeat a second), not only the preparer.
    assert all(len(s.progress) >= 2 for s in sessions), [len(s.progress) for s in sessions]
    assert {p.phase for s in sessions for p in s.progress} == {"preparing"}
    await backend.close()
