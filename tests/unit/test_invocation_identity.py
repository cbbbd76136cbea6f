"""The invocation's identity is defined once (`contract.invocation.InvocationIdentity`), and
moving it there changed nothing that stored histories or the engine's indexes hold."""

from __future__ import annotations

import ast
import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import pytest

import multinode as mn
from multinode.contract import names
from multinode.contract.invocation import InvocationIdentity
from multinode.contract.options import FunctionOptions
from multinode.contract.records import InvocationInput, InvocationRecord, PackageRef, initial_record

pytestmark = pytest.mark.timeout(20)

REPO = Path(__file__).resolve().parents[2]
IDENTITY = ("invocation_id", "project_name", "function_name", "version_id", "parent_invocation_id")
INPUT = InvocationInput(
    invocation_id="inv-01m9934czby9nse3xt2g3feww9", project_name="p", function_name="f", version_id="ver-1",
    options=FunctionOptions(), package=PackageRef("u", "s", 1), requirements_sha256=None, args=["1"],
    kwargs={"k": "2"}, created_at=1.5, parent_invocation_id="inv-0000000000zzzzzzzzzzzzzzzz",
)


def test_identity_fields_are_the_ones_every_view_of_an_invocation_carries() -> None:
    assert tuple(f.name for f in dataclasses.fields(InvocationIdentity)) == IDENTITY
    for view in (InvocationInput, mn.Invocation):
        assert issubclass(view, InvocationIdentity)
    # The mutable record repeats them: same names, same types.
    hints = {f.name: f.type for f in dataclasses.fields(InvocationRecord)}
    assert {name: hints[name] for name in IDENTITY} == {f.name: f.type for f in dataclasses.fields(InvocationIdentity)}


STORED = (
    '{"args":["1"],"created_at":1.5,"function_name":"f","invocation_id":"inv-01m9934czby9nse3xt2g3feww9",'
    '"kwargs":{"k":"2"},"options":{"cpu":0.1,"max_concurrency":10,"max_retries":0,"memory_mib":256,'
    '"timeout_seconds":3600.0},"package":{"sha256":"s","size_bytes":1,"uri":"u"},'
    '"parent_invocation_id":"inv-0000000000zzzzzzzzzzzzzzzz","project_name":"p",'
    '"requirements_sha256":null,"version_id":"ver-1"}'
)


def test_the_input_encodes_to_the_bytes_stored_histories_hold() -> None:
    # Since the .env left the package, an input names it (`secrets_uri`); older inputs have none.
    converter = pytest.importorskip("temporalio.converter").DataConverter.default.payload_converter
    assert converter.to_payloads([INPUT])[0].data.decode() == STORED.replace(
        '"requirements_sha256":null,', '"requirements_sha256":null,"secrets_uri":null,')
    [stored] = converter.to_payloads([INPUT])
    stored.data = STORED.encode()
    assert converter.from_payloads([stored], [InvocationInput]) == [INPUT]


def test_the_initial_record_is_pending_with_the_inputs_identity() -> None:
    record = initial_record(INPUT)
    assert [getattr(record, n) for n in IDENTITY] == [getattr(INPUT, n) for n in IDENTITY]
    assert (record.status, record.created_at, record.attempts, record.transitions) == ("PENDING", 1.5, [], [])


def test_search_attributes_in_their_order_with_the_creation_time_of_the_id() -> None:
    values = names.invocation_search_attributes(INPUT, "PENDING", lock="key")
    assert list(values.items()) == [
        (names.SA_PROJECT, "p"),
        (names.SA_FUNCTION, "f"),
        (names.SA_VERSION, "ver-1"),
        (names.SA_STATUS, "PENDING"),
        (names.SA_CREATED, datetime(2026, 12, 7, 20, 29, 11, 531000, tzinfo=UTC)),
        (names.SA_PARENT, "inv-0000000000zzzzzzzzzzzzzzzz"),
        (names.SA_LOCK, "key"),
    ]
    orphan = dataclasses.replace(INPUT, parent_invocation_id=None)
    assert set(names.invocation_search_attributes(orphan, "FAILED")) == {
        names.SA_PROJECT, names.SA_FUNCTION, names.SA_VERSION, names.SA_STATUS, names.SA_CREATED
    }


def test_the_engine_types_datetimes_as_datetime_attributes() -> None:
    pytest.importorskip("temporalio")
    from temporalio.common import SearchAttributeIndexedValueType as Kind

    from multinode.engine.attributes import typed_pairs

    pairs = typed_pairs(names.invocation_search_attributes(INPUT, "PENDING"))
    kinds = {p.key.name: p.key.indexed_value_type for p in pairs}
    assert kinds.pop(names.SA_CREATED) == Kind.DATETIME
    assert set(kinds.values()) == {Kind.KEYWORD}


def test_workflows_import_nothing_from_the_engine_adapter() -> None:
    offenders = []
    for path in sorted((REPO / "temporal_workers" / "workflows").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            modules = [node.module or ""] if isinstance(node, ast.ImportFrom) else (
                [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            offenders += [f"{path.name}: {m}" for m in modules if m.startswith("multinode.engine")]
    assert offenders == []
