"""Issue 17 item 3: many workers on many machines. Two workers, each with a state folder of its
own (two "machines": MULTINODE_HOME and MULTINODE_MACHINE_NAME), the local backend each, share a
package store in S3 (a moto server); the project is deployed there through the CLI. Each worker
fetches the package from S3 into its own folder and runs invocations, the quota holds exactly
across both, a worker killed with SIGKILL mid-run has its work finished by the other, and
`multinode logs` reads an attempt's logs on the machine it ran on and says where they are
anywhere else.

One worker runs as `python -m temporal_workers`, the other as `multinode worker`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from multinode import InvocationStatus
from multinode.testing.control_plane import stop_process
from multinode.testing.deployment import write_tasks
from tests.conftest import REPO, PrivateQueue, wait_until
from tests.e2e.moto_stack import running_moto_server

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

BUCKET = "multinode-machines"
STORE = f"s3://{BUCKET}/team"
MACHINES = ("machine-a", "machine-b")

TASKS = '''
import json, os, time
from pathlib import Path
from multinode import Multinode

mn = Multinode()


@mn.function(max_concurrency=3)
def work(marker_dir, index, seconds):
    """Records its run: which machine's state folder it runs from (its working directory is
    <home>/code/<sha256>), and when it started and ended."""
    machine = Path.cwd().parent.parent.name
    run = f"{index}-{os.getpid()}"
    print(f"work {index} on {machine}", flush=True)
    Path(marker_dir, f"start-{run}").write_text(json.dumps({"machine": machine, "at": time.time()}))
    time.sleep(seconds)
    Path(marker_dir, f"end-{run}").write_text(repr(time.time()))
    return index * index
'''


def _aws_environment() -> dict[str, str]:
    names = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL")
    return {name: os.environ[name] for name in names}


@pytest.fixture
def s3_store(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A moto S3 with the store's bucket; yields the AWS settings every process gets."""
    with running_moto_server(tmp_path / "moto.log"):
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        yield _aws_environment()


class Machines:
    """The two "machines": a worker each (started on demand), and the CLI run as on any of them."""

    def __init__(self, queue: PrivateQueue, aws: dict[str, str], root: Path) -> None:
        self.queue = queue
        self.aws = aws
        self.root = root
        self.workers: dict[str, subprocess.Popen[bytes]] = {}

    def home(self, machine: str) -> Path:
        return self.root / machine

    def env(self, machine: str) -> dict[str, str]:
        return {**self.queue.plane.env, **self.aws, "MULTINODE_TASK_QUEUE": self.queue.name,
                "MULTINODE_HOME": str(self.home(machine)), "MULTINODE_MACHINE_NAME": machine}

    def start_worker(self, machine: str) -> subprocess.Popen[bytes]:
        """Starts the machine's worker and waits until it polls for work."""
        self.home(machine).mkdir(parents=True, exist_ok=True)
        command = ["-m", "temporal_workers"] if machine == MACHINES[0] else ["-m", "multinode_cli.main", "worker"]
        log_path = self.root / f"{machine}-worker.log"
        with open(log_path, "ab") as log:
            worker = subprocess.Popen([sys.executable, *command], env=self.env(machine), stdout=log,
                                      stderr=subprocess.STDOUT)
        self.workers[machine] = worker
        wait_until(lambda: worker.poll() is not None or "worker ready" in log_path.read_text(), timeout=60,
                   message=f"the worker of {machine}")
        assert worker.poll() is None, log_path.read_text()
        return worker

    def cli(self, machine: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "multinode_cli.main", *args], env={**self.env(machine), **env},
                              cwd=REPO, capture_output=True, text=True, timeout=120, check=False)

    def stop(self) -> None:
        for worker in self.workers.values():
            stop_process(worker, timeout_seconds=15)


@pytest.fixture
def machines(private_queue: PrivateQueue, s3_store: dict[str, str], tmp_path: Path) -> Iterator[Machines]:
    group = Machines(private_queue, s3_store, tmp_path / "machines")
    try:
        yield group
    finally:
        group.stop()


def deploy_to_s3(machines: Machines, project: str, tmp_path: Path) -> dict[str, Any]:
    """`multinode deploy` with the S3 store, from a third state folder (the deployer's laptop)."""
    tasks = write_tasks(tmp_path / "tasks", TASKS)
    deployed = machines.cli("laptop", "deploy", str(tasks), "--project-name", project, "--json",
                            MULTINODE_PACKAGE_STORE=STORE)
    assert deployed.returncode == 0, deployed.stderr
    manifest: dict[str, Any] = json.loads(deployed.stdout)
    return manifest


def runs(folder: Path) -> list[dict[str, Any]]:
    """Every run the functions recorded: index, machine, start, end (None: killed)."""
    found = []
    for start in folder.glob("start-*"):
        run = start.name.removeprefix("start-")
        end = folder / f"end-{run}"
        fields = json.loads(start.read_text())
        found.append({"index": int(run.split("-")[0]), "machine": fields["machine"], "start": fields["at"],
                      "end": float(end.read_text()) if end.exists() else None})
    return found


