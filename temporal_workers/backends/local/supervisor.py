"""The supervisor of one attempt's process on this machine: it reads the runner's frames,
heartbeats, enforces the timeout, turns a cancel into SIGTERM (the timeout into SIGUSR1), kills
after the grace period, reaps everything the attempt started, and classifies how it ended."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import time

from multinode.contract.records import AttemptOutcome, AttemptProgress, AttemptRequest, ErrorInfo
from multinode.runtime.frames import PROGRESS, FrameReader
from temporal_workers.backends import AttemptSession, InfrastructureError
from temporal_workers.backends.local.cgroups import Cgroup
from temporal_workers.backends.local.forkserver import FORK_SERVER_LOST
from temporal_workers.backends.local.process import AttemptProcess, Background, kill_tree, reap, send_signal
from temporal_workers.backends.outcome import (
    ended,
    exit_error,
    memory_limit_error,
    reported_error,
    signal_error,
)

# How often the supervisor wakes to heartbeat when nothing else happens; cancellation reaches the
# activity only through heartbeat responses, so this bounds cancel latency.
TICK_SECONDS = 0.25
# Functions shorter than this never cost the workflow an extra task for the RUNNING transition:
# their start time still arrives with the outcome.
NOTIFY_STARTED_AFTER_SECONDS = 0.2
# A line longer than this cannot be one of the runner's frames.
MAX_FRAME_BYTES = 2**24


class AttemptSupervisor:
    def __init__(
        self,
        request: AttemptRequest,
        session: AttemptSession,
        proc: AttemptProcess,
        cgroup: Cgroup | None,
        started_at: float,
        grace_seconds: float,
        in_background: Background,
    ) -> None:
        self.request = request
        self.session = session
        self.proc = proc
        self.cgroup = cgroup
        self.started_at = started_at
        self.grace_seconds = grace_seconds
        self.in_background = in_background
        self.frames = FrameReader()
        # Set by a progress frame: the only news a heartbeat carries, the rest comes at the exit.
        self.progressed = asyncio.Event()

    async def run(self, report_fd: int) -> AttemptOutcome:
        """Supervise the process to its end, reading its frames from `report_fd` (taken over)."""
        proc, cgroup = self.proc, self.cgroup
        reader = asyncio.StreamReader(limit=MAX_FRAME_BYTES)
        transport, _ = await asyncio.get_running_loop().connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(report_fd, "rb")
        )
        pump = asyncio.ensure_future(self._pump(reader))
        reaped = False
        try:
            interrupt = await self._supervise()
            # Every frame the process wrote is read before its ending is judged (the pipe's
            # writer is closed once the process and its group are gone).
            await reap(proc, cgroup)
            reaped = True
            try:
                await asyncio.wait_for(asyncio.shield(pump), timeout=2.0)
            except TimeoutError:
                pass
            return self._outcome(interrupt)
        finally:
            if not reaped:  # leaving abnormally: nothing may outlive the attempt
                if proc.returncode is None:
                    kill_tree(proc, cgroup)
                await reap(proc, cgroup)
            pump.cancel()
            transport.close()

    async def _pump(self, reader: asyncio.StreamReader) -> None:
        while True:
            try:
                line = await reader.readline()
            except ValueError:  # a line over the stream limit: cannot be one of ours
                continue
            if not line:
                return
            if self.frames.feed(line) == PROGRESS:
                self.progressed.set()

    async def _supervise(self) -> str | None:
        """Watch the attempt until its process exits: heartbeats, the timeout, cancellation,
        the grace period and the kill. Returns what interrupted it, if anything."""
        request, session, proc, cgroup, frames = self.request, self.session, self.proc, self.cgroup, self.frames
        started_at = self.started_at
        options = request.invocation.options
        grace = self.grace_seconds
        started = time.monotonic()
        deadline = started + options.timeout_seconds
        interrupt: str | None = None
        kill_at: float | None = None
        notified = False
        exited = asyncio.ensure_future(proc.wait())

        def heartbeat() -> None:
            phase = "running" if interrupt is None else "stopping"
            session.heartbeat(
                AttemptProgress(
                    request.attempt_number, phase, started_at, frames.progress, frames.has_progress
                )
            )

        def interrupt_with(kind: str, signum: int) -> None:
            nonlocal interrupt, kill_at
            interrupt, kill_at = kind, time.monotonic() + grace
            send_signal(proc, signum)

        # No heartbeat before the first tick or progress, nor after the exit (the outcome says
        # it all): an attempt that ends within a tick costs the control plane no write for one.
        while not exited.done():
            now = time.monotonic()
            wake = now + TICK_SECONDS
            if interrupt is None:
                wake = min(wake, deadline)
            elif kill_at is not None:
                wake = min(wake, kill_at)
            changed = asyncio.ensure_future(self.progressed.wait())
            try:
                await asyncio.wait([exited, changed], timeout=max(0.0, wake - now),
                                   return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None:
                    task.uncancel()
                reason = session.interruption()
                if reason != "cancel":
                    # The engine gave up on this attempt (worker shutting down, or it timed the
                    # attempt out): stop now, the engine runs it again elsewhere.
                    kill_tree(proc, cgroup)
                    await reap(proc, cgroup)
                    raise InfrastructureError(f"attempt interrupted by the engine ({reason})") from None
                if interrupt is None:
                    interrupt_with("cancel", signal.SIGTERM)
            finally:
                changed.cancel()
            self.progressed.clear()
            now = time.monotonic()
            if interrupt is None and now >= deadline:
                interrupt_with("timeout", signal.SIGUSR1)
            if kill_at is not None and now >= kill_at:
                kill_tree(proc, cgroup)
                kill_at = None
            if not notified and interrupt is None and now - started >= NOTIFY_STARTED_AFTER_SECONDS:
                notified = True
                self.in_background(session.notify_started(started_at))
            if not exited.done():
                heartbeat()
        return interrupt

    def _outcome(self, interrupt: str | None) -> AttemptOutcome:
        returncode, frames = self.proc.returncode, self.frames
        if returncode == FORK_SERVER_LOST:
            raise InfrastructureError("the fork server holding the attempt exited")
        outcome = ended(
            self.request,
            interrupt=interrupt,
            exit_code=returncode,
            started_at=self.started_at,
            last=(frames.progress, frames.has_progress),
            result=(frames.result, frames.has_result),
            error=reported_error(frames.error),
            crash_error=lambda: crash_error(self.request, returncode, self.cgroup),
        )
        return dataclasses.replace(outcome, children=list(frames.children))


def crash_error(request: AttemptRequest, returncode: int | None, cgroup: Cgroup | None) -> ErrorInfo:
    """Why the function's process ended without reporting a result or an error."""
    if cgroup is not None and cgroup.oom_killed():
        return memory_limit_error(request.invocation.options.memory_mib)
    if returncode is not None and returncode < 0:
        return signal_error(returncode, -returncode)
    return exit_error(returncode)
