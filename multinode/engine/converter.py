"""The data converter of every Multinode client (the SDK's and the workers'): Temporal's default
JSON encoding, byte for byte, with Multinode's own records decoded from a plan made once per type
(`multinode.contract.records.from_json`) instead of by reflection at every call. Failures are
Temporal's default too, except that one carrying the function's own traceback shows that one."""

from __future__ import annotations

import dataclasses
from typing import Any

import temporalio.api.failure.v1
from temporalio.converter import (
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


class _PayloadConverter(CompositePayloadConverter):
    """Temporal's default payload converters, with the records decoded as above."""

    def __init__(self) -> None:
        super().__init__(*(
            JSONPlainPayloadConverter(custom_type_converters=[_RecordDecoder()])
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
