"""`multinode.testing`'s control plane and deploy fixtures as users run them: enabled from their
own conftest.py, in a pytest session of their own (pytester, in a subprocess) that starts its
own dev server and worker."""

from __future__ import annotations

import pytest

from tests.conftest import REPO

pytest_plugins = ["pytester"]
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

USER_TASKS = '''
import asyncio
from multinode import Multinode
from multinode.errors import InvocationCancelledError

mn = Multinode()


@mn.function()
def add(a, b):
    return a + b


@mn.function()
async def countdown(n):
    for i in range(n, -1, -1):
        yield i
        await asyncio.sleep(0.1)
'''

USER_TESTS = '''
from pathlib import Path

import pytest
from multinode import InvocationStatus
from multinode.errors import InvocationCancelledError

TASKS = Path(__file__).parent / "tasks"


def test_deploys_a_folder_and_calls_it(multinode_deploy):
    deployment = multinode_deploy(TASKS)
    assert deployment["add"].call_remote(2, 3) == 5
    assert sorted(deployment.functions) == ["add", "countdown"]


def test_an_async_generator_runs_remotely(multinode_deploy):
    countdown = multinode_deploy(TASKS)["countdown"]
    assert countdown.call_remote(2) == 0


def test_main_py_as_text(multinode_deploy):
    deployment = multinode_deploy(
        "from multinode import Multinode\\n"
        "from helpers import twice\\n"
        "mn = Multinode()\\n"
        "@mn.function()\\n"
        "def double(x):\\n"
        "    return twice(x)\\n",
        **{"helpers.py": "def twice(x):\\n    return 2 * x\\n"},
    )
    assert deployment["double"].call_remote(21) == 42


def test_a_second_deploy_in_a_test_is_a_new_version(multinode_deploy):
    first = multinode_deploy(TASKS, project_name="shared_project")
    second = multinode_deploy(TASKS, project_name="shared_project")
    assert first.version_id != second.version_id


def test_cancel_is_real(multinode_deploy):
    countdown = multinode_deploy(TASKS)["countdown"]
    invocation_id = countdown.start(10_000)
    countdown.cancel(invocation_id)
    with pytest.raises(InvocationCancelledError):
        countdown.await_result(invocation_id)
    assert countdown.get(invocation_id).status == InvocationStatus.CANCELLED


def test_one_control_plane_for_the_session(multinode_control_plane, tmp_path_factory):
    assert multinode_control_plane.address.startswith("127.0.0.1:")
    assert multinode_control_plane.workers[0].poll() is None
'''


def test_the_fixtures_start_a_control_plane_and_deploy_as_a_user_runs_them(pytester: pytest.Pytester) -> None:
    pytester.makeconftest('pytest_plugins = ["multinode.testing"]\n')
    tasks = pytester.mkdir("tasks")
    (tasks / "main.py").write_text(USER_TASKS)
    pytester.makepyfile(test_user_tasks=USER_TESTS)
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", timeout=200)
    result.assert_outcomes(passed=6)


def _readme_block(after: str) -> str:
    """The python code block of README.md whose first line is `after`."""
    text = (REPO / "README.md").read_text()
    start = text.index(f"```python\n{after}\n") + len("```python\n")
    return text[start : text.index("```", start)]


def test_the_readme_example_runs_as_written(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(_readme_block("# conftest.py"))
    tasks = pytester.mkdir("tasks")
    (tasks / "main.py").write_text(_readme_block("# tasks/main.py"))
    pytester.makepyfile(test_tasks=_readme_block("# test_tasks.py"))
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", timeout=200)
    result.assert_outcomes(passed=2)
