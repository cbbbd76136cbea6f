"""`multinode.testing` as users run it: enabled from their own conftest.py, in a pytest session of
their own (pytester, in a subprocess). This tier needs no control plane: `run_locally` only (the
control plane's fixtures are proven in tests/e2e/test_testing_plugin.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.timeout(120)

USER_TASKS = '''
import asyncio
from multinode import Multinode

mn = Multinode()


@mn.function()
def add(a, b):
    return a + b


@mn.function()
def squares(n):
    for i in range(n):
        yield i * i


@mn.function()
async def fetch(name):
    await asyncio.sleep(0)
    return {"name": name}


@mn.function()
async def countdown(n):
    for i in range(n, -1, -1):
        await asyncio.sleep(0)
        yield i


@mn.function()
def echo(value):
    return value
'''

USER_TESTS = '''
import asyncio
import pytest
from multinode.errors import EncodingError
from multinode.testing import run_locally
from tasks.main import add, countdown, echo, fetch, squares


def test_plain():
    assert run_locally(add, 2, b=3) == 5


def test_generator_ends_on_its_last_yield():
    assert run_locally(squares, 4) == 9


def test_async_function():
    assert run_locally(fetch, "x") == {"name": "x"}


def test_async_generator():
    assert run_locally(countdown, 3) == 0


def test_values_travel_as_they_would_remotely():
    assert run_locally(echo, (1, {2})) == (1, {2})
    with pytest.raises(EncodingError, match="memoryview"):
        run_locally(echo, memoryview(b"x"))


def test_from_inside_a_running_loop():
    async def main():
        return run_locally(fetch, "in a loop")
    assert asyncio.run(main()) == {"name": "in a loop"}


def test_the_control_plane_is_not_started_by_enabling_the_plugin(request):
    assert "multinode_control_plane" not in request.fixturenames
'''


def test_run_locally_through_the_plugin_as_a_user_enables_it(pytester: pytest.Pytester) -> None:
    pytester.makeconftest('pytest_plugins = ["multinode.testing"]\n')
    tasks = pytester.mkdir("tasks")
    (tasks / "main.py").write_text(USER_TASKS)
    pytester.makepyfile(test_user_tasks=USER_TESTS)
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=7)


def test_import_multinode_does_not_load_the_plugin() -> None:
    code = "import sys, multinode; print('multinode.testing' in sys.modules, 'pytest' in sys.modules)"
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert completed.stdout.split() == ["False", "False"]
