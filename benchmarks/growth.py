"""Growth (issue 21): how the hot path, `.list` and the store fare as finished invocations pile up.

    python benchmarks/growth.py [--count N] [--samples K] [--quick] [--json PATH]

On its own dev server (the `multinode dev` settings) and worker it runs N no-op invocations
(through `.map`, the cheapest bulk path), and measures after 0, N/2 and N of them: `call_remote`,
`.start` (alone) and `.get` (finished) p50, a `.list` page p50, the Temporal database on disk,
the whole state folder per finished invocation and the dev server's resident memory. Each
latency figure is printed with its ratio to the empty store's. The worker archives every few
seconds, and each checkpoint first lets the archiver settle, so archive copies (where retention
needs them) are in the figures. At the end it pages through `.list` once and checks every
invocation is there exactly once, newest first, and that the oldest one is still readable.
Speed is never asserted: the exit code only says whether the run worked.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from contextlib import closing
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # run as a script: `temporal_workers` is importable from the repo

from suite.harness import FAILURES, Plane, control_plane, exit_with, fn, log, mn_engine_run  # noqa: E402
from suite.memory import proc_status_mb  # noqa: E402
from suite.samples import percentile, timed_ms  # noqa: E402
from suite.stages import deploy_tasks  # noqa: E402

ARCHIVE_INTERVAL_SECONDS = 5.0
ARCHIVE_LAG_SECONDS = 5.0
# The archiver is settled once its record count has not moved for this long.
ARCHIVE_QUIET_SECONDS = ARCHIVE_INTERVAL_SECONDS + 3.0
ARCHIVE_SETTLE_LIMIT_SECONDS = 900.0
MAP_CHUNK = 1000
VISIBILITY_WAIT_SECONDS = 120.0


@dataclass
class Checkpoint:
    invocations: int
    call_remote_ms: float
    start_ms: float
    get_ms: float
    list_page_ms: float
    temporal_db_bytes: int
    state_bytes: int
    runs_bytes: int
    archive_records: int
    server_rss_mb: float
    # SQLite page bytes by table or index (dbstat, on a copy of the file).
    tables: dict[str, int]


def disk_bytes(path: Path) -> int:
    """Bytes allocated on disk (blocks, not apparent sizes) under `path`."""
    if path.is_file():
        return path.stat().st_blocks * 512
    total = 0
    for root, dirs, files in os.walk(path):
        for name in files + dirs:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except FileNotFoundError:
                pass  # removed while walking (an attempt's scratch)
    return total


def page_bytes(database: Path) -> dict[str, int]:
    """Page bytes by table or index, read with dbstat from a copy (the WAL too, so what the
    server has not checkpointed yet counts), largest first."""
    with tempfile.TemporaryDirectory() as scratch:
        for part in database.parent.glob(database.name + "*"):
            shutil.copy(part, Path(scratch) / part.name)
        with closing(sqlite3.connect(Path(scratch) / database.name)) as db:
            rows = db.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC").fetchall()
    return {str(name): int(size) for name, size in rows}


def count_workflows(query: str) -> int:
    async def count(client: Any) -> int:
        return int((await client.count_workflows(query)).count)

    return mn_engine_run(count)


def settle_archiver() -> int:
    """Wait until the archiver's record count stops moving; the count."""
    from multinode.contract import names

    query = f'WorkflowType = "{names.ARCHIVE_WORKFLOW}"'
    time.sleep(ARCHIVE_INTERVAL_SECONDS + ARCHIVE_LAG_SECONDS + 1)
    deadline = time.monotonic() + ARCHIVE_SETTLE_LIMIT_SECONDS
    last, since = count_workflows(query), time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - since < ARCHIVE_QUIET_SECONDS:
        time.sleep(1.0)
        now = count_workflows(query)
        if now != last:
            last, since = now, time.monotonic()
    return last


def p50(samples: list[float]) -> float:
    return percentile(samples, 50)


def measure(plane: Plane, invocations: int, samples: int) -> tuple[Checkpoint, int]:
    """One checkpoint; also the invocations its own measurements added."""
    noop = fn("noop")
    archived = settle_archiver()
    database = plane.home / "temporal.db"
    db_bytes = sum(disk_bytes(p) for p in database.parent.glob(database.name + "*"))
    state_bytes = disk_bytes(plane.home)
    runs_bytes = disk_bytes(plane.home / "runs") if (plane.home / "runs").exists() else 0
    rss = proc_status_mb(plane.server_pid)
    list_ms = p50([timed_ms(noop.list) for _ in range(samples)])
    get_id = noop.start(0)
    noop.await_result(get_id, timeout=120)
    get_ms = p50([timed_ms(partial(noop.get, get_id)) for _ in range(samples)])
    calls = p50([timed_ms(partial(noop.call_remote, i)) for i in range(samples)])
    starts = []
    for i in range(samples):
        started = time.perf_counter()
        invocation_id = noop.start(i)
        starts.append((time.perf_counter() - started) * 1000)
        noop.await_result(invocation_id, timeout=120)
    checkpoint = Checkpoint(
        invocations=invocations, call_remote_ms=calls, start_ms=p50(starts), get_ms=get_ms,
        list_page_ms=list_ms, temporal_db_bytes=db_bytes, state_bytes=state_bytes, runs_bytes=runs_bytes,
        archive_records=archived, server_rss_mb=rss, tables=page_bytes(database),
    )
    log(f"after {invocations}: {({k: v for k, v in asdict(checkpoint).items() if k != 'tables'})}")
    return checkpoint, 1 + 2 * samples


def run_no_ops(count: int) -> None:
    noop = fn("noop")
    done = 0
    began = time.perf_counter()
    while done < count:
        chunk = min(MAP_CHUNK, count - done)
        for _ in noop.map(range(chunk), return_exceptions=True):
            pass
        done += chunk
        log(f"  {done} of {count} no-ops ({done / (time.perf_counter() - began):.1f}/s)")


