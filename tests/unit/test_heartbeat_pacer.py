"""The heartbeat economy (issue 18 item 4): a quiet attempt heartbeats once per half heartbeat
timeout, news goes out at most every NEWS_SECONDS and is never lost, only delayed."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from datetime import timedelta
from typing import Any

import pytest
from temporalio.testing import ActivityEnvironment

from multinode.contract.records import AttemptProgress
from temporal_workers.activities.attempt import _ActivitySession
from temporal_workers.activities.heartbeat_pacer import NEWS_SECONDS, HeartbeatPacer

pytestmark = pytest.mark.timeout(10)

RUNNING = AttemptProgress(1, "running", 100.0)


def yielded(value: str) -> AttemptProgress:
    return AttemptProgress(1, "running", 100.0, value, True)


def test_a_quiet_attempt_heartbeats_once_per_half_timeout() -> None:
    pacer = HeartbeatPacer.for_timeout(5.0)
    sent = [t / 4 for t in range(4 * 60) if pacer.offer(RUNNING, t / 4)]  # offered every 0.25 s for a minute
    assert sent[0] == 0.0
    gaps = [b - a for a, b in itertools.pairwise(sent)]
    assert min(gaps) >= 2.5
    assert len(sent) <= 60 / 2.5 + 1


def test_news_goes_out_at_once_then_at_most_every_news_seconds() -> None:
    pacer = HeartbeatPacer.for_timeout(5.0)
    assert pacer.offer(RUNNING, 0.0)
    assert pacer.offer(yielded("1"), 3.0)  # first news after a quiet spell: at once
    assert not pacer.offer(yielded("2"), 3.1)
    assert not pacer.offer(yielded("3"), 3.2)  # replaces "2": only the latest matters
    assert pacer.held_until() == pytest.approx(3.0 + NEWS_SECONDS)
    assert pacer.take_held(3.5) is None  # not due yet
    assert pacer.take_held(3.0 + NEWS_SECONDS) == yielded("3")
    assert pacer.held_until() is None
    assert not pacer.offer(yielded("3"), 3.9)  # no news: only liveness, due 2.5 s later
    assert pacer.offer(yielded("3"), 3.0 + NEWS_SECONDS + 2.5)


def test_a_new_phase_is_news() -> None:
    pacer = HeartbeatPacer.for_timeout(5.0)
    assert pacer.offer(AttemptProgress(1, "preparing", None), 0.0)
    assert not pacer.offer(AttemptProgress(1, "running", 1.0), 0.1)
    assert pacer.take_held(NEWS_SECONDS) == AttemptProgress(1, "running", 1.0)


def test_a_yield_every_tenth_of_a_second_goes_out_at_most_every_news_seconds() -> None:
    pacer = HeartbeatPacer.for_timeout(5.0)
    sent: list[float] = []
    for step in range(600):  # a minute of yields every 0.1 s, the timer checked at each step
        now = step / 10
        if pacer.offer(yielded(str(step)), now) or pacer.take_held(now) is not None:
            sent.append(now)
    gaps = [b - a for a, b in itertools.pairwise(sent)]
    assert min(gaps) >= NEWS_SECONDS - 1e-9
    assert max(gaps) <= 1.0  # and news is never more than a second old
    assert len(sent) <= 60 / NEWS_SECONDS + 1


def test_no_timeout_known_falls_back_to_a_safe_pace() -> None:
    assert HeartbeatPacer.for_timeout(None).idle_seconds == 2.5
    assert HeartbeatPacer.for_timeout(1.0).news_seconds == 0.5  # never slower than liveness


async def _session_heartbeats(session: Any) -> None:
    session.heartbeat(RUNNING)
    session.heartbeat(RUNNING)  # nothing new, and liveness is not due: dropped
    session.heartbeat(yielded("1"))  # news too soon: held, then sent by a timer
    await asyncio.sleep(NEWS_SECONDS + 0.3)
    session.heartbeat(yielded("2"))  # held...
    session.close()  # ...and never sent: the attempt has ended


def test_the_activity_session_paces_its_heartbeats() -> None:
    environment = ActivityEnvironment()
    environment.info = dataclasses.replace(environment.info, heartbeat_timeout=timedelta(seconds=5))
    sent: list[Any] = []
    environment.on_heartbeat = lambda *details: sent.append(details[0])

    async def run() -> None:
        session = _ActivitySession(None, "workflow", 1, None)  # type: ignore[arg-type]
        await _session_heartbeats(session)

    asyncio.run(environment.run(run))
    assert sent == [RUNNING, yielded("1")]


def test_a_cancel_hint_hurries_the_attempts_heartbeats_until_its_end() -> None:
    from temporal_workers.activities.attempt import AttemptActivities

    environment = ActivityEnvironment()
    environment.info = dataclasses.replace(environment.info, heartbeat_timeout=timedelta(seconds=5))
    sent: list[Any] = []
    environment.on_heartbeat = lambda *details: sent.append(details[0])
    attempts = AttemptActivities(None, None, None)  # type: ignore[arg-type]

    async def run() -> tuple[int, int]:
        session = _ActivitySession(None, "inv-1", 1, attempts)  # type: ignore[arg-type]
        attempts._sessions["inv-1"] = session
        session.heartbeat(RUNNING)
        await asyncio.sleep(0.3)
        quiet = len(sent)  # the pacer alone: nothing new, nothing sent
        # The hint comes from a workflow thread, for this workflow and for one not here.
        await asyncio.to_thread(attempts.hint_cancel, "inv-1")
        await asyncio.to_thread(attempts.hint_cancel, "inv-elsewhere")
        await asyncio.sleep(0.5)
        hurried = len(sent)
        session.close()
        await asyncio.sleep(0.3)
        assert len(sent) == hurried  # none after the attempt's end
        return quiet, hurried

    quiet, hurried = asyncio.run(environment.run(run))
    assert quiet == 1
    assert hurried >= 1 + 3 and all(p == RUNNING for p in sent)
