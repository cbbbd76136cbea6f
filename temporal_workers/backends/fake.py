"""A backend with scripted attempts and no processes: for tests of the engine plumbing
(workflow, retries, statuses) that must not depend on how containers run."""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable

from multinode.contract.records import AttemptOutcome, AttemptProgress, AttemptRequest, Outcome
from temporal_workers.backends import AttemptSession, ContainerBackend

Script = Callable[[AttemptRequest, int], AttemptOutcome | Awaitable[AttemptOutcome]]


def echo_first_argument(request: AttemptRequest, run: int) -> AttemptOutcome:
    """Succeed with the first argument as the result, still encoded: the fake never decodes."""
    args = request.invocation.args
    now = time.time()
    return AttemptOutcome(Outcome.SUCCEEDED, args[0] if args else None, None, now, now,
                          exit_code=0, has_value=True)


class FakeBackend(ContainerBackend):
    name = "fake"

    def __init__(self, script: Script = echo_first_argument) -> None:
        self._script = script
        self.runs: list[AttemptRequest] = []

    async def run_attempt(self, request: AttemptRequest, session: AttemptSession) -> AttemptOutcome:
        self.runs.append(request)
        session.heartbeat(AttemptProgress(request.attempt_number, "running", time.time()))
        outcome = self._script(request, len(self.runs))
        if inspect.isawaitable(outcome):
            outcome = await outcome
        return outcome