def check_paging(expected: int) -> dict[str, Any]:
    """Page through `.list` once: every invocation exactly once, newest first."""
    noop = fn("noop")
    # Visibility records a start a little after it (more under load): wait for all of them.
    waited = time.perf_counter()
    deadline = time.monotonic() + VISIBILITY_WAIT_SECONDS
    while len(every := noop.list_ids()) < expected and time.monotonic() < deadline:
        time.sleep(1.0)
    waited = time.perf_counter() - waited
    paged: list[str] = []
    offset: str | None = None
    pages = 0
    began = time.perf_counter()
    while True:
        page = noop.list(offset)
        paged += page.invocation_ids
        pages += 1
        offset = page.offset
        if offset is None:
            break
    seconds = time.perf_counter() - began
    oldest = noop.get(paged[-1]) if paged else None
    return {
        "pages": pages,
        "seconds": round(seconds, 2),
        "listed": len(paged),
        "expected": expected,
        "visible_before_paging": len(every),
        "visibility_wait_seconds": round(waited, 2),
        # Positions (newest first) of what paging missed or listed that list_ids does not know.
        "missing_at": sorted(every.index(i) for i in set(every) - set(paged))[:20],
        "unknown": sorted(set(paged) - set(every))[:20],
        "unique": len(set(paged)) == len(paged),
        "newest_first": paged == sorted(paged, reverse=True),
        "exact": len(paged) == expected and len(set(paged)) == expected and paged == sorted(paged, reverse=True),
        "oldest_status": oldest.status.value if oldest is not None else None,
        "oldest_result_readable": oldest is not None and oldest.status.value == "SUCCEEDED",
    }


def table(checkpoints: list[Checkpoint]) -> str:
    base = checkpoints[0]

    def latency(value: float, first: float) -> str:
        return f"{value:.1f} ms ({value / first:.2f}x)" if first else f"{value:.1f} ms"

    header = ("| after | call_remote p50 | .start p50 | .get p50 | .list page p50 | Temporal DB on disk "
              "| state folder growth per invocation | dev server RSS |")
    lines = [header, "|" + "---|" * 8]
    for c in checkpoints:
        grown = c.invocations - base.invocations
        per = f"{(c.state_bytes - base.state_bytes) / grown / 1024:.1f} KB" if grown else "-"
        lines.append(
            f"| {c.invocations:,} | {latency(c.call_remote_ms, base.call_remote_ms)} "
            f"| {latency(c.start_ms, base.start_ms)} | {latency(c.get_ms, base.get_ms)} "
            f"| {latency(c.list_page_ms, base.list_page_ms)} | {c.temporal_db_bytes / 1e6:.1f} MB "
            f"| {per} | {c.server_rss_mb:.0f} MB |"
        )
    return "\n".join(lines)


def page_table(checkpoints: list[Checkpoint]) -> str:
    """Page bytes per invocation by table or index, between the empty store and the last
    checkpoint."""
    base, last = checkpoints[0], checkpoints[-1]
    grown = last.invocations - base.invocations
    if not grown:
        return ""
    lines = ["| table or index | bytes per invocation |", "|---|---|"]
    growth = {n: last.tables.get(n, 0) - base.tables.get(n, 0) for n in last.tables}
    for name, size in sorted(growth.items(), key=lambda item: -item[1]):
        if size / grown >= 20:
            lines.append(f"| {name} | {size / grown:,.0f} |")
    lines.append(f"| all pages | {sum(growth.values()) / grown:,.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100_000, help="no-op invocations to run (default 100,000)")
    parser.add_argument("--samples", type=int, default=30, help="samples per latency figure (default 30)")
    parser.add_argument("--quick", action="store_true", help="40 invocations, 3 samples: checks that it runs")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    count, samples = (40, 3) if args.quick else (args.count, args.samples)
    if count < 2 or samples < 1:
        parser.error(f"--count must be at least 2 (got {count}) and --samples at least 1 (got {samples})")
    settings = {
        "MULTINODE_ARCHIVE_INTERVAL_SECONDS": str(ARCHIVE_INTERVAL_SECONDS),
        "MULTINODE_ARCHIVE_LAG_SECONDS": str(ARCHIVE_LAG_SECONDS),
    }
    began = time.perf_counter()
    with control_plane(settings) as plane:
        FAILURES.home = plane.home
        deploy_tasks()
        noop = fn("noop")
        noop.await_result(noop.start(0), timeout=120)  # the worker may still be connecting
        made = 1
        checkpoints = []
        for target in (0, count // 2, count):
            run_no_ops(target - (made if target else 0) if target > made else 0)
            made = max(made, target)
            checkpoint, extra = measure(plane, made, samples)
            checkpoints.append(checkpoint)
            made += extra
        paging = check_paging(made)
    print(table(checkpoints))
    print("(state folder growth: bytes on disk under the state folder beyond the empty store's, per invocation since)")
    print(page_table(checkpoints))
    print(f"\n.list paging over {paging['listed']:,} invocations ({paging['pages']} pages, {paging['seconds']} s): "
          f"{'exact' if paging['exact'] else 'NOT EXACT'}; oldest still {paging['oldest_status']}")
    report = {
        "count": count,
        "samples": samples,
        "duration_seconds": round(time.perf_counter() - began, 1),
        "checkpoints": [asdict(c) for c in checkpoints],
        "paging": paging,
        "failed_invocations": FAILURES.count,
        "load_average_at_end": os.getloadavg(),
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2, default=str))
    return 0 if paging["exact"] and paging["oldest_result_readable"] else 1


if __name__ == "__main__":
    exit_with(main)
