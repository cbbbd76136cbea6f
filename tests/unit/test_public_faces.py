"""The public faces the CLI stands on: `multinode.admin` (the operator calls) and the root of
`temporal_workers` (running a worker). The CLI imports nothing else of Multinode, so code can do
whatever the CLI does through these names; and both faces stay cheap to import."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import multinode
import temporal_workers
from multinode import admin

REPO = Path(__file__).resolve().parents[2]
CLI = REPO / "cli"
# What the CLI may import of Multinode's own code (its own modules come relatively).
ALLOWED = {"multinode", "multinode.admin", "multinode.errors", "temporal_workers"}
HEAVY = ("temporalio", "boto3", "botocore", "pydantic")


def _cli_modules() -> list[Path]:
    modules = sorted(CLI.glob("*.py"))
    assert {p.stem for p in modules} >= {"main", "output", "failures"}
    return modules


def _own(module: str) -> bool:
    return module.split(".")[0] in {"multinode", "temporal_workers", "multinode_cli", "cli"}


def test_the_cli_imports_only_public_faces() -> None:
    found: set[str] = set()
    for path in _cli_modules():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
                if node.module == "multinode":  # `from multinode import admin` names a module
                    names += [f"multinode.{a.name}" for a in node.names if a.name in {"admin", "errors"}]
            else:
                continue
            for name in filter(_own, names):
                found.add(name)
                assert name in ALLOWED, f"{path.name} imports {name}"
    assert {"multinode.admin", "temporal_workers"} <= found


def test_the_cli_uses_only_exported_names() -> None:
    faces = {"admin": set(admin.__all__), "multinode": set(multinode.__all__),
             "temporal_workers": set(temporal_workers.__all__)}
    for path in _cli_modules():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in faces:
                if node.value.id == "multinode" and node.attr in {"admin", "errors"}:
                    continue
                assert node.attr in faces[node.value.id], f"{path.name} uses {node.value.id}.{node.attr}"
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module in {"multinode", "multinode.admin"}:
                exported = faces["multinode" if node.module == "multinode" else "admin"] | {"admin", "errors"}
                for alias in node.names:
                    assert alias.name in exported, f"{path.name} imports {node.module}.{alias.name}"


def test_every_exported_name_exists() -> None:
    for face in (admin, temporal_workers):
        assert sorted(face.__all__) == sorted(set(face.__all__))
        for name in face.__all__:
            assert getattr(face, name) is not None, (face.__name__, name)
    assert temporal_workers.WorkerSettings.__name__ == "WorkerSettings"  # loaded on first use


def test_the_faces_import_without_temporalio_boto3_or_pydantic() -> None:
    for module in ("multinode.admin", "temporal_workers", "multinode_cli.main"):
        code = (f"import sys, {module}; "
                f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}))")
        completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                   cwd=REPO, timeout=60, check=True)
        assert completed.stdout.strip() == "[]", (module, completed.stdout)
