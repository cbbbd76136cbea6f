"""Load run: N short invocations of a recording function with max_concurrency=10, served by two
workers sharing the quota and then by one, each on its own fresh stack.

Proves, and prints for each: the quota was never exceeded, every invocation reached SUCCEEDED,
and no result was lost or duplicated (each index ran exactly once and came back exactly once);
then the makespan of each against the ideal (N x seconds / 10), as a ratio, which stays
comparable on a busy machine where the absolute figures do not.

    .venv/bin/python benchmarks/load.py            # 1,000 invocations, two workers then one
    .venv/bin/python benchmarks/load.py --count 60 --workers 2 --json /tmp/load.json
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
from typing import Any

from suite.samples import peak_overlap

from multinode.testing.control_plane import free_port_block

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

QUOTA = 10

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


def run_once(count: int, seconds: float, worker_count: int) -> dict[str, Any]:
    """One fresh stack (its own dev server and `worker_count` workers), `count` invocations."""
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
        for i in range(worker_count)
    ]
    try:
        tasks = home / "tasks"
        tasks.mkdir()
        (tasks / "main.py").write_text(TASKS)
        deploy(tasks, "load", UPGRADE_OR_CREATE)
        record = get_deployed_function("load", "record")
        markers = home / "markers"
        markers.mkdir()
        began, began_wall = time.monotonic(), time.time()
        futures = [
            default_client().submit(record._start_async(*encode_arguments((str(markers), i, seconds), {})))
            for i in range(count)
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
        ideal = count * seconds / QUOTA
        first_start = min((s for s, _ in spans), default=began_wall)
        last_end = max((e for _, e in spans), default=began_wall)
        return {
            "workers": worker_count,
            "invocations": count,
            "seconds_each": seconds,
            "start_seconds": round(started, 2),
            "makespan_seconds": round(makespan, 2),
            "ideal_makespan_seconds": round(ideal, 2),
            "ratio_to_ideal": round(makespan / ideal, 2),
            "invocations_per_second": round(count / makespan, 1),
            # Where the makespan goes: before the first function starts, while they run, and
            # after the last one ends until every result is read.
            "first_start_after_seconds": round(first_start - began_wall, 2),
            "running_span_seconds": round(last_end - first_start, 2),
            "results_after_last_end_seconds": round(began_wall + makespan - last_end, 2),
            "peak_concurrency": peak_overlap(spans),
            "quota": QUOTA,
            "statuses": dict(statuses),
            "results_missing": sorted(set(range(count)) - set(results)),
            "results_duplicated": [r for r, n in Counter(results).items() if n > 1],
            "indexes_run_more_than_once": sorted(int(i) for i, n in runs.items() if n > 1),
        }
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(timeout=30)
        server.stop()


def verdict(figures: dict[str, Any]) -> bool:
    return bool(
        figures["peak_concurrency"] <= QUOTA
        and figures["statuses"] == {"SUCCEEDED": figures["invocations"]}
        and not figures["results_missing"]
        and not figures["results_duplicated"]
        and not figures["indexes_run_more_than_once"]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=0.2, help="how long each invocation sleeps")
    parser.add_argument("--workers", type=int, nargs="+", default=[2, 1],
                        help="worker counts to run, one fresh stack each (default: 2 then 1)")
    parser.add_argument("--json", type=Path)
    options = parser.parse_args()

    if len(options.workers) == 1:
        runs = [run_once(options.count, options.seconds, options.workers[0])]
    else:
        # One process per stack: the SDK's default client is bound to one control plane.
        runs = []
        for n in options.workers:
            out = Path(tempfile.mkdtemp(prefix="multinode-load-run-")) / "figures.json"
            subprocess.run([sys.executable, __file__, "--count", str(options.count), "--seconds",
                            str(options.seconds), "--workers", str(n), "--json", str(out)],
                           stdout=subprocess.DEVNULL, check=False)
            runs.append(json.loads(out.read_text())["runs"][0])
    for figures in runs:
        print(f"--- {figures['workers']} worker(s)")
        for key, value in figures.items():
            print(f"{key:>28}: {value}")
        print(f"{'verdict':>28}: {'OK' if verdict(figures) else 'FAILED'}")
    print()
    print("| workers | makespan | ideal | ratio | peak concurrency | verdict |")
    print("|---|---|---|---|---|---|")
    for f in runs:
        print(f"| {f['workers']} | {f['makespan_seconds']} s | {f['ideal_makespan_seconds']} s "
              f"| {f['ratio_to_ideal']}x | {f['peak_concurrency']} | {'OK' if verdict(f) else 'FAILED'} |")
    ok = all(verdict(f) for f in runs)
    if options.json:
        options.json.write_text(json.dumps({"runs": runs, "ok": ok}, indent=2))
    sys.stdout.flush()
    os._exit(0 if ok else 1)


if __name__ == "__main__":
    main()
