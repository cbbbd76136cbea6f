"""Deploying a tasks folder (or a main.py given as text) in a test, and its functions."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from multinode._function import Function
from multinode.contract.records import VersionManifest


@dataclass(frozen=True)
class Deployment:
    """A deployed version: `deployment["name"]` (or `.functions`) are its functions, bound to
    the project, ready for `.start`, `.call_remote`, `.map`..."""

    manifest: VersionManifest
    functions: dict[str, Function[..., Any]]

    @property
    def project_name(self) -> str:
        return self.manifest.project_name

    @property
    def version_id(self) -> str:
        return self.manifest.version_id

    def __getitem__(self, function_name: str) -> Function[..., Any]:
        try:
            return self.functions[function_name]
        except KeyError:
            raise KeyError(
                f"{self.project_name} has no function {function_name!r}; it has {sorted(self.functions)}"
            ) from None


def write_tasks(folder: Path, main_py: str, **files: str) -> Path:
    """A tasks folder with `main_py` as its main.py; `files` maps more paths to their text
    (`pkg__mod.py` or `{"pkg/mod.py": ...}` for a file in a package)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "main.py").write_text(main_py)
    for name, text in files.items():
        path = folder / name.replace("__", "/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return folder


def deploy_tasks(folder: Path, project_name: str, upgrade: bool = False) -> Deployment:
    """Deploy `folder` as `project_name` (a new version of it with `upgrade=True`)."""
    from multinode import get_deployed_function
    from multinode.admin.deployment import UPGRADE, deploy

    manifest = deploy(folder, project_name, UPGRADE) if upgrade else deploy(folder, project_name)
    functions = {spec.name: get_deployed_function(project_name, spec.name) for spec in manifest.functions}
    return Deployment(manifest, functions)
