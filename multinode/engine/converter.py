"""The data converter of every Multinode client (the SDK's and the workers'): Temporal's default
JSON encoding, byte for byte, with Multinode's own records decoded from a plan made once per type
(`multinode.contract.records.from_json`) instead of by reflection at every call."""

from __future__ import annotations

import dataclasses
from typing import Any

from temporalio.converter import (
    CompositePayloadConverter,
    DataConverter,
    DefaultPayloadConverter,
    JSONPlainPayloadConverter,
    JSONTypeConverter,
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


DATA_CONVERTER = dataclasses.replace(DataConverter.default, payload_converter_class=_PayloadConverter)
