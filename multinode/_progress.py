"""`ProgressLine`: the one-line display of a long map (done/total, rate and time left)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

# Redrawing more often than this only costs the terminal.
REDRAW_SECONDS = 0.1


class ProgressLine:
    def __init__(self, total: int | None, progress: bool | TextIO) -> None:
        self._stream: TextIO = sys.stderr if progress is True else progress  # type: ignore[assignment]
        self._total = total
        self._done = 0
        self._started = time.monotonic()
        self._drawn = 0.0

    def step(self) -> None:
        self._done += 1
        now = time.monotonic()
        if now - self._drawn >= REDRAW_SECONDS or self._done == self._total:
            self._drawn = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        elapsed = max(now - self._started, 1e-9)
        rate = self._done / elapsed
        if self._total:
            width = 30
            filled = int(width * self._done / self._total)
            left = (self._total - self._done) / rate if rate else 0.0
            line = (f"[{'#' * filled}{'.' * (width - filled)}] {self._done}/{self._total} "
                    f"{rate:.1f}/s, {left:.0f} s left")
        else:
            line = f"{self._done} done, {rate:.1f}/s"
        self._stream.write("\r" + line)
        self._stream.flush()

    def close(self) -> None:
        self._draw(time.monotonic())
        self._stream.write("\n")
        self._stream.flush()
