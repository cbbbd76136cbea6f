"""The frame protocol: what the runner's writer puts on the pipe, the supervisors' reader takes."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest

from multinode.contract import limits
from multinode.runtime.frames import CHILD, ERROR, PROGRESS, RESULT, FrameReader, FrameWriter

pytestmark = pytest.mark.timeout(30)


def read_all(text: str) -> tuple[FrameReader, list[str | None]]:
    reader = FrameReader()
    kinds = [reader.feed(line.encode()) for line in text.splitlines(keepends=True)]
    return reader, kinds


def test_what_the_writer_writes_the_reader_reads() -> None:
    stream = io.StringIO()
    writer = FrameWriter(stream)
    writer.progress('"first"')
    writer.child("inv-child")
    writer.error("ValueError", "bad input", "Traceback ...")
    writer.result('"done"')
    reader, kinds = read_all(stream.getvalue())
    assert kinds == [PROGRESS, CHILD, ERROR, RESULT]
    assert (reader.progress, reader.has_progress, reader.progress_version) == ('"first"', True, 1)
    assert (reader.result, reader.has_result) == ('"done"', True)
    assert reader.children == ["inv-child"]
    assert reader.error == {"type": "ValueError", "message": "bad input", "traceback": "Traceback ..."}


def test_only_the_latest_progress_is_kept_and_every_one_is_counted() -> None:
    reader = FrameReader()
    for value in ('"1"', '"2"', '"3"'):
        assert reader.feed(json.dumps({"kind": "progress", "value": value}).encode()) == PROGRESS
    assert (reader.progress, reader.progress_version) == ('"3"', 3)


@pytest.mark.parametrize("line", [b"not json\n", b"[1, 2]\n", b'{"kind": "unknown"}\n', b"42\n", b"\n"])
def test_lines_that_are_not_frames_change_nothing(line: bytes) -> None:
    reader = FrameReader()
    assert reader.feed(line) is None
    assert (reader.has_progress, reader.has_result, reader.error, reader.children) == (False, False, None, [])


def test_an_error_frame_keeps_only_the_fields_it_has() -> None:
    reader = FrameReader()
    assert reader.feed(b'{"kind": "error", "message": "m", "extra": 1}') == ERROR
    assert reader.error == {"message": "m"}


def test_the_writer_cuts_an_error_to_its_limits() -> None:
    stream = io.StringIO()
    message = "m" * (limits.ERROR_MESSAGE_MAX_CHARS + 10)
    traceback = "head" + "t" * limits.ERROR_TRACEBACK_MAX_CHARS + "tail"
    FrameWriter(stream).error("RuntimeError", message, traceback)
    reader, _ = read_all(stream.getvalue())
    assert reader.error is not None
    assert reader.error["message"] == "m" * limits.ERROR_MESSAGE_MAX_CHARS + "... (truncated)"
    kept = reader.error["traceback"]
    marker = "\n... (traceback truncated) ...\n"
    assert kept.startswith("head") and kept.endswith("tail") and marker in kept
    assert len(kept) == limits.ERROR_TRACEBACK_MAX_CHARS // 2 * 2 + len(marker)


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "module",
    ["runner", "forkserver", "frames", "preparation", "fargate_run"],
)
def test_the_attempts_runtime_stays_lean(module: str) -> None:
    code = (
        f"import sys, multinode.runtime.{module}; "
        "print(sorted(m for m in sys.modules "
        "if m.split('.')[0] in {'temporalio', 'boto3', 'botocore', 'pydantic', 'temporal_workers'}))"
    )
    completed = subprocess.run([sys.executable, "-c", code], check=True, timeout=50,
                               capture_output=True, text=True)
    assert completed.stdout.strip() == "[]"


@pytest.mark.timeout(60)
def test_the_fargate_container_does_not_need_the_worker() -> None:
    code = (
        "import sys, multinode.runtime.fargate_container; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'temporal_workers', 'temporalio'}))"
    )
    completed = subprocess.run([sys.executable, "-c", code], check=True, timeout=50,
                               capture_output=True, text=True)
    assert completed.stdout.strip() == "[]"
