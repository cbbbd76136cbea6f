"""The import rules between the rooms hold: the contracts in pyproject.toml's
`[tool.importlinter]`, checked by import-linter, and what a function's process really loads."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"

# What one attempt loads in its process; none of these may pull in the heavy clients.
ATTEMPT_MODULES = ("multinode.runtime.runner", "multinode.runtime.forkserver")
HEAVY = ("temporalio", "boto3", "botocore", "pydantic")


@pytest.mark.timeout(120)
def test_import_contracts_are_kept() -> None:
    assert LINT_IMPORTS.exists(), f"{LINT_IMPORTS} is missing: run ./scripts/setup (import-linter is a dev extra)"
    # No cache: a stale graph must never pass a broken rule.
    completed = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo"],
        cwd=ROOT, capture_output=True, text=True, timeout=110, check=False,
        env={**os.environ, "COLUMNS": "200"},  # one line per import chain in the report
    )
    if completed.returncode != 0:
        pytest.fail(f"lint-imports found broken import rules:\n{completed.stdout}{completed.stderr}", pytrace=False)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("module", ATTEMPT_MODULES)
def test_an_attempt_loads_no_heavy_client(module: str) -> None:
    """The static contracts ignore the SDK's lazy imports; this is what actually gets loaded."""
    code = (
        f"import sys, {module}\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}))"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=50, check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "[]", completed.stdout
