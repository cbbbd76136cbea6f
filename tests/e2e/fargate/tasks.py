"""The `main.py` of the tasks folder every test of the Fargate tier deploys. Functions that must
wait for the test (to be seen running, to be read while they run) wait for a marker file."""

from __future__ import annotations

MAIN_PY = '''
import os
import time
from datetime import timedelta
from pathlib import Path

from multinode import Multinode
from multinode.errors import InvocationCancelledError, InvocationTimedOutError

mn = Multinode()


def say(line):
    print(line, flush=True)


def wait_for_file(path, seconds=30.0):
    deadline = time.monotonic() + seconds
    while not Path(path).exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{path} never appeared")
        time.sleep(0.02)


@mn.function()
def greet(name):
    say(f"hello from the container, {name}")
    return f"hello {name}"


@mn.function()
def count(n, gate):
    # Yields 1, 2, ...; each yield after the first waits until the test has seen the one before.
    for i in range(1, n + 1):
        yield i
        if i < n:
            wait_for_file(f"{gate}-{i}")


@mn.function(max_retries=2)
def explode(message):
    say(f"attempt {os.environ['MULTINODE_ATTEMPT']} explodes")
    raise ValueError(message)


def _sleep_until_stopped(seconds):
    say("waiting for a stop")
    try:
        time.sleep(seconds)
    except InvocationCancelledError:
        say("saw InvocationCancelledError")
        raise
    except InvocationTimedOutError:
        say("saw InvocationTimedOutError")
        raise
    return "never stopped"


@mn.function()
def wait_for_stop(seconds):
    return _sleep_until_stopped(seconds)


@mn.function(timeout=timedelta(seconds=2))
def overrun(seconds):
    return _sleep_until_stopped(seconds)


@mn.function()
def survivor(seconds):
    # Not retried after a failure: an interrupted run that counted would end the invocation.
    say("working")
    time.sleep(seconds)
    return "survived"


@mn.function()
def parent(seconds):
    child = wait_for_stop.start(seconds)
    yield child
    time.sleep(seconds)


@mn.function(max_concurrency=2)
def limited(seconds):
    time.sleep(seconds)
    return os.environ["MULTINODE_INVOCATION_ID"]


@mn.function(max_concurrency=1)
def chatty(lines, gate):
    for i in range(lines):
        say(f"line {i}")
    say("waiting for the gate")
    wait_for_file(gate)
    say("last line")
    return lines
'''
