"""`@mn.service`: checked when the decorator runs (port, cpu, memory, what it decorates), found
by discovery beside the functions with its kind, and two services on one port refused at deploy
naming both."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import multinode as mn
from multinode import errors
from multinode.admin.deployment import build_manifest
from multinode.admin.discovery import discover

pytestmark = pytest.mark.timeout(60)


def service_body_for_tests() -> None:
    pass


def with_parameter(port):  # type: ignore[no-untyped-def]
    pass


def a_generator():  # type: ignore[no-untyped-def]
    yield 1


async def an_async_generator():  # type: ignore[no-untyped-def]
    yield 1


BAD: list[tuple[str, Callable[[], Any], str]] = [
    ("port 0", lambda: mn.service(port=0), "port=0 is out of range; allowed: 1 to 65535"),
    ("port 65536", lambda: mn.service(port=65536), "port=65536 is out of range; allowed: 1 to 65535"),
    ("port text", lambda: mn.service(port="8080"), "port='8080' is not an integer; allowed: 1 to 65535"),
    ("port bool", lambda: mn.service(port=True), "port=True is not an integer"),
    ("cpu", lambda: mn.service(port=80, cpu=32), "cpu=32 is out of range; allowed: 0.1 to 16 virtual CPUs"),
    ("memory", lambda: mn.service(port=80, memory="100 GiB"), "memory='100 GiB' is out of range"),
    ("parameters", lambda: mn.service(port=80)(with_parameter),
     "not 'with_parameter', which takes parameters (port); a service is started with none"),
    ("generator", lambda: mn.service(port=80)(a_generator), "not the generator 'a_generator'"),
    ("async generator", lambda: mn.service(port=80)(an_async_generator),
     "not the async generator 'an_async_generator'"),
    ("lambda", lambda: mn.service(port=80)(lambda: None), "not a lambda"),
    ("class", lambda: mn.service(port=80)(dict), "the class 'dict'"),
]


@pytest.mark.parametrize(("case", "call", "message"), BAD, ids=[c[0] for c in BAD])
def test_bad_declarations_are_refused_naming_the_value(case: str, call: Callable[[], Any], message: str) -> None:
    with pytest.raises(errors.InvalidOptionError) as raised:
        call()
    assert message in str(raised.value)


def test_defaults_and_limits_are_the_functions() -> None:
    service = mn.Multinode().service(port=8080)(service_body_for_tests)
    assert isinstance(service, mn.Service)
    assert (service.port, service.cpu, service.memory) == (8080, 0.1, "256 MiB")
    sized = mn.service(port=1, cpu=16, memory="64 GiB")(service_body_for_tests)
    assert (sized.port, sized.cpu, sized.memory_mib) == (1, 16.0, 64 * 1024)
    assert mn.service(port=65535)(service_body_for_tests).spec.address() == "http://127.0.0.1:65535"


def _folder(tmp_path: Path, body: str) -> Path:
    folder = tmp_path / "tasks"
    folder.mkdir()
    (folder / "main.py").write_text("import multinode as mn\n\n" + body)
    return folder


def test_discovery_lists_services_beside_functions(tmp_path: Path) -> None:
    folder = _folder(tmp_path, (
        "@mn.function()\ndef work(x):\n    return x\n\n"
        "@mn.service(port=8081, cpu=0.5, memory='512 MiB')\nasync def api():\n    pass\n"
    ))
    functions, services = discover(folder, Path(sys.executable))
    assert [f["name"] for f in functions] == ["work"]
    assert services == [{"name": "api", "port": 8081, "cpu": 0.5, "memory_mib": 512}]


def test_a_project_of_services_only_deploys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MULTINODE_HOME", str(tmp_path / "home"))
    folder = _folder(tmp_path, "@mn.service(port=8081)\ndef api():\n    pass\n")
    manifest, _ = build_manifest(folder, "p")
    assert manifest.functions == [] and [(s.name, s.kind, s.port) for s in manifest.services] == [
        ("api", "service", 8081)
    ]


def test_two_services_on_one_port_are_refused_naming_both(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MULTINODE_HOME", str(tmp_path / "home"))
    folder = _folder(tmp_path, (
        "@mn.service(port=8080)\ndef api():\n    pass\n\n@mn.service(port=8080)\ndef admin():\n    pass\n"
    ))
    with pytest.raises(errors.DeployError) as raised:
        build_manifest(folder, "p")
    assert str(raised.value) == (
        "services 'admin' and 'api' both use port 8080; give each service of a project its own port"
    )
