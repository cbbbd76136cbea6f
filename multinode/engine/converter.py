"""The data converter of every Multinode client (the SDK's and the workers'): Temporal's default
JSON encoding, with Multinode's own records decoded from a plan made once per type
(`multinode.contract.records.from_json`) instead of by reflection at every call, and encoded
without the fields that hold nothing (None, False or empty where that is their default): every
payload is kept in the engine's store for as long as the invocation (several copies each), and
a reader takes the default for a missing field (so payloads written before read the same).
Failures are Temporal's default too, except that one carrying the function's own traceback shows
that one."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import temporalio.api.failure.v1
from temporalio.converter import (
    AdvancedJSONEncoder,
    CompositePayloadConverter,
    DataConverter,
    DefaultFailureConverter,
    DefaultPayloadConverter,
    JSONPlainPayloadConverter,
    JSONTypeConverter,
    PayloadConverter,
)

from multinode.contract.records import from_json, is_record


class _RecordDecoder(JSONTypeConverter):
    def to_typed_value(self, hint: type, value: Any) -> Any:
        if is_record(hint):
            return from_json(hint, value)
        return JSONTypeConverter.Unhandled


# Defaults that mean "nothing": a field holding one of them is left out. Other defaults (a number,
# a non-empty value) are always written, so a later change of default cannot change old payloads.
_NOTHING: tuple[object, ...] = (None, False, "", (), [], {})


@functools.cache
def _omissible(record: Any) -> tuple[tuple[str, object], ...]:
    """(name, empty default) of each field the encoding may leave out."""
    found = []
    for f in dataclasses.fields(record):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if default is not dataclasses.MISSING and any(
            default == nothing and type(default) is type(nothing) for nothing in _NOTHING
        ):
            found.append((f.name, default))
    return tuple(found)


class _RecordEncoder(AdvancedJSONEncoder):
    def default(self, o: Any) -> Any:
        record: Any = type(o)
        if is_record(record):
            # Shallow: nested records come back here.
            fields = {f.name: getattr(o, f.name) for f in dataclasses.fields(record)}
            for name, empty in _omissible(record):
                value = fields[name]
                if value == empty and type(value) is type(empty):
                    del fields[name]
            return fields
        return super().default(o)


class _PayloadConverter(CompositePayloadConverter):
    """Temporal's default payload converters, with the records encoded and decoded as above."""

    def __init__(self) -> None:
        super().__init__(*(
            JSONPlainPayloadConverter(encoder=_RecordEncoder, custom_type_converters=[_RecordDecoder()])
            if isinstance(converter, JSONPlainPayloadConverter) else converter
            for converter in DefaultPayloadConverter.default_encoding_payload_converters
        ))


class _FailureConverter(DefaultFailureConverter):
    """An error with a `remote_traceback` (how an invocation's workflow closes Failed) shows that
    traceback, the function's, as the failure's stack trace: the workflow's own frames would
    only say where the worker raised it."""

    def to_failure(
        self,
        exception: BaseException,
        payload_converter: PayloadConverter,
        failure: temporalio.api.failure.v1.Failure,
    ) -> None:
        super().to_failure(exception, payload_converter, failure)
        remote = getattr(exception, "remote_traceback", None)
        if isinstance(remote, str):
            failure.stack_trace = remote


DATA_CONVERTER = dataclasses.replace(
    DataConverter.default, payload_converter_class=_PayloadConverter, failure_converter_class=_FailureConverter
)
