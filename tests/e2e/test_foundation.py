"""Issue 2 end to end: deploy a tasks folder, invoke it through the public SDK, on a real
Temporal dev server and worker."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import multinode as mn
from multinode import InvocationStatus, errors
from tests.conftest import ControlPlane, copy_example_tasks, wait_until, write_tasks

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


def test_example_tasks_run_remotely(control_plane: ControlPlane, deploy_tasks, tmp_path: Path) -> None:
    manifest = deploy_tasks(copy_example_tasks(tmp_path / "example"))
    assert manifest.version_id.startswith("ver-")
    assert {f.name for f in manifest.functions} == {
        "slowly_calculate_sum_of_squares", "sum_of_squares_with_progress", "format_rectangles"
    }
    total = mn.get_deployed_function(manifest.project_name, "slowly_calculate_sum_of_squares")
    assert total.call_remote(bound=100, delay_seconds=0) == 328350
    table = mn.get_deployed_function(manifest.project_name, "format_rectangles")
    text = table.call_remote([(3, 4)])
    assert "area" in text and "12" in text  # tabulate from requirements.txt, geometry submodule


def test_start_get_await_and_attributes(control_plane: ControlPlane, deploy_tasks, tmp_path: Path) -> None:
    from multinode.admin.deploy import deploy

    manifest = deploy_tasks(
        "from multinode import Multinode\nimport time, os\nmn = Multinode()\n"
        "@mn.function()\ndef slow_add(a, b, seconds=0.0):\n    time.sleep(seconds)\n    return a + b\n"
        "@mn.function()\ndef env(name):\n    return os.environ.get(name)\n",
        **{".env": "SECRET_TOKEN=s3cr3t-value\n"},
    )
    fn = mn.get_deployed_function(manifest.project_name, "slow_add")
    invocation_id = fn.start(2, b=3, seconds=1.5)
    assert invocation_id.startswith("inv-")
    first = fn.get(invocation_id)
    assert first.status in (InvocationStatus.PENDING, InvocationStatus.RUNNING)
    assert first.terminated is False and first.result is None
    running = wait_until(lambda: fn.get(invocation_id).status == InvocationStatus.RUNNING, message="RUNNING")
    assert running
    assert fn.await_result(invocation_id) == 5
    final = fn.get(invocation_id)
    assert final.status == InvocationStatus.SUCCEEDED and final.result == 5
    assert final.terminated is True and final.num_failed_attempts == 0 and final.error is None
    assert [s for s, _ in final.status_history] == [
        InvocationStatus.PENDING, InvocationStatus.RUNNING, InvocationStatus.SUCCEEDED
    ]
    assert len(final.attempts) == 1 and final.attempts[0].exit_code == 0

    # .env reaches the function's process, never the worker's: a function of another project,
    # run afterwards by the same worker (whose environment every attempt inherits), lacks it.
    env = mn.get_deployed_function(manifest.project_name, "env")
    assert env.call_remote("SECRET_TOKEN") == "s3cr3t-value"
    plain = deploy(
        write_tasks(tmp_path / "plain", "from multinode import Multinode\nimport os\nmn = Multinode()\n"
                    "@mn.function()\ndef env(name):\n    return os.environ.get(name, 'absent')\n"),
        f"{manifest.project_name}_plain",
    )
    assert mn.get_deployed_function(plain.project_name, "env").call_remote("SECRET_TOKEN") == "absent"

    # The workflow is the invocation: its id, and search attributes for the Web UI.
    from multinode._client import default_client

    async def describe() -> dict[str, object]:
        engine = await default_client().engine()
        d = await engine.client.get_workflow_handle(invocation_id).describe()
        return {k.name: v for k, v in ((p.key, p.value) for p in d.typed_search_attributes)}

    attributes = default_client().run(describe())
    assert attributes["MultinodeProject"] == manifest.project_name
    assert attributes["MultinodeFunction"] == "slow_add"
    assert attributes["MultinodeVersion"] == manifest.version_id
    assert attributes["MultinodeStatus"] == "SUCCEEDED"


def test_generator_progress_is_visible_while_running(control_plane: ControlPlane, deploy_tasks) -> None:
    manifest = deploy_tasks(
        "from multinode import Multinode\nimport time\nmn = Multinode()\n"
        "@mn.function()\ndef steps(n):\n    for i in range(n):\n        yield {'done': i}\n        time.sleep(0.1)\n"
    )
    fn = mn.get_deployed_function(manifest.project_name, "steps")
    invocation_id = fn.start(40)
    seen = wait_until(
        lambda: (inv := fn.get(invocation_id)).status == InvocationStatus.RUNNING
        and inv.result is not None and inv.result["done"] >= 3 and inv,
        message="progress",
    )
    assert seen.terminated is False
    assert fn.await_result(invocation_id) == {"done": 39}


def test_a_generators_return_value_is_its_final_result(control_plane: ControlPlane, deploy_tasks) -> None:
    manifest = deploy_tasks(
        "from multinode import Multinode\nmn = Multinode()\n"
        "@mn.function()\ndef summed(n):\n    total = 0\n    for i in range(n):\n"
        "        total += i\n        yield {'done': i}\n    return {'total': total}\n"
        "@mn.function()\ndef returns_none(n):\n    for i in range(n):\n        yield i\n    return None\n"
    )
    summed = mn.get_deployed_function(manifest.project_name, "summed")
    invocation_id = summed.start(5)
    assert summed.await_result(invocation_id) == {"total": 10}
    assert summed.get(invocation_id).result == {"total": 10}
    # A `return None` keeps the last yielded value.
    assert mn.get_deployed_function(manifest.project_name, "returns_none").call_remote(3) == 2


def test_await_result_with_a_timeout_expires_and_leaves_the_invocation(
    control_plane: ControlPlane, deploy_tasks, tmp_path: Path
) -> None:
    manifest = deploy_tasks(
        "from multinode import Multinode\nimport time\nfrom pathlib import Path\nmn = Multinode()\n"
        "@mn.function()\ndef wait_for(path):\n    while not Path(path).exists():\n        time.sleep(0.05)\n"
        "    return 'released'\n"
    )
    fn = mn.get_deployed_function(manifest.project_name, "wait_for")
    release = tmp_path / "release"
    invocation_id = fn.start(str(release))
    with pytest.raises(TimeoutError):
        fn.await_result(invocation_id, timeout=1)
    # Giving up waiting changes nothing on the engine's side.
    assert fn.get(invocation_id).status in (InvocationStatus.PENDING, InvocationStatus.RUNNING)
    release.touch()
    assert fn.await_result(invocation_id, timeout=60) == "released"


def test_hundred_thousand_yields_keep_history_small(control_plane: ControlPlane, deploy_tasks) -> None:
    manifest = deploy_tasks(
        "from multinode import Multinode\nmn = Multinode()\n"
        "@mn.function()\ndef tight(n):\n    for i in range(n):\n        yield i\n"
    )
    fn = mn.get_deployed_function(manifest.project_name, "tight")
    invocation_id = fn.start(100_000)
    assert fn.await_result(invocation_id) == 99_999
    from multinode._client import default_client

    async def history_length() -> int:
        engine = await default_client().engine()
        return (await engine.client.get_workflow_handle(invocation_id).describe()).history_length

    assert default_client().run(history_length()) < 40


def test_failure_carries_type_message_and_traceback(control_plane: ControlPlane, deploy_tasks) -> None:
    manifest = deploy_tasks(
        "from multinode import Multinode\nmn = Multinode()\n"
        "def helper(x):\n    raise ValueError(f'bad input {x}')\n"
        "@mn.function()\ndef broken(x):\n    return helper(x)\n"
    )
    fn = mn.get_deployed_function(manifest.project_name, "broken")
    with pytest.raises(errors.InvocationFailedError) as caught:
        fn.call_remote(7)
    assert caught.value.error_type == "ValueError"
    assert caught.value.error_message == "bad input 7"
    assert "in helper" in (caught.value.remote_traceback or "")
    invocation = fn.get(caught.value.invocation_id or "")
    assert invocation.status == InvocationStatus.FAILED
    assert invocation.error == "ValueError: bad input 7"
    assert invocation.num_failed_attempts == 1 and invocation.terminated


def test_bad_starts_create_nothing(control_plane: ControlPlane, deploy_tasks) -> None:
    manifest = deploy_tasks("from multinode import Multinode\nmn = Multinode()\n@mn.function()\ndef echo(x):\n    return x\n")
    fn = mn.get_deployed_function(manifest.project_name, "echo")
    with pytest.raises(errors.PayloadTooLargeError, match="250,000"):
        fn.start("x" * 250_001)
    assert fn.list_ids() == []
    assert fn.call_remote("y" * 249_000) == "y" * 249_000  # just under the limit once encoded
    with pytest.raises(errors.FunctionDoesNotExistError, match="echo"):
        mn.get_deployed_function(manifest.project_name, "nope").start(1)
    with pytest.raises(errors.ProjectDoesNotExistError):
        mn.get_deployed_function("no_such_project_xyz", "echo").start(1)
    with pytest.raises(errors.VersionDoesNotExistError, match="has no version"):
        mn.get_deployed_function(manifest.project_name, "echo", version_id="ver-00000000000000000000000000").start(1)
    with pytest.raises(errors.InvocationDoesNotExistError):
        fn.get("inv-00000000000000000000000000")
    with pytest.raises(errors.InvocationDoesNotExistError, match="malformed"):
        fn.get("inv-../../etc")


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"other.py": "x = 1\n"}, "no main.py"),
        ({"main.py": "def broken(:\n    pass\n"}, "syntax error in main.py line 1"),
        ({"main.py": "import not_a_real_module_xyz\n"}, "No module named 'not_a_real_module_xyz'"),
        ({"main.py": "from multinode import Multinode\nmn = Multinode()\n"}, "defines no function"),
        (
            {"main.py": "from multinode import Multinode\nmn = Multinode()\n"
             "@mn.function()\ndef f():\n    pass\n@mn.function()\ndef f():\n    pass\n"},
            "two functions are named 'f'",
        ),
        (
            {"main.py": "from multinode import Multinode\nmn = Multinode()\n"
             "@mn.function(memory='100 GiB')\ndef f():\n    pass\n"},
            "memory='100 GiB' is out of range",
        ),
        ({"main.py": "x = 1\n", "requirements.txt": "multinode-no-such-package-xyz==1.0\n"},
         "multinode-no-such-package-xyz"),
    ],
)
def test_deploy_refuses_bad_folders(control_plane: ControlPlane, project_name: str, tmp_path: Path,
                                    files: dict[str, str], message: str) -> None:
    from multinode.admin.deployment import deploy

    folder = tmp_path / "tasks"
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text)
    with pytest.raises(errors.DeployError, match=message.replace("(", r"\(").replace(")", r"\)")):
        deploy(folder, project_name)
    with pytest.raises(errors.ProjectDoesNotExistError):
        mn.get_deployed_function(project_name, "f").start()


def test_cli_deploy_accepts_both_spellings(control_plane: ControlPlane, project_name: str, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from multinode_cli.main import cli

    folder = copy_example_tasks(tmp_path / "example")
    result = CliRunner().invoke(cli, ["deploy", str(folder), f"project-name={project_name}"])
    assert result.exit_code == 0, result.output
    assert f"project {project_name}: version ver-" in result.output
    assert "sum_of_squares_with_progress" in result.output and "generator" in result.output
    again = CliRunner().invoke(cli, ["deploy", str(folder), f"--project-name={project_name}"])
    assert again.exit_code == 1 and "already exists" in again.output and "upgrade" in again.output


def test_application_needs_only_the_address(control_plane: ControlPlane, deploy_tasks, tmp_path: Path) -> None:
    manifest = deploy_tasks("from multinode import Multinode\nmn = Multinode()\n@mn.function()\ndef double(x):\n    return 2 * x\n")
    script = tmp_path / "app.py"
    script.write_text(
        "from multinode import get_deployed_function\n"
        f"fn = get_deployed_function(project_name={manifest.project_name!r}, function_name='double')\n"
        "print(fn.call_remote(21))\n"
    )
    env = {"PATH": os.environ["PATH"], "MULTINODE_API_URL": control_plane.address,
           "MULTINODE_TASK_QUEUE": control_plane.task_queue, "HOME": str(tmp_path)}
    completed = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True,
                               timeout=60, cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "42"


@pytest.mark.timeout(60)
def test_unreachable_control_plane_is_one_clear_error(tmp_path: Path) -> None:
    from multinode._client import Client
    from multinode.contract.connection import ConnectionSettings

    client = Client(ConnectionSettings("127.0.0.1:1", None, "default", "q", "default"))
    fn = mn.Function("f", project_name="p", client=client)
    with pytest.raises(errors.ControlPlaneUnavailableError, match="multinode dev"):
        fn.start(1)  # a hang would meet the test's timeout
