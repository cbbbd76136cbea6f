"""The public types hold: mypy (strict, the project's configuration) checks `tests/typing/`,
whose `assert_type` lines state the types users rely on and whose `# type: ignore[...]` lines
mark calls the types must refuse (`warn_unused_ignores` fails the check if one is accepted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MYPY = Path(sys.executable).parent / "mypy"
CASES = ROOT / "tests" / "typing"


@pytest.mark.timeout(300)
def test_public_types_hold() -> None:
    assert MYPY.exists(), f"{MYPY} is missing: run ./scripts/setup (mypy is a dev extra)"
    assert sorted(CASES.glob("*.py")), f"no type cases in {CASES}"
    completed = subprocess.run(
        [str(MYPY), "--config-file", str(ROOT / "pyproject.toml"), "--warn-unused-ignores", str(CASES)],
        cwd=ROOT, capture_output=True, text=True, timeout=290, check=False,
    )
    if completed.returncode != 0:
        pytest.fail(f"mypy refused tests/typing:\n{completed.stdout}{completed.stderr}", pytrace=False)
