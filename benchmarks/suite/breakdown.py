"""Where one invocation's time goes: the client's, the server's history events and the
attempt's own timestamps on one timeline, beside the same for a bare workflow (the floor)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from temporalio.api.enums.v1 import EventType

from suite.floors import FloorHarness
from suite.harness import fn, mn_engine_run


def history_timeline(events: Sequence[Any]) -> list[tuple[str, float]]:
    return [(EventType.Name(e.event_type).removeprefix("EVENT_TYPE_"), e.event_time.ToDatetime().timestamp())
            for e in events]


def relative(points: list[tuple[str, float]]) -> list[dict[str, Any]]:
    """Each point as ms since the first, and since the one before."""
    points = sorted(points, key=lambda p: p[1])
    origin, previous, out = points[0][1], points[0][1], []
    for label, at in points:
        out.append({"event": label, "at_ms": round((at - origin) * 1000, 1),
                    "gap_ms": round((at - previous) * 1000, 1)})
        previous = at
    return out


# One invocation is noisy: the breakdown shown is the median (by total time) of a few.
BREAKDOWN_SAMPLES = 5


def median_run(runs: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return sorted(runs, key=lambda points: points[-1]["at_ms"])[len(runs) // 2]


def breakdown_invocation() -> list[dict[str, Any]]:
    """One no-op invocation: client, server history events and the attempt's own timestamps."""
    noop = fn("noop")
    invocation_id = noop.start(0)
    noop.await_result(invocation_id, timeout=60)
    returned = time.time()
    invocation = noop.get(invocation_id)
    history = mn_engine_run(lambda c: c.get_workflow_handle(invocation_id).fetch_history())
    attempt = invocation.attempts[0]
    points = [("client: .start called", invocation.created_at.timestamp())]
    points += [(f"server: {name}", at) for name, at in history_timeline(history.events)]
    points += [("worker: runner process spawned", attempt.started_at.timestamp()),
               ("worker: attempt outcome ready", attempt.ended_at.timestamp()),
               ("client: .await_result returned", returned)]
    return relative(points)


def breakdown_floor(floor: FloorHarness) -> list[dict[str, Any]]:
    async def one() -> list[tuple[str, float]]:
        called = time.time()
        handle = await floor.start_floor("floor_subprocess", [])
        await handle.result()
        returned = time.time()
        history = await handle.fetch_history()
        return ([("client: start_workflow called", called)]
                + [(f"server: {n}", at) for n, at in history_timeline(history.events)]
                + [("client: result returned", returned)])

    return relative(floor.run(one()))
