"""Multinode's records decode exactly as Temporal's default converter decodes them: the planned
decoder is a speed-up, never a second format. The engine's encoding leaves out fields that hold
nothing, which both decoders read back as the same record."""

from __future__ import annotations

import dataclasses
import json

import pytest

from multinode.contract import records as _wire
from multinode.contract.options import FunctionOptions
from multinode.contract.records import (
    AttemptOutcome,
    AttemptProgress,
    AttemptRecord,
    AttemptRequest,
    ErrorInfo,
    FunctionSpec,
    InvocationInput,
    InvocationRecord,
    Lease,
    PackageRef,
    QuotaRequest,
    QuotaState,
    Transition,
    VersionManifest,
)

pytestmark = pytest.mark.timeout(20)

temporal_converter = pytest.importorskip("temporalio.converter")

OPTIONS = FunctionOptions(cpu=0.5, memory_mib=512, max_concurrency=3, timeout_seconds=60.0, max_retries=2)
PACKAGE = PackageRef(uri="file:///x", sha256="ab" * 32, size_bytes=10)
INPUT = InvocationInput(
    invocation_id="inv-1", project_name="p", function_name="f", version_id="ver-1", options=OPTIONS,
    package=PACKAGE, requirements_sha256=None, args=["1"], kwargs={"k": "2"}, created_at=1.5,
)
SAMPLES: list[object] = [
    INPUT,
    AttemptRequest(INPUT, attempt_number=2, lease=True),
    AttemptOutcome("failed", "v", ErrorInfo("E", "m", "tb"), 1.0, 2.0, exit_code=1, children=["inv-2"]),
    AttemptOutcome("succeeded", None, None, None, 2.0),
    AttemptProgress(1, "running", 3.0, "x", True),
    InvocationRecord(
        invocation_id="inv-1", project_name="p", function_name="f", version_id="ver-1",
        parent_invocation_id=None, status="FAILED", created_at=1.0, error=ErrorInfo("E", "m"),
        attempts=[AttemptRecord(1, "failed", 1.0, 2.0, ErrorInfo("E", "m", None), 1)],
        transitions=[Transition("PENDING", 1.0), Transition("FAILED", 2.0)], ended_at=2.0,
    ),
    VersionManifest("p", "ver-1", 1.0, PACKAGE, "cd" * 32, [FunctionSpec("f", OPTIONS, True)]),
    QuotaState(holders={"inv-1": 2}, waiters=[QuotaRequest("p", "f", "inv-3", 4, 1)],
               leases={"w": Lease(2, 5.0)}),
]


def default_decode(cls: type, data: object) -> object:
    payload = temporal_converter.DataConverter.default.payload_converter.to_payloads([data])[0]
    return temporal_converter.DataConverter.default.payload_converter.from_payloads([payload], [cls])[0]


@pytest.mark.parametrize("record", SAMPLES, ids=lambda r: type(r).__name__)
def test_round_trip_matches_the_default_converter(record: object) -> None:
    as_json = json.loads(json.dumps(dataclasses.asdict(record)))  # type: ignore[call-overload]
    decoded = _wire.from_json(type(record), as_json)
    assert decoded == record == default_decode(type(record), record)
    assert type(decoded) is type(record)


def test_missing_fields_take_defaults_and_unknown_ones_are_ignored() -> None:
    older = {"attempt_number": 1, "phase": "preparing", "started_at": None, "from_the_future": 1}
    assert _wire.from_json(AttemptProgress, older) == AttemptProgress(1, "preparing", None)
    assert _wire.from_json(AttemptProgress, older) == default_decode(AttemptProgress, older)


def test_integral_times_come_back_as_floats() -> None:
    decoded = _wire.from_json(Transition, {"status": "PENDING", "at": 3})
    assert decoded.at == 3.0 and isinstance(decoded.at, float)


def test_only_multinode_records_are_planned() -> None:
    assert _wire.is_record(InvocationRecord) and _wire.is_record(FunctionOptions)
    assert not _wire.is_record(dict) and not _wire.is_record(list[InvocationRecord])


def test_the_engine_converter_decodes_records_with_the_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    from multinode.engine import converter as _converter
    from multinode.engine.converter import DATA_CONVERTER

    planned: list[type] = []

    def spy(cls: type, value: object) -> object:
        planned.append(cls)
        return _wire.from_json(cls, value)

    monkeypatch.setattr(_converter, "from_json", spy)
    record = SAMPLES[5]
    converter = DATA_CONVERTER.payload_converter
    payload = converter.to_payloads([record])[0]
    assert converter.from_payloads([payload], [InvocationRecord])[0] == record
    manifests = converter.from_payloads(converter.to_payloads([[SAMPLES[6]]]), [list[VersionManifest]])[0]
    assert manifests == [SAMPLES[6]]
    # Top-level records go through the plan (nested ones are part of their parent's plan).
    assert planned == [InvocationRecord, VersionManifest]


@pytest.mark.parametrize("record", SAMPLES, ids=lambda r: type(r).__name__)
def test_the_engine_encoding_leaves_out_what_holds_nothing_and_reads_back_the_same(record: object) -> None:
    from multinode.engine.converter import DATA_CONVERTER

    converter = DATA_CONVERTER.payload_converter
    payload = converter.to_payloads([record])[0]
    default = temporal_converter.DataConverter.default.payload_converter
    assert converter.from_payloads([payload], [type(record)])[0] == record
    assert default.from_payloads([payload], [type(record)])[0] == record
    assert len(payload.data) <= len(default.to_payloads([record])[0].data)


def test_only_empty_defaults_are_left_out() -> None:
    from multinode.engine.converter import DATA_CONVERTER

    def encoded(value: object) -> dict[str, object]:
        found: dict[str, object] = json.loads(DATA_CONVERTER.payload_converter.to_payloads([value])[0].data)
        return found

    outcome = encoded(AttemptOutcome("succeeded", None, None, None, 2.0))
    # Required fields stay even when None; defaults of None, False and [] go.
    assert outcome == {"outcome": "succeeded", "value": None, "error": None, "started_at": None, "ended_at": 2.0}
    record = encoded(SAMPLES[5])
    # A default that is a value (0 failed attempts) is written: a later default cannot change it.
    assert record["num_failed_attempts"] == 0 and "result" not in record and "has_result" not in record
    assert encoded(AttemptRecord(1, "failed", 1.0, 2.0, exit_code=0))["exit_code"] == 0
    # Plain values are Temporal's JSON as before.
    assert encoded({"a": None}) == {"a": None}
