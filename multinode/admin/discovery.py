"""Finding the functions of a tasks folder: `python -m multinode.admin.discovery FOLDER OUT`.

Runs in the version's own environment (its requirements installed), in a child process, so a
deploy sees exactly the imports the containers will see and never pollutes the deploying
process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Any

from multinode.errors import DeployError

DISCOVERY_TIMEOUT_SECONDS = 300


def _describe_import_failure(exc: BaseException, folder: str) -> str:
    if isinstance(exc, SyntaxError):
        where = os.path.relpath(exc.filename or "main.py", folder)
        line = (exc.text or "").strip()
        return f"syntax error in {where} line {exc.lineno}: {exc.msg}" + (f"\n    {line}" if line else "")
    frames = [
        f"{os.path.relpath(frame.filename, folder)}:{frame.lineno}"
        for frame in traceback.extract_tb(exc.__traceback__)
        if os.path.abspath(frame.filename).startswith(os.path.abspath(folder))
    ]
    where = f" (at {frames[-1]})" if frames else ""
    return f"importing main.py failed{where}: {type(exc).__name__}: {exc}"


def _discover(folder: str) -> dict[str, Any]:
    sys.path.insert(0, folder)
    os.chdir(folder)
    try:
        import importlib

        importlib.import_module("main")
    except BaseException as exc:  # report every failure as one clear line, even SystemExit
        return {"ok": False, "error": _describe_import_failure(exc, folder)}
    from multinode._definition import kind, registered_functions
    from multinode._service import registered_services

    functions = registered_functions()
    services = registered_services()
    if not functions and not services:
        return {
            "ok": False,
            "error": "main.py defines no function: decorate one with @mn.function() (or @mn.service(port=...))",
        }
    return {
        "ok": True,
        "functions": [
            {
                "name": name,
                "options": f.options.to_dict() if f.options else None,
                "is_generator": f.is_generator,
                "kind": kind(f).value,
            }
            for name, f in sorted(functions.items())
        ],
        "services": [
            {"name": name, "port": s.port, "cpu": s.cpu, "memory_mib": s.memory_mib}
            for name, s in sorted(services.items())
        ],
    }


def discover(folder: Path, python: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Import the folder's main.py with `python` and return its functions with their options,
    and its services."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="multinode-discovery-") as scratch:
        out = Path(scratch) / "functions.json"
        try:
            completed = subprocess.run(
                [str(python), "-m", "multinode.admin.discovery", str(folder.resolve()), str(out)],
                capture_output=True,
                text=True,
                timeout=DISCOVERY_TIMEOUT_SECONDS,
                env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
            )
        except subprocess.TimeoutExpired:
            raise DeployError(
                f"importing main.py took over {DISCOVERY_TIMEOUT_SECONDS} s; move slow work "
                f"out of import time"
            ) from None
        if not out.exists():
            detail = (completed.stderr or completed.stdout).strip().splitlines()
            raise DeployError(
                "inspecting main.py failed: " + (detail[-1] if detail else f"exit code {completed.returncode}")
            )
        report = json.loads(out.read_text())
    if not report["ok"]:
        raise DeployError(str(report["error"]))
    functions: list[dict[str, Any]] = report["functions"]
    services: list[dict[str, Any]] = report.get("services", [])
    return functions, services


def main() -> None:
    folder, out = sys.argv[1], sys.argv[2]
    report = _discover(folder)
    with open(out, "w") as handle:
        json.dump(report, handle)
    os._exit(0)  # user imports may have left threads running; the report is all we need


if __name__ == "__main__":
    main()
