"""pyproject.toml lists every package by hand (`packages.find` cannot install the `cli/` folder
as `multinode_cli`): a subpackage missing from the list would be left out of the installed
distribution, and work only from a checkout."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]
# Installed package name -> its folder in the repository.
TOP_LEVEL = {"multinode": "multinode", "temporal_workers": "temporal_workers", "multinode_cli": "cli"}


def _source_folders(top: Path) -> list[Path]:
    """Every folder under `top` (itself included) that holds Python source."""
    return sorted(
        folder for folder in [top, *top.rglob("*")]
        if folder.is_dir() and folder.name != "__pycache__" and any(folder.glob("*.py"))
    )


def test_cli_folder_installs_as_multinode_cli() -> None:
    assert SETUPTOOLS["package-dir"] == {"multinode_cli": "cli"}


def test_package_list_matches_the_folders() -> None:
    on_disk = set()
    for package, folder in TOP_LEVEL.items():
        for path in _source_folders(ROOT / folder):
            if (path / "__init__.py").exists():
                relative = path.relative_to(ROOT / folder).parts
                on_disk.add(".".join((package, *relative)))
    listed = set(SETUPTOOLS["packages"])
    missing, stale = sorted(on_disk - listed), sorted(listed - on_disk)
    assert not missing, f"add to [tool.setuptools] packages in pyproject.toml, then run ./scripts/setup: {missing}"
    assert not stale, f"no such package any more, remove from [tool.setuptools] packages: {stale}"


def test_every_source_folder_is_a_package() -> None:
    # Without __init__.py a folder would not be installed at all, whatever the list says.
    bare = [
        str(path.relative_to(ROOT))
        for folder in TOP_LEVEL.values()
        for path in _source_folders(ROOT / folder)
        if not (path / "__init__.py").exists()
    ]
    assert not bare, f"add an __init__.py (with a docstring saying what lives there): {bare}"