def peak_concurrency(recorded: list[dict[str, Any]]) -> int:
    events = sorted([(r["start"], 1) for r in recorded] + [(r["end"], -1) for r in recorded])
    running = peak = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    return peak


def package_fetched_from_s3(machines: Machines, sha256: str) -> Callable[[str], bool]:
    def fetched(machine: str) -> bool:
        home = machines.home(machine)
        # Unpacked into its own state folder; no local package store there to have come from.
        return (home / "code" / sha256 / "main.py").is_file() and not (home / "packages").exists()

    return fetched


def test_two_machines_share_the_work_and_the_quota_through_an_s3_store(
    machines: Machines, project_name: str, tmp_path: Path
) -> None:
    manifest = deploy_to_s3(machines, project_name, tmp_path)
    objects = boto3.client("s3").list_objects_v2(Bucket=BUCKET, Prefix="team/packages/")
    keys = [o["Key"] for o in objects.get("Contents", [])]
    assert len(keys) == 1 and keys[0].endswith(".tar.gz"), keys
    assert keys == [f"team/packages/{manifest['package_sha256']}.tar.gz"]
    sha256 = manifest["package_sha256"]
    assert not (machines.home("laptop") / "packages").exists()  # nothing was stored locally

    for machine in MACHINES:
        machines.start_worker(machine)
    markers = tmp_path / "markers"
    markers.mkdir()
    work = machines.queue.function(project_name, "work")
    ids = [work.start(str(markers), index, 2.0) for index in range(18)]
    assert [work.await_result(i, timeout=180) for i in ids] == [i * i for i in range(18)]

    recorded = runs(markers)
    assert sorted(r["index"] for r in recorded) == list(range(18))  # each ran exactly once
    assert peak_concurrency(recorded) == 3  # max_concurrency=3: reached, never exceeded
    by_machine = {m: sorted(r["index"] for r in recorded if r["machine"] == m) for m in MACHINES}
    assert all(by_machine.values()), by_machine  # both machines ran invocations
    assert all(map(package_fetched_from_s3(machines, sha256), MACHINES))

    # Each attempt says where its logs are; `multinode logs` reads them on that machine only.
    index = by_machine["machine-b"][0]
    attempt = work.get(ids[index]).attempts[0]
    log_file = machines.home("machine-b") / "runs" / ids[index] / "attempt-1.log"
    assert attempt.logs_at == f"machine-b:{log_file}"
    there = machines.cli("machine-b", "logs", "--invocation-id", ids[index])
    assert (there.returncode, there.stdout) == (0, f"work {index} on machine-b\n"), there.stderr
    elsewhere = machines.cli("machine-a", "logs", "--invocation-id", ids[index])
    assert elsewhere.returncode == 1 and elsewhere.stdout == ""
    assert "ran on another machine, 'machine-b'" in elsewhere.stderr and str(log_file) in elsewhere.stderr


def test_a_machine_killed_mid_run_has_its_work_finished_by_the_other(
    machines: Machines, project_name: str, tmp_path: Path
) -> None:
    deploy_to_s3(machines, project_name, tmp_path)
    doomed = machines.start_worker("machine-a")
    machines.start_worker("machine-b")
    markers = tmp_path / "markers"
    markers.mkdir()
    work = machines.queue.function(project_name, "work")
    ids = [work.start(str(markers), index, 4.0) for index in range(6)]
    wait_until(lambda: any(r["machine"] == "machine-a" and r["end"] is None for r in runs(markers)),
               timeout=60, message="a run in progress on machine-a")
    doomed.send_signal(signal.SIGKILL)
    doomed.wait()

    assert [work.await_result(i, timeout=180) for i in ids] == [i * i for i in range(6)]
    # Runs that never ended: they died with machine-a's worker.
    killed = sorted(r["index"] for r in runs(markers) if r["end"] is None)
    assert {r["machine"] for r in runs(markers) if r["end"] is None} == {"machine-a"}
    assert killed, "no run was killed with its worker"
    recorded = runs(markers)
    for index in killed:
        # Its run died with machine-a; machine-b ran it again, from the start, to its end.
        reruns = [r for r in recorded if r["index"] == index and r["end"] is not None]
        assert [r["machine"] for r in reruns] == ["machine-b"], (index, recorded)
    # Nothing lost, nothing run to its end twice.
    assert sorted(r["index"] for r in recorded if r["end"] is not None) == list(range(6))
    for invocation_id in ids:
        final = work.get(invocation_id)
        # An engine fault, not a failure of the function: uncounted.
        assert final.status == InvocationStatus.SUCCEEDED and final.num_failed_attempts == 0
    assert all(work.get(ids[i]).attempts[-1].logs_at.startswith("machine-b:") for i in killed)  # type: ignore[union-attr]
    assert peak_concurrency([r for r in recorded if r["end"] is not None]) <= 3
