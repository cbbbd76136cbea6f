"""The Python environment a project version runs in.

A version without requirements runs on the runtime's own interpreter. A version with
requirements gets a virtual environment built once by uv and cached under its requirements
hash, so every later invocation of any version with the same requirements starts at once.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from multinode.errors import InvalidOptionError, RequirementsInstallError

COMPLETE_MARKER = ".multinode-complete"
RUNTIME_PTH = "multinode-runtime.pth"

_MAX_SUMMARY_LINES = 5
_MAX_SUMMARY_LINE_CHARS = 500
_HASH = re.compile(r"[0-9A-Fa-f]+")

# uv prints its error chain as "error: ..." / "cause: ..." when not on a terminal, and in the
# fancy form ("× ...", "╰─▶ ...", "Caused by: ...") in other versions or modes.
_ENTRY_PREFIXES = ("error:", "cause:", "caused by:", "×", "╰─▶", "├─▶", "hint:", "help:")
# Output of a failed build backend, which holds the build's Python traceback.
_OUTPUT_BLOCK_STARTS = ("[stderr]", "[stdout]", "Traceback (most recent call last)")
_EXCEPTION_LINE = re.compile(r"[A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt)\b(?::.*)?")
_PACKAGE_PATTERNS = (
    re.compile(r"no versions? of ([A-Za-z0-9][A-Za-z0-9._-]*?)(?:[=<>!~;\[ ,]|$)"),
    re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*) was not found in the package registry"),
)

Log = Callable[[str], None]
# Told of each environment build once it ends: its duration in seconds and whether it succeeded.
BuildListener = Callable[[float, bool], None]


def environment_python(
    requirements_file: Path | None,
    requirements_hash: str | None,
    cache_root: Path,
    *,
    log: Log | None = None,
    on_build: BuildListener | None = None,
) -> Path:
    """The interpreter to run a version with: `sys.executable` when it has no requirements,
    otherwise the `bin/python` of its cached virtual environment (built on first use, and then
    reported to `on_build`)."""
    if requirements_hash is None:
        return Path(sys.executable)
    if requirements_file is None:
        raise InvalidOptionError("a requirements hash was given without a requirements file")
    if not _HASH.fullmatch(requirements_hash):
        raise InvalidOptionError(f"requirements hash {requirements_hash!r} is not hexadecimal")
    venv_dir = environment_dir(cache_root, requirements_hash)
    python = venv_dir / "bin" / "python"
    # The marker is written last, so its presence alone proves the environment is whole.
    if (venv_dir / COMPLETE_MARKER).exists():
        return python
    cache_root.mkdir(parents=True, exist_ok=True)
    with _exclusive_lock(venv_dir.with_name(venv_dir.name + ".lock")):
        if not (venv_dir / COMPLETE_MARKER).exists():
            _build(venv_dir, requirements_file.absolute(), cache_root, log or _ignore, on_build)
    return python


def environment_dir(cache_root: Path, requirements_hash: str) -> Path:
    # The interpreter version is part of the key: a venv is tied to the interpreter it was made by.
    version = f"py{sys.version_info.major}{sys.version_info.minor}"
    return cache_root / f"{requirements_hash[:32]}-{version}"


def _ignore(_message: str) -> None:
    pass


@contextmanager
def _exclusive_lock(path: Path) -> Iterator[None]:
    # flock locks belong to the open file description, so this serialises threads as well as
    # processes; closing the descriptor (even by a crash) releases it.
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)


def _build(
    venv_dir: Path, requirements_file: Path, cache_root: Path, log: Log, on_build: BuildListener | None
) -> None:
    if venv_dir.exists():
        log(f"removing the incomplete environment {venv_dir} (an interrupted build)")
        shutil.rmtree(venv_dir)
    log(f"creating the Python environment for {requirements_file} in {venv_dir}")
    started = time.monotonic()
    try:
        _create_and_install(venv_dir, requirements_file, cache_root)
    except BaseException:
        shutil.rmtree(venv_dir, ignore_errors=True)
        if on_build is not None:
            on_build(time.monotonic() - started, False)
        raise
    if on_build is not None:
        on_build(time.monotonic() - started, True)
    log(f"created the Python environment {venv_dir} in {time.monotonic() - started:.1f} s")


def _create_and_install(venv_dir: Path, requirements_file: Path, cache_root: Path) -> None:
    uv = uv_binary()
    env = uv_environment(cache_root)
    python = venv_dir / "bin" / "python"
    run_uv(
        [uv, "venv", "--color", "never", "--python", sys.executable, str(venv_dir)],
        env=env,
        cwd=cache_root,
        failure=f"could not create a virtual environment at {venv_dir}",
    )
    # Relative paths inside requirements.txt are relative to the tasks folder.
    run_uv(
        [uv, "pip", "install", "--color", "never", "--python", str(python),
         "-r", str(requirements_file)],
        env=env,
        cwd=requirements_file.parent,
        failure=f"could not install the requirements in {requirements_file}",
    )
    _write_runtime_pth(venv_dir)
    (venv_dir / COMPLETE_MARKER).write_text(f"{time.time()}\n")


def uv_binary() -> str:
    try:
        import uv

        return uv.find_uv_bin()
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        if found is None:
            raise RequirementsInstallError(
                "uv is not installed, so requirements.txt cannot be installed"
            ) from None
        return found


def uv_environment(cache_root: Path) -> dict[str, str]:
    # The caller's environment carries uv's settings (UV_INDEX_URL, proxies...). Without a
    # cache dir of its own, uv's cache goes beside the venvs: it is then on the same file system,
    # where uv hard-links instead of copying, and is writable wherever the venvs are.
    env = dict(os.environ)
    env.setdefault("UV_CACHE_DIR", str(cache_root / ".uv-cache"))
    return env


def run_uv(args: list[str], *, env: dict[str, str], cwd: Path, failure: str) -> None:
    try:
        completed = subprocess.run(
            args, env=env, cwd=cwd, capture_output=True, text=True, errors="replace", check=False
        )
    except OSError as error:
        raise RequirementsInstallError(f"{failure}: cannot run uv: {error}") from None
    if completed.returncode != 0:
        raise RequirementsInstallError(failure_message(failure, completed.stderr))


def _write_runtime_pth(venv_dir: Path) -> None:
    # addsitedir appends the runtime's site-packages after the venv's own, so the user's pinned
    # packages win while multinode and its dependencies stay importable; it also runs the .pth
    # files there (editable installs).
    runtime_site = sysconfig.get_paths()["purelib"]
    line = f"import site; site.addsitedir({runtime_site!r})\n"
    (_site_packages(venv_dir) / RUNTIME_PTH).write_text(line)


def _site_packages(venv_dir: Path) -> Path:
    found = sorted(venv_dir.glob("lib/python*/site-packages"))
    if len(found) != 1:
        raise RequirementsInstallError(f"cannot find the site-packages of {venv_dir}")
    return found[0]


# ---------------------------------------------------------------------------------------------
# Turning uv's stderr into a short message


def failure_message(failure: str, stderr: str) -> str:
    lines = summarize_uv_error(stderr)
    packages = failing_packages(stderr)
    headline = failure
    if packages:
        headline += f" (failing: {', '.join(packages)})"
    if not lines:
        return headline
    return headline + ":\n  " + "\n  ".join(lines)


def failing_packages(stderr: str) -> list[str]:
    """The package names uv's stderr blames, in order of appearance, without duplicates."""
    found: dict[str, None] = {}
    text = " ".join(stderr.split())  # uv may wrap a long sentence over several lines
    for pattern in _PACKAGE_PATTERNS:
        for match in pattern.finditer(text):
            found.setdefault(match.group(1), None)
    return list(found)


