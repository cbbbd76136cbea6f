"""The restart rules of a service, checked over any sequence of run endings (hypothesis) against
a plain model: the delay starts at 1 s and doubles to 60 s, a long enough stretch of health starts
it again from 1 s, three runs in a row that never got healthy stop the restarts with the log's
tail, and a port that cannot be used is FAILED at once without counting as a restart."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from multinode.contract.service_state import ServiceExit
from multinode.contract.services import ServiceStatus
from temporal_workers.workflows.service_restarts import (
    HEALTHY_RESET_SECONDS,
    MAX_DELAY_SECONDS,
    NEVER_HEALTHY_LIMIT,
    RestartRules,
)

pytestmark = pytest.mark.timeout(120)

PORT = 8080

exits = st.one_of(
    st.builds(lambda seconds: ServiceExit(ended_at=0.0, exit_code=1, ever_healthy=True, healthy_seconds=seconds),
              st.floats(min_value=0, max_value=600)),
    st.just(ServiceExit(ended_at=0.0, exit_code=-9, ever_healthy=False, log_tail="Traceback: boom\n")),
    st.just(ServiceExit(ended_at=0.0, start_error="port 8080 on 127.0.0.1 is already in use")),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(exits, max_size=40))
def test_rules_follow_the_model(sequence: list[ServiceExit]) -> None:
    rules = RestartRules()
    failures = never_healthy = 0
    for exit in sequence:
        decision = rules.after_exit(exit, PORT)
        if exit.start_error is not None:
            failures += 1
            assert decision.status == ServiceStatus.FAILED and decision.reason == exit.start_error
            assert decision.delay_seconds == MAX_DELAY_SECONDS and not decision.counts_as_restart
            continue
        if exit.ever_healthy and exit.healthy_seconds >= HEALTHY_RESET_SECONDS:
            failures = 0
        failures += 1
        never_healthy = 0 if exit.ever_healthy else never_healthy + 1
        assert decision.counts_as_restart
        if never_healthy >= NEVER_HEALTHY_LIMIT:
            assert decision.status == ServiceStatus.FAILED and decision.delay_seconds is None
            assert decision.reason is not None and "never became healthy" in decision.reason
            assert decision.reason.endswith("Traceback: boom\n")
            rules.reset()
            failures = never_healthy = 0
            continue
        assert decision.status == ServiceStatus.STARTING and decision.reason is None
        assert decision.delay_seconds == min(MAX_DELAY_SECONDS, 2.0 ** (failures - 1))
        assert 1.0 <= decision.delay_seconds <= MAX_DELAY_SECONDS


def test_delays_double_from_one_second_to_a_minute() -> None:
    rules = RestartRules()
    crash = ServiceExit(ended_at=0.0, exit_code=1, ever_healthy=True, healthy_seconds=1.0)
    delays = [rules.after_exit(crash, PORT).delay_seconds for _ in range(9)]
    assert delays == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    healthy_for_long = ServiceExit(ended_at=0.0, exit_code=1, ever_healthy=True, healthy_seconds=HEALTHY_RESET_SECONDS)
    assert rules.after_exit(healthy_for_long, PORT).delay_seconds == 1


def test_a_healthy_run_between_never_healthy_ones_keeps_it_restarting() -> None:
    rules = RestartRules()
    never = ServiceExit(ended_at=0.0, exit_code=1, log_tail="x")
    healthy = ServiceExit(ended_at=0.0, exit_code=1, ever_healthy=True, healthy_seconds=1.0)
    for exit in (never, never, healthy, never, never):
        assert rules.after_exit(exit, PORT).status == ServiceStatus.STARTING
    failed = rules.after_exit(never, PORT)
    assert failed.status == ServiceStatus.FAILED and failed.delay_seconds is None
    assert "never became healthy in 3 runs in a row (its process ended before port 8080 accepted" in (failed.reason or "")
