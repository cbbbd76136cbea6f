"""An attempt's logs: every line the function wrote (stdout and stderr), readable after its
container is gone, and followable live until the attempt ends.

Where logs live depends on the backend, so reading goes through a small seam: a `LogSource`
per (invocation, attempt), found by the registered factories. The local backend writes
`$MULTINODE_HOME/runs/<invocation_id>.attempt-<n>.log` on the worker's machine (attempts from before
kept `runs/<invocation_id>/attempt-<n>.log`, still read) and records that location with the
attempt (`machine:path`): an attempt that ran on this machine is read from its file whatever the
state folder, one that ran on another machine gets an error saying where its logs are. A Fargate
reader (CloudWatch) plugs in with `register_log_source`. `read_logs` picks the attempt (asking
the engine which ones ran) and its source.
"""

from __future__ import annotations

import codecs
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from multinode._client import Client, default_client
from multinode._invocation import check_owner
from multinode.contract.connection import attempt_log_path, folder_attempt_log_path, multinode_home
from multinode.contract.ids import check_invocation_id
from multinode.contract.log_location import machine_name, parse_log_location
from multinode.errors import MultinodeError

if TYPE_CHECKING:
    from multinode.contract.records import InvocationRecord

READ_CHUNK_BYTES = 1 << 20
POLL_SECONDS = 0.2
# How often a follower asks the engine whether the attempt has ended.
FOLLOW_CHECK_SECONDS = 0.5


class LogSource(Protocol):
    """The logs of one attempt."""

    description: str  # where they are, for messages

    def exists(self) -> bool:
        """Whether anything was written yet."""

    def chunks(self, *, follow: bool, attempt_ended: Callable[[], bool]) -> Iterator[str]:
        """Yield the text written so far; with `follow`, keep yielding new text as it is written
        until `attempt_ended()` is true, then yield what is left and stop."""


LogSourceFactory = Callable[[str, int], "LogSource | None"]


class LocalLogSource:
    """A log file written by the local backend, read by offset (never loaded whole)."""

    def __init__(self, path: Path, poll_seconds: float = POLL_SECONDS) -> None:
        self.path = path
        self.description = str(path)
        self._poll_seconds = poll_seconds

    def exists(self) -> bool:
        return self.path.is_file()

    def _read(self, offset: int) -> bytes:
        try:
            with open(self.path, "rb") as handle:
                handle.seek(offset)
                return handle.read(READ_CHUNK_BYTES)
        except FileNotFoundError:
            return b""

    def chunks(self, *, follow: bool, attempt_ended: Callable[[], bool]) -> Iterator[str]:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        offset = 0
        while True:
            # Asked before reading: once the attempt has ended, this read gets everything.
            ended = not follow or attempt_ended()
            while data := self._read(offset):
                offset += len(data)
                text = decoder.decode(data)
                if text:
                    yield text
            if ended:
                tail = decoder.decode(b"", final=True)
                if tail:
                    yield tail
                return
            time.sleep(self._poll_seconds)


def local_log_path(invocation_id: str, attempt: int) -> Path:
    """The attempt's log file, in the layout it was written in (a folder per invocation before)."""
    runs = multinode_home() / "runs"
    path = attempt_log_path(runs, invocation_id, attempt)
    older = folder_attempt_log_path(runs, invocation_id, attempt)
    return older if not path.exists() and older.exists() else path


def _local_factory(invocation_id: str, attempt: int) -> LogSource | None:
    return LocalLogSource(local_log_path(invocation_id, attempt))


_factories: list[LogSourceFactory] = []


def register_log_source(factory: LogSourceFactory) -> None:
    """Add a reader for another backend's logs; it is asked before the local one and returns
    None when it has nothing for this attempt."""
    if factory not in _factories:
        _factories.append(factory)


def _fargate_factory(invocation_id: str, attempt: int) -> LogSource | None:
    """Attempts that ran on Fargate: their CloudWatch stream (only when the package store is an
    S3 bucket, where the worker records each attempt's task)."""
    store = os.environ.get("MULTINODE_PACKAGE_STORE", "")
    if not store.startswith("s3://"):
        return None
    from multinode.admin.cloudwatch import fargate_log_source

    return fargate_log_source(store, invocation_id, attempt)


def find_log_source(invocation_id: str, attempt: int, logs_at: str | None = None) -> LogSource:
    """The source of this attempt's logs. With `logs_at` (the worker kept them on its machine):
    that file, if the machine is this one, else a MultinodeError saying where they are. Without:
    the first source that has logs for it; else the local one (which a follower waits on until
    the attempt writes its first line)."""
    if logs_at is not None:
        machine, path = parse_log_location(logs_at)
        if machine != machine_name():
            raise MultinodeError(
                f"attempt {attempt} of {invocation_id} ran on another machine, {machine!r}: its "
                f"logs are there, in {path}. Read them on that machine (multinode logs works there "
                f"too) or copy the file; this machine is {machine_name()!r} (MULTINODE_MACHINE_NAME "
                "or the host name)"
            )
        return LocalLogSource(path)
    for factory in [*_factories, _fargate_factory]:
        source = factory(invocation_id, attempt)
        if source is not None and source.exists():
            return source
    local = _local_factory(invocation_id, attempt)
    assert local is not None
    return local


