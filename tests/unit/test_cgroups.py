"""The cgroup limiter falls back, saying so once, where the machine gives no cgroup tree."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from temporal_workers.backends.local.cgroups import CgroupLimiter

pytestmark = pytest.mark.timeout(10)


def test_no_cgroup_tree_means_unlimited_and_one_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="multinode.worker"):
        limiter = CgroupLimiter(root=tmp_path)
        assert limiter.enabled is False
        assert limiter.create("attempt", 0.5, 256) is None
        assert limiter.create("attempt2", 1, 512) is None
    warnings = [r for r in caplog.records if "not enforced" in r.getMessage()]
    assert len(warnings) == 1


def test_v1_tree_gets_limits(tmp_path: Path) -> None:
    for controller, files in {"memory": ["memory.limit_in_bytes"], "cpu": ["cpu.cfs_quota_us"]}.items():
        (tmp_path / controller).mkdir()
        for name in files:
            (tmp_path / controller / name).write_text("")
    limiter = CgroupLimiter(root=tmp_path)
    assert limiter.mode == "v1"
    cgroup = limiter.create("inv-1", 0.25, 300)
    assert cgroup is not None and cgroup.memory_dir is not None and cgroup.cpu_dir is not None
    assert (cgroup.memory_dir / "memory.limit_in_bytes").read_text() == str(300 * 1024 * 1024)
    assert (cgroup.cpu_dir / "cpu.cfs_quota_us").read_text() == "250000"
    assert (cgroup.cpu_dir / "cpu.cfs_period_us").read_text() == "1000000"
    assert cgroup.deferred_cpu_procs == cgroup.cpu_dir / "cgroup.procs"
    (cgroup.memory_dir / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 1\n")
    assert cgroup.oom_killed()
