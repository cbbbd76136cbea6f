"""`.map` and `.list` on the real worker (function processes, not the fake backend): the inputs
read lazily, at most the window started ahead of the result being read, the window's starts
in flight together, abandoning the map cancelling what it started, and each invocation listed
exactly once across pages while some of them finish."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

import multinode as mn
from tests.conftest import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]

WINDOW = 4

TASKS = f'''
import os, time
from pathlib import Path
from multinode import Multinode

mn = Multinode()


@mn.function(max_concurrency={WINDOW})
def square_or_hang(marker_dir, x):
    """Records its run; from 6 on it never ends by itself (until cancelled)."""
    Path(marker_dir, f"run-{{x}}").write_text(os.environ["MULTINODE_INVOCATION_ID"])
    if x > 5:
        time.sleep(600)
    return x * x


@mn.function(max_concurrency={WINDOW})
def together(marker_dir, x):
    """Returns once all {WINDOW} of the window run at the same time (fails after 60 s alone)."""
    Path(marker_dir, f"run-{{x}}").touch()
    deadline = time.time() + 60
    while len(list(Path(marker_dir).glob("run-*"))) < {WINDOW}:
        if time.time() > deadline:
            raise RuntimeError("the window's invocations never ran together")
        time.sleep(0.05)
    return x


@mn.function(max_concurrency=20)
def nap(seconds):
    time.sleep(seconds)
    return seconds
'''


@pytest.fixture
def project(deploy_tasks):  # type: ignore[no-untyped-def]
    return deploy_tasks(TASKS).project_name


def test_a_map_reads_lazily_keeps_its_window_and_cancels_what_it_abandons(project: str, tmp_path: Path) -> None:
    fn = mn.get_deployed_function(project, "square_or_hang")
    pulled = 0

    def items():  # type: ignore[no-untyped-def]
        nonlocal pulled
        for x in range(10_000):
            pulled += 1
            yield (str(tmp_path), x)

    results = fn.starmap(items())
    assert pulled == 0  # nothing read before the first result is asked for
    read = 0
    for expected in range(6):
        assert next(results) == expected * expected
        read += 1
        # Started but unread: never more than the window (max_concurrency).
        assert 0 < pulled - read <= WINDOW, (pulled, read)
    # The three after the sixth hang: the map waits on the seventh with the window full, and
    # starts nothing more while nobody reads (checked on the server, after a pause in which
    # any extra start would have shown).
    started = wait_until(lambda: len(ids := fn.list_ids()) == pulled and ids, timeout=30, message="listing")
    wait_until(lambda: len(list(tmp_path.glob("run-*"))) == pulled, timeout=60, message="every start running")
    time.sleep(1.5)
    assert len(fn.list_ids()) == pulled and len(list(tmp_path.glob("run-*"))) == pulled
    assert pulled <= read + WINDOW

    results.close()  # abandoning the map cancels what it started and no longer waits for

    def endings() -> dict[str, list[Any]]:
        by_status: dict[str, list[Any]] = {}
        for invocation in (fn.get(i) for i in started):
            by_status.setdefault(invocation.status.value, []).append(invocation.result)
        return by_status

    final = wait_until(lambda: set(e := endings()) <= {"SUCCEEDED", "CANCELLED"} and e, timeout=60,
                       message="every abandoned invocation to end")
    assert sorted(final["SUCCEEDED"]) == [x * x for x in range(6)]
    assert len(final["CANCELLED"]) == pulled - 6 > 0


def test_the_windows_starts_are_in_flight_together_and_run_together(
    project: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fn = mn.get_deployed_function(project, "together")
    in_flight = peak = 0
    original = fn._start_async

    async def start(*encoded: Any) -> str:
        # Each start waits (up to 10 s) for the whole window to be in flight: a map that
        # awaited one start before sending the next would leave the peak at 1.
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        deadline = time.monotonic() + 10
        while peak < WINDOW and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        try:
            return await original(*encoded)
        finally:
            in_flight -= 1

    monkeypatch.setattr(fn, "_start_async", start)
    # Every invocation returns only once the whole window runs at once: a map that waited for
    # a result before starting the next invocation would fail here.
    assert list(fn.starmap([(str(tmp_path), x) for x in range(WINDOW)])) == list(range(WINDOW))
    assert peak == WINDOW


def test_list_pages_show_each_invocation_once_while_they_finish(project: str) -> None:
    nap = mn.get_deployed_function(project, "nap")
    # Staggered lengths, 20 at a time: invocations end (and change status) while the pages
    # are read, slowly on purpose.
    started = {nap.start((index % 4) * 0.5) for index in range(120)}
    wait_until(lambda: len(nap.list_ids()) == 120, timeout=30, message="visibility to catch up")
    seen: list[str] = []
    offset = None
    paging_from = time.time()
    while True:
        page = nap.list(offset=offset)
        assert len(page.invocation_ids) <= 50
        seen.extend(page.invocation_ids)
        if page.offset is None:
            break
        offset = page.offset
        time.sleep(0.5)
    paging_until = time.time()
    assert len(seen) == len(set(seen)) == 120 and set(seen) == started
    assert seen == sorted(seen, reverse=True)  # newest first
    for invocation_id in started:
        nap.await_result(invocation_id, timeout=60)
    ended = [nap.get(i).ended_at for i in started]
    during = [e for e in ended if e is not None and paging_from < e.timestamp() < paging_until]
    assert during, "no invocation ended while the pages were read: the test proved less than it says"