class LateLogSource:
    """The logs of an attempt followed before it wrote anything, whose place may not be known
    yet (a Fargate task's stream is found through the task the worker records once RunTask has
    answered): each look asks the factories again, until one has the logs or the attempt ends."""

    def __init__(self, invocation_id: str, attempt: int, poll_seconds: float = POLL_SECONDS) -> None:
        self._invocation_id = invocation_id
        self._attempt = attempt
        self._poll_seconds = poll_seconds
        self.description = "where the attempt writes once it runs"

    def exists(self) -> bool:
        return find_log_source(self._invocation_id, self._attempt).exists()

    def chunks(self, *, follow: bool, attempt_ended: Callable[[], bool]) -> Iterator[str]:
        while True:
            ended = not follow or attempt_ended()
            source = find_log_source(self._invocation_id, self._attempt)
            if ended or source.exists():
                yield from source.chunks(follow=not ended, attempt_ended=attempt_ended)
                return
            time.sleep(self._poll_seconds)


def iter_lines(chunks: Iterable[str]) -> Iterator[str]:
    """Whole lines (without their newline) from text chunks; a last unterminated line too."""
    pending = ""
    for chunk in chunks:
        pending += chunk
        *lines, pending = pending.split("\n")
        yield from lines
    if pending:
        yield pending


def throttled(check: Callable[[], bool], every_seconds: float) -> Callable[[], bool]:
    """`check`, asked at most once per `every_seconds` (it costs a round trip); true stays true."""
    state = {"at": float("-inf"), "value": False}

    def ask() -> bool:
        now = time.monotonic()
        if not state["value"] and now - state["at"] >= every_seconds:
            state["value"], state["at"] = check(), now
        return bool(state["value"])

    return ask


@dataclass(frozen=True)
class LogStream:
    invocation_id: str
    attempt: int
    source: str  # where the lines come from
    chunks: Iterator[str]  # the text, as written; ends with the attempt when following


def read_logs(
    invocation_id: str,
    *,
    project_name: str | None = None,
    function_name: str | None = None,
    attempt: int | None = None,
    follow: bool = False,
    client: Client | None = None,
) -> LogStream:
    """Everything an attempt (the latest by default) wrote to stdout and stderr. With
    `follow`, the stream goes on with new text until the attempt ends."""
    check_invocation_id(invocation_id)
    if attempt is not None and attempt < 1:
        raise MultinodeError(f"attempt numbers start at 1 (got {attempt})")
    client = client or default_client()

    async def state() -> tuple[InvocationRecord, bool, int | None, str | None]:
        engine = await client.engine()
        record, terminated = await engine.get_invocation(invocation_id)
        progress = None if terminated else await engine.attempt_progress(invocation_id)
        if progress is None:
            return record, terminated, None, None
        return record, terminated, progress.attempt_number, progress.logs_at

    record, terminated, running, running_logs_at = client.run(state())
    check_owner(record, project_name, function_name)
    numbers = {a.number for a in record.attempts} | ({running} if running else set())
    latest = max(numbers) if numbers else None
    if attempt is None:
        if latest is None and (terminated or not follow):
            raise MultinodeError(
                f"invocation {invocation_id} has not run an attempt yet (status {record.status})"
                + ("" if terminated else "; wait for its first line with --follow")
            )
        attempt = latest or 1
    elif attempt not in numbers and (terminated or not follow or attempt < (latest or 0)):
        raise MultinodeError(
            f"invocation {invocation_id} has no attempt {attempt} (it has run "
            f"{len(numbers)} attempt{'s' if len(numbers) != 1 else ''})"
        )
    number = attempt
    # Where the attempt's worker said it keeps the logs: the record of an attempt that ended (the
    # last run of that number), else the running attempt's heartbeat.
    recorded = [a.logs_at for a in record.attempts if a.number == number]
    logs_at = recorded[-1] if recorded else running_logs_at if number == running else None
    source = find_log_source(invocation_id, number, logs_at)

    def attempt_ended() -> bool:
        async def ended() -> bool:
            engine = await client.engine()
            current, closed = await engine.get_invocation(invocation_id)
            return closed or number in {a.number for a in current.attempts}

        return client.run(ended())

    finished = terminated or number in {a.number for a in record.attempts}
    if not follow or finished:
        if not source.exists():
            raise MultinodeError(
                f"no logs found for attempt {number} of {invocation_id} (looked at "
                f"{source.description}; logs are kept where the attempt ran)"
            )
        chunks = source.chunks(follow=False, attempt_ended=lambda: True)
    else:
        if logs_at is None and not source.exists():  # not known yet: a task not yet launched
            source = LateLogSource(invocation_id, number)
        chunks = source.chunks(follow=True, attempt_ended=throttled(attempt_ended, FOLLOW_CHECK_SECONDS))
    return LogStream(invocation_id, number, source.description, chunks)
