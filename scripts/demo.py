"""The demo: start `multinode dev`, deploy tasks/ as project "demo", run application/main.py,
then stop everything. Uses its own ports and a fresh state folder (removed at the end), so it
never disturbs a `multinode dev` you already run, and every run starts clean."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PORT = int(os.environ.get("MULTINODE_DEMO_PORT", "17233"))
UI_PORT = PORT + 1000


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"demo: `multinode dev` exited early (code {process.returncode})")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    sys.exit("demo: the control plane did not start in time")


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="multinode-demo-") as home:
        return run(Path(home))


def run(home: Path) -> int:
    env = {
        **os.environ,
        "MULTINODE_HOME": str(home),
        "MULTINODE_API_URL": f"127.0.0.1:{PORT}",
    }
    env.pop("MULTINODE_API_KEY", None)
    print(f"$ multinode dev --port {PORT} --ui-port {UI_PORT}", flush=True)
    dev = subprocess.Popen(
        [str(BIN / "multinode"), "dev", "--port", str(PORT), "--ui-port", str(UI_PORT)],
        env=env, start_new_session=True,
    )
    try:
        wait_for_port(PORT, dev)
        time.sleep(1.0)  # the worker connects right after the server opens its port
        print("\n$ multinode upgrade tasks/ --project-name=demo --deploy", flush=True)
        subprocess.run(
            [str(BIN / "multinode"), "upgrade", "tasks/", "--project-name=demo", "--deploy"],
            env=env, cwd=REPO, check=True,
        )
        print("\n$ python application/main.py", flush=True)
        return subprocess.run([sys.executable, "application/main.py"], env=env, cwd=REPO).returncode
    finally:
        os.killpg(dev.pid, signal.SIGINT)
        try:
            dev.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(dev.pid, signal.SIGKILL)
            dev.wait()
        print("\ndemo: control plane stopped", flush=True)


if __name__ == "__main__":
    sys.exit(main())
