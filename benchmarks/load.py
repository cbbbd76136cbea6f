"""Load run: N invocations of a recording function with max_concurrency=10 across two workers.

Proves, and prints: the quota was never exceeded, every invocation reached SUCCEEDED, and no
result was lost or duplicated (each index ran exactly once and came back exactly once).

    .venv/bin/python benchmarks/load.py            # 1,000 invocations
    .venv/bin/python benchmarks/load.py --count 60 --json /tmp/load.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from suite.samples import peak_overlap

from multinode.testing.control_plane import free_port_block

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

TASKS = '''
import os, time
from pathlib import Path
from multinode import Multinode

mn = Multinode()


@mn.function(max_concurrency=10)
def record(marker_dir, index, seconds):
    Path(marker_dir, f"{index}-{os.getpid()}.start").write_text(repr(time.time()))
    time.sleep(seconds)
    Path(marker_dir, f"{index}-{os.getpid()}.end").write_text(repr(time.time()))
    return index
'''


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=0.2, help="how long each invocation sleeps")
    parser.add_argument("--json", type=Path)
    options = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="multinode-load-"))
    port = free_port_block()
    os.environ.update({
        "MULTINODE_HOME": str(home),
        "MULTINODE_API_URL": f"127.0.0.1:{port}",
        "MULTINODE_TASK_QUEUE": "load",
    })
    from multinode import get_deployed_function
    from multinode._client import default_client
    from multinode.admin.deployment import UPGRADE_OR_CREATE, deploy
    from multinode.admin.devserver import DevServer, DevServerConfig
    from multinode.contract.codec import encode_arguments

    server = DevServer(DevServerConfig(home=home, port=port, headless=True)).start()
    workers = [
        subprocess.Popen([sys.executable, "-m", "temporal_workers"], env=dict(os.environ),
                         stdout=open(home / f"worker-{i}.log", "wb"), stderr=subprocess.STDOUT)
        for i in range(2)
    ]
    try:
        tasks = home / "tasks"
        tasks.mkdir()
        (tasks / "main.py").write_text(TASKS)
        deploy(tasks, "load", UPGRADE_OR_CREATE)
        record = get_deployed_function("load", "record")
        markers = home / "markers"
        markers.mkdir()
        began = time.monotonic()
        futures = [
            default_client().submit(record._start_async(*encode_arguments((str(markers), i, options.seconds), {})))
            for i in range(options.count)
        ]
        ids = [f.result(timeout=600) for f in futures]
        started = time.monotonic() - began
        results = [record.await_result(i, timeout=1800) for i in ids]
        makespan = time.monotonic() - began
        statuses = Counter(record.get(i).status.value for i in ids)
        runs = Counter(p.name.split("-")[0] for p in markers.glob("*.start"))
        spans = []
        for start in markers.glob("*.start"):
            end = start.with_suffix(".end")
            if end.exists():
                spans.append((float(start.read_text()), float(end.read_text())))
        figures = {
            "invocations": options.count,
            "seconds_each": options.seconds,
            "start_seconds": round(started, 2),
            "makespan_seconds": round(makespan, 2),
            "ideal_makespan_seconds": round(options.count * options.seconds / 10, 2),
            "invocations_per_second": round(options.count / makespan, 1),
            "peak_concurrency": peak_overlap(spans),
            "quota": 10,
            "statuses": dict(statuses),
            "results_missing": sorted(set(range(options.count)) - set(results)),
            "results_duplicated": [r for r, n in Counter(results).items() if n > 1],
            "indexes_run_more_than_once": sorted(int(i) for i, n in runs.items() if n > 1),
        }
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(timeout=30)
        server.stop()
    ok = (
        figures["peak_concurrency"] <= 10
        and figures["statuses"] == {"SUCCEEDED": options.count}
        and not figures["results_missing"]
        and not figures["results_duplicated"]
    )
    for key, value in figures.items():
        print(f"{key:>28}: {value}")
    print(f"{'verdict':>28}: {'OK' if ok else 'FAILED'}")
    if options.json:
        options.json.write_text(json.dumps({**figures, "ok": ok}, indent=2))
    sys.stdout.flush()
    os._exit(0 if ok else 1)


if __name__ == "__main__":
    main()
