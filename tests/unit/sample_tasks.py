"""A small tasks folder for the package tests: a module, a subpackage, an executable script."""

from __future__ import annotations

from pathlib import Path


def make_tasks(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "main.py").write_text("def hello():\n    return 'hi'\n")
    (folder / "lib").mkdir()
    (folder / "lib" / "util.py").write_text("X = 1\n")
    (folder / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (folder / "run.sh").chmod(0o700)
    return folder