def summarize_uv_error(stderr: str) -> list[str]:
    """The 1-5 most relevant lines of uv's stderr: its error chain, never a build traceback."""
    entries, exception = _error_entries(stderr)
    if exception is not None:
        entries.append(exception)
    if not entries:
        entries = _plain_tail(stderr)
    if len(entries) > _MAX_SUMMARY_LINES:
        # The first entry says what failed and the last one is the root cause.
        entries = entries[: _MAX_SUMMARY_LINES - 1] + entries[-1:]
    return [_shorten(entry) for entry in entries]


def _error_entries(stderr: str) -> tuple[list[str], str | None]:
    entries: list[str] = []
    exception: str | None = None
    in_output = False
    for raw in stderr.splitlines():
        line = raw.strip().lstrip("│").strip()
        if not line:
            continue
        rest = _strip_entry_prefix(line)
        if rest is not None:
            in_output = False
            entries.append(rest)
        elif line.startswith(_OUTPUT_BLOCK_STARTS):
            in_output = True
        elif in_output:
            # Of a build's output keep only its final exception line, not the traceback.
            if _EXCEPTION_LINE.fullmatch(line):
                exception = line
        elif entries:
            entries[-1] = f"{entries[-1]} {line}".strip()  # a wrapped continuation line
    return [entry for entry in entries if entry], exception


def _strip_entry_prefix(line: str) -> str | None:
    lowered = line.lower()
    for prefix in _ENTRY_PREFIXES:
        if lowered.startswith(prefix):
            return line[len(prefix) :].strip()
    return None


def _plain_tail(stderr: str) -> list[str]:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    if any(line.startswith(_OUTPUT_BLOCK_STARTS) for line in lines):
        lines = [line for line in lines if _EXCEPTION_LINE.fullmatch(line)]
    return lines[-_MAX_SUMMARY_LINES:]


def _shorten(line: str) -> str:
    if len(line) <= _MAX_SUMMARY_LINE_CHARS:
        return line
    return line[: _MAX_SUMMARY_LINE_CHARS - 3] + "..."


__all__ = [
    "COMPLETE_MARKER",
    "RUNTIME_PTH",
    "environment_dir",
    "environment_python",
    "failing_packages",
    "failure_message",
    "run_uv",
    "summarize_uv_error",
    "uv_binary",
    "uv_environment",
]
