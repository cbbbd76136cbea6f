"""The frame protocol between an attempt's function process and its supervisor.

The runner writes to a pipe, one JSON frame per line:

    {"kind": "progress", "value": "<jsonpickle>"}     the latest yielded value
    {"kind": "result", "value": "<jsonpickle>"}       the final result
    {"kind": "child", "id": "<invocation id>"}        an invocation the function started
    {"kind": "error", "type": ..., "message": ..., "traceback": ...}

`FrameWriter` is the runner's side, `FrameReader` the supervisor's (the local backend on the
worker, the Fargate container's entrypoint). Imported by every attempt's process: standard
library only.
"""

from __future__ import annotations

import json
import threading
import time
from typing import IO, Any

PROGRESS = "progress"
RESULT = "result"
CHILD = "child"
ERROR = "error"
ERROR_FIELDS = ("type", "message", "traceback")

# Progress is coalesced: at most one frame per interval, always ending on the latest value.
PROGRESS_INTERVAL_SECONDS = 0.05


class FrameWriter:
    """Writes the frames; safe from any thread of the function."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self._pending: str | None = None
        self._last_sent = 0.0
        self._flusher: threading.Thread | None = None

    def _write(self, frame: dict[str, Any]) -> None:
        with self._lock:
            self._stream.write(json.dumps(frame, separators=(",", ":")) + "\n")
            self._stream.flush()

    def progress(self, encoded: str) -> None:
        now = time.monotonic()
        with self._lock:
            due = now - self._last_sent >= PROGRESS_INTERVAL_SECONDS
            if not due:
                self._pending = encoded
                if self._flusher is None:
                    self._flusher = threading.Thread(target=self._flush_loop, daemon=True)
                    self._flusher.start()
                return
            self._pending = None
            self._last_sent = now
        self._write({"kind": PROGRESS, "value": encoded})

    def _flush_loop(self) -> None:
        while True:
            time.sleep(PROGRESS_INTERVAL_SECONDS)
            with self._lock:
                encoded, self._pending = self._pending, None
                if encoded is not None:
                    self._last_sent = time.monotonic()
            if encoded is not None:
                self._write({"kind": PROGRESS, "value": encoded})

    def result(self, encoded: str) -> None:
        with self._lock:
            self._pending = None
        self._write({"kind": RESULT, "value": encoded})

    def child(self, invocation_id: str) -> None:
        self._write({"kind": CHILD, "id": invocation_id})

    def error(self, type_name: str, message: str, traceback: str) -> None:
        """The function's failure, cut to the limits an error may have."""
        from multinode.contract import limits as L

        if len(traceback) > L.ERROR_TRACEBACK_MAX_CHARS:
            keep = L.ERROR_TRACEBACK_MAX_CHARS // 2
            traceback = traceback[:keep] + "\n... (traceback truncated) ...\n" + traceback[-keep:]
        if len(message) > L.ERROR_MESSAGE_MAX_CHARS:
            message = message[: L.ERROR_MESSAGE_MAX_CHARS] + "... (truncated)"
        with self._lock:
            self._pending = None
        self._write({"kind": ERROR, "type": type_name, "message": message, "traceback": traceback})


class FrameReader:
    """What the frames said so far; only the latest progress is kept. Not thread-safe: a reader
    on another thread than its users holds a lock around `feed`."""

    def __init__(self) -> None:
        self.progress: str | None = None
        self.progress_version = 0  # how many progress frames arrived
        self.result: str | None = None
        self.has_result = False
        # The error frame's fields as written (see ERROR_FIELDS), or None.
        self.error: dict[str, Any] | None = None
        self.children: list[str] = []

    @property
    def has_progress(self) -> bool:
        return self.progress_version > 0

    def feed(self, line: bytes) -> str | None:
        """Take one line; returns the kind of frame it was, None if it was none of ours."""
        try:
            frame = json.loads(line)
        except ValueError:
            return None
        if not isinstance(frame, dict):
            return None
        kind = frame.get("kind")
        if kind == PROGRESS:
            self.progress, self.progress_version = frame["value"], self.progress_version + 1
            return PROGRESS
        if kind == RESULT:
            self.result, self.has_result = frame["value"], True
            return RESULT
        if kind == CHILD:
            self.children.append(str(frame["id"]))
            return CHILD
        if kind == ERROR:
            self.error = {name: frame[name] for name in ERROR_FIELDS if name in frame}
            return ERROR
        return None
