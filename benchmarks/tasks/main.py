"""The functions `benchmarks/bench.py` deploys. Each one is as small as the measurement allows, so
what the benchmark sees is Multinode's cost, not the function's."""

import os
import time

from multinode import Multinode
from multinode.errors import InvocationCancelledError

mn = Multinode()


# The highest limit, so that `.map` over many no-ops measures dispatch, not the concurrency cap.
@mn.function(max_concurrency=100)
def noop(x=None):
    return x


# Two fan-out functions because max_concurrency is fixed at deploy: the full run uses 10, --quick 2.
@mn.function(max_concurrency=10)
def sleep_limit_10(seconds):
    """Returns when, inside the function's process, it started and ended: the benchmark derives
    the peak concurrency actually reached from these spans."""
    started = time.time()
    time.sleep(seconds)
    return started, time.time()


@mn.function(max_concurrency=2)
def sleep_limit_2(seconds):
    started = time.time()
    time.sleep(seconds)
    return started, time.time()


@mn.function(max_concurrency=100)
def ticks(count, interval):
    """Yields the wall-clock time at each tick: the caller's `.get` sees how old each value is."""
    for _ in range(count):
        time.sleep(interval)
        yield time.time()


def _write_atomically(path, text):
    # The benchmark polls for the file: it must never read it half-written.
    partial = path + ".partial"
    with open(partial, "w") as handle:
        handle.write(text)
    os.replace(partial, path)


@mn.function(max_concurrency=100)
def wait_for_cancel(marker_dir, seconds=120.0):
    """Writes `started` once the user code runs, and `cancelled` (the wall-clock time) when the
    cancellation reaches it. The benchmark also uses it as "one running attempt" (memory, `.get`
    while running)."""
    _write_atomically(os.path.join(marker_dir, "started"), repr(time.time()))
    try:
        time.sleep(seconds)
    except InvocationCancelledError:
        _write_atomically(os.path.join(marker_dir, "cancelled"), repr(time.time()))
        raise
    return "not cancelled"
