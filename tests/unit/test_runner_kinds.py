"""The runner, as the backends start it (`python -m multinode.runtime.runner`, its own process
group, a report pipe), with every kind of function: plain and generator, `async def` and async
generator. Cancellation (SIGTERM) and the timeout (SIGUSR1) must reach async code as our errors
at the `await` it is suspended on, and the event loop must keep working for its clean-up."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from multinode.contract import codec
from multinode.runtime import runner
from multinode.runtime.frames import FrameReader

pytestmark = pytest.mark.timeout(60)

TASKS = '''
import asyncio, time, traceback
from pathlib import Path
from multinode import Multinode
from multinode.errors import InvocationCancelledError, InvocationTimedOutError

mn = Multinode()


def where(error):
    """The line of main.py the error was raised at, and its type."""
    line = [f.line for f in traceback.extract_tb(error.__traceback__) if f.filename.endswith("main.py")][-1]
    return f"{type(error).__name__} at {line}"


@mn.function()
async def doubled(x):
    await asyncio.sleep(0.01)
    return {"doubled": x * 2}


@mn.function()
async def counting(n):
    for i in range(n):
        await asyncio.sleep(0)
        yield {"done": i + 1}


@mn.function()
def plain_generator():
    yield 1
    yield 2
    return "returned"


@mn.function()
async def polite(marker):
    # Written once the coroutine is suspended at the await below: the signal finds it there.
    asyncio.get_running_loop().call_soon(Path(marker).write_text, "waiting")
    try:
        await asyncio.sleep(600)
    except (InvocationCancelledError, InvocationTimedOutError) as error:
        await asyncio.sleep(0.01)  # the loop still runs the clean-up
        return where(error)
    return "not interrupted"


@mn.function()
async def streaming(marker):
    yield "first"
    asyncio.get_running_loop().call_soon(Path(marker).write_text, "waiting")
    await asyncio.sleep(600)
    yield "never"


@mn.function()
async def busy(marker):
    # No await at all: only an error raised right where the code runs can reach it.
    try:
        Path(marker).write_text("waiting")
        time.sleep(600)
    except InvocationCancelledError as error:
        return f"{type(error).__name__} in sync code"


@mn.function()
async def own_timeout():
    try:
        async with asyncio.timeout(0.01):
            await asyncio.sleep(600)
    except TimeoutError:
        return "its own asyncio timeout passes through"


@mn.function()
async def gathering(marker):
    async def child():
        await asyncio.sleep(600)

    asyncio.get_running_loop().call_soon(Path(marker).write_text, "waiting")
    try:
        await asyncio.gather(child(), child())
    except InvocationCancelledError as error:
        return where(error)


async def _body(x):
    await asyncio.sleep(0)
    return x + 1


@mn.function()
def wrapped(x):
    return _body(x)  # a def returning a coroutine: its body still runs


@mn.function()
async def unsendable():
    return memoryview(b"bytes")


@mn.function()
async def leaves_work_behind():
    asyncio.get_running_loop().run_in_executor(None, time.sleep, 600)
    asyncio.get_running_loop().create_task(asyncio.sleep(600))
    return "done"


@mn.function()
def takes(value):
    return repr(value)
'''


@dataclass
class Attempt:
    process: subprocess.Popen[bytes]
    report: int
    log: Path

    def finish(self) -> tuple[FrameReader, int]:
        code = self.process.wait(timeout=30)
        reader = FrameReader()
        with os.fdopen(self.report, "rb") as pipe:
            for line in pipe:
                reader.feed(line)
        return reader, code

    def result(self) -> Any:
        reader, code = self.finish()
        assert reader.error is None, self.log.read_text()
        assert reader.has_result and code == 0
        return codec.decode(reader.result)


@pytest.fixture
def start(tmp_path: Path):  # type: ignore[no-untyped-def]
    code_dir = tmp_path / "code"
    code_dir.mkdir()
    (code_dir / "main.py").write_text(TASKS)
    started: list[Attempt] = []

    def _start(function: str, *args: Any, encoded_args: list[str] | None = None) -> Attempt:
        inputs = tmp_path / f"input-{len(started)}.json"
        inputs.write_text(json.dumps({"args": encoded_args or [codec.encode(a, "argument") for a in args], "kwargs": {}}))
        read, write = os.pipe()
        log = tmp_path / f"attempt-{len(started)}.log"
        env = {
            **os.environ,
            runner.ENV_REPORT_FD: str(write),
            runner.ENV_INPUT_PATH: str(inputs),
            runner.ENV_FUNCTION: function,
            runner.ENV_CODE_DIR: str(code_dir),
        }
        with open(log, "wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "multinode.runtime.runner"],
                env=env, pass_fds=(write,), stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )
        os.close(write)
        attempt = Attempt(process, read, log)
        started.append(attempt)
        return attempt

    yield _start
    for attempt in started:
        if attempt.process.poll() is None:
            os.killpg(attempt.process.pid, signal.SIGKILL)
            attempt.process.wait()


def wait_for(path: Path) -> None:
    deadline = time.monotonic() + 20
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)


def test_an_async_function_returns_its_value(start) -> None:  # type: ignore[no-untyped-def]
    assert start("doubled", 21).result() == {"doubled": 42}


def test_an_async_generator_reports_each_yield_and_ends_on_the_last(start) -> None:  # type: ignore[no-untyped-def]
    reader, code = start("counting", 3).finish()
    assert code == 0 and reader.error is None
    # Progress frames are coalesced (the result supersedes a pending one): any yield may be last.
    assert reader.progress_version >= 1
    assert codec.decode(reader.progress) in ({"done": 1}, {"done": 2}, {"done": 3})
    assert codec.decode(reader.result) == {"done": 3}


def test_a_generator_still_ends_on_its_return_value(start) -> None:  # type: ignore[no-untyped-def]
    assert start("plain_generator").result() == "returned"


@pytest.mark.parametrize(
    ("signum", "error"), [(signal.SIGTERM, "InvocationCancelledError"), (signal.SIGUSR1, "InvocationTimedOutError")]
)
def test_an_interruption_arrives_at_the_current_await(start, tmp_path: Path, signum: int, error: str) -> None:  # type: ignore[no-untyped-def]
    marker = tmp_path / "marker"
    attempt = start("polite", str(marker))
    wait_for(marker)
    os.kill(attempt.process.pid, signum)
    assert attempt.result() == f"{error} at await asyncio.sleep(600)"


def test_an_async_generator_interrupted_fails_with_our_error_and_keeps_its_progress(start, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    marker = tmp_path / "marker"
    attempt = start("streaming", str(marker))
    wait_for(marker)
    os.kill(attempt.process.pid, signal.SIGUSR1)
    reader, code = attempt.finish()
    assert code == 1 and not reader.has_result
    assert codec.decode(reader.progress) == "first"
    assert reader.error is not None and reader.error["type"] == "InvocationTimedOutError"
    assert "await asyncio.sleep(600)" in reader.error["traceback"]


def test_sync_code_inside_a_coroutine_is_interrupted_where_it_runs(start, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    marker = tmp_path / "marker"
    attempt = start("busy", str(marker))
    wait_for(marker)
    os.kill(attempt.process.pid, signal.SIGTERM)
    assert attempt.result() == "InvocationCancelledError in sync code"


def test_a_cancellation_of_the_functions_own_passes_through_unchanged(start) -> None:  # type: ignore[no-untyped-def]
    assert start("own_timeout").result() == "its own asyncio timeout passes through"


def test_an_interruption_reaches_the_await_of_a_gather(start, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    marker = tmp_path / "marker"
    attempt = start("gathering", str(marker))
    wait_for(marker)
    os.kill(attempt.process.pid, signal.SIGTERM)
    assert attempt.result() == "InvocationCancelledError at await asyncio.gather(child(), child())"


def test_work_left_running_does_not_hold_back_the_outcome(start) -> None:  # type: ignore[no-untyped-def]
    # As a sync function's leftover threads: abandoned, not awaited (asyncio.run would wait for
    # the executor's thread, here for 600 s).
    assert start("leaves_work_behind").result() == "done"


def test_a_def_that_returns_a_coroutine_runs_its_body(start) -> None:  # type: ignore[no-untyped-def]
    assert start("wrapped", 1).result() == 2


def test_a_result_that_cannot_travel_fails_the_attempt_clearly(start) -> None:  # type: ignore[no-untyped-def]
    reader, code = start("unsendable").finish()
    assert code == 1 and reader.error is not None
    assert reader.error["type"] == "EncodingError"
    assert reader.error["message"].startswith("the result cannot be sent: it is or contains a value of type memoryview")


@pytest.mark.parametrize(
    ("encoded", "missing"),
    [
        ('{"py/object": "callerside.Point", "x": 1}', "the class callerside.Point"),
        # numpy 2's array under numpy 1: jsonpickle alone decodes it as [] without a word.
        ('{"py/reduce": [{"py/function": "callerside._core.multiarray._reconstruct"}, {"py/tuple": [1]}]}',
         "the function callerside._core.multiarray._reconstruct"),
    ],
)
def test_an_argument_the_function_cannot_decode_fails_the_attempt_clearly(start, encoded: str, missing: str) -> None:  # type: ignore[no-untyped-def]
    reader, code = start("takes", encoded_args=[encoded]).finish()
    assert code == 1 and reader.error is not None
    assert reader.error["type"] == "EncodingError"
    assert reader.error["message"].startswith(
        f"argument 0 cannot be decoded in the function's environment: it needs {missing}, which is missing "
        f"in the function's environment (No module named 'callerside')"
    )
