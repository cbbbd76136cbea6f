"""The restart rules of a service (pure: no Temporal, no clock; the service workflow drives them).

A process that ends on its own is restarted after a delay that starts at about a second and
doubles up to a minute; a stretch of health (its port accepting connections for long enough)
resets the delay. A run that never got healthy counts too: after `NEVER_HEALTHY_LIMIT` of them
in a row the service is FAILED with the tail of its log instead of restarting silently forever.
A port already taken is FAILED at once (retried slowly, in case it frees up, but never hidden
behind a STARTING status).
"""

from __future__ import annotations

from dataclasses import dataclass

from multinode.contract.service_state import RestartState, ServiceExit
from multinode.contract.services import ServiceStatus

FIRST_DELAY_SECONDS = 1.0
MAX_DELAY_SECONDS = 60.0
# Healthy at least this long: the next end starts the delays from the first again.
HEALTHY_RESET_SECONDS = 60.0
NEVER_HEALTHY_LIMIT = 3
# How much of the log a never-healthy service shows in its reason.
LOG_TAIL_CHARS = 2_000


@dataclass(frozen=True)
class RestartDecision:
    """What to do after a run ended: wait `delay_seconds` then start again (None: do not restart
    until a new deploy), showing `status` and `reason` meanwhile."""

    status: ServiceStatus
    delay_seconds: float | None
    reason: str | None
    counts_as_restart: bool


class RestartRules:
    """Decides, run after run, when a service's process starts again. Holds its memory in a
    `RestartState` that the workflow carries across continue-as-new."""

    def __init__(self, state: RestartState | None = None) -> None:
        self.state = state or RestartState()

    def reset(self) -> None:
        """A new target (deploy, upgrade): the past of the previous one does not count."""
        self.state = RestartState()

    def delay_for(self, failures: int) -> float:
        """The pause before the next start after `failures` ends in a row (1 s, 2 s, 4 s ...)."""
        if failures <= 0:
            return 0.0
        return min(MAX_DELAY_SECONDS, FIRST_DELAY_SECONDS * 2.0 ** min(failures - 1, 32))

    def after_exit(self, exit: ServiceExit, port: int) -> RestartDecision:
        state = self.state
        if exit.start_error is not None:
            state.failures += 1
            return RestartDecision(ServiceStatus.FAILED, MAX_DELAY_SECONDS, exit.start_error, False)
        if exit.ever_healthy and exit.healthy_seconds >= HEALTHY_RESET_SECONDS:
            state.failures = 0
        state.failures += 1
        if exit.ever_healthy:
            state.never_healthy = 0
        else:
            state.never_healthy += 1
            if state.never_healthy >= NEVER_HEALTHY_LIMIT:
                why = exit.unhealthy_reason or (
                    f"its process ended before port {port} accepted connections"
                )
                return RestartDecision(
                    ServiceStatus.FAILED,
                    None,
                    f"never became healthy in {state.never_healthy} runs in a row ({why}); "
                    f"not restarted until the next deploy. Last lines of its log:\n"
                    + exit.log_tail[-LOG_TAIL_CHARS:],
                    True,
                )
        return RestartDecision(ServiceStatus.STARTING, self.delay_for(state.failures), None, True)
