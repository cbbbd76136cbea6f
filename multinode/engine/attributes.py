"""The invocation's search attributes as temporalio's typed keys. Which value goes in which
attribute is the contract's (`names.invocation_search_attributes`); this only types them."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from temporalio.common import SearchAttributeKey, SearchAttributePair

from multinode.contract import names

KEY_PROJECT = SearchAttributeKey.for_keyword(names.SA_PROJECT)
KEY_FUNCTION = SearchAttributeKey.for_keyword(names.SA_FUNCTION)
KEY_VERSION = SearchAttributeKey.for_keyword(names.SA_VERSION)
KEY_STATUS = SearchAttributeKey.for_keyword(names.SA_STATUS)
KEY_PARENT = SearchAttributeKey.for_keyword(names.SA_PARENT)
KEY_LOCK = SearchAttributeKey.for_keyword(names.SA_LOCK)
KEY_CREATED = SearchAttributeKey.for_datetime(names.SA_CREATED)


def typed_pairs(values: Mapping[str, str | datetime]) -> list[SearchAttributePair[Any]]:
    """Datetime values as Datetime attributes, the rest as Keyword ones, in the given order."""
    return [
        SearchAttributePair(SearchAttributeKey.for_datetime(name), value)
        if isinstance(value, datetime)
        else SearchAttributePair(SearchAttributeKey.for_keyword(name), value)
        for name, value in values.items()
    ]
