"""The SDK's own logic (`Function` over `Client`), through an in-memory engine: ownership of ids,
the result or error per final status, paging, and map's order, window and cancellation."""

from __future__ import annotations

import pytest

from multinode import InvocationStatus
from multinode._client import Client
from multinode.contract import limits
from multinode.contract.records import ErrorInfo
from multinode.errors import (
    InvocationCancelledError,
    InvocationDoesNotExistError,
    InvocationFailedError,
    InvocationTimedOutError,
)
from tests.unit.fake_engine import Ending, FakeEngine, doubled_unless_one_fails, function, item_of, manifest

pytestmark = [pytest.mark.timeout(30), pytest.mark.usefixtures("outside_a_function")]


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine(manifest("p", "f", "g", max_concurrency=3), manifest("q", "f"))


# ----- ownership ------------------------------------------------------------------------------


def test_an_id_is_read_only_through_its_own_function(client: Client[FakeEngine], engine: FakeEngine) -> None:
    f = function(client)
    invocation_id = f.start(7)
    own = f.get(invocation_id)
    assert (own.invocation_id, own.project_name, own.function_name) == (invocation_id, "p", "f")
    assert own.version_id == engine.manifests[0].version_id and own.parent_invocation_id is None
    assert own.status == InvocationStatus.PENDING and not own.terminated

    strangers = (function(client, "g"), function(client, "f", project="q"))
    for stranger in strangers:
        with pytest.raises(InvocationDoesNotExistError, match="is not an invocation of"):
            stranger.get(invocation_id)
        with pytest.raises(InvocationDoesNotExistError):
            stranger.cancel(invocation_id)
        with pytest.raises(InvocationDoesNotExistError):
            stranger.remove(invocation_id)
    # Nothing was done to it by the strangers.
    assert engine.cancels == [] and invocation_id in engine.records
    # Waiting is one long poll on the id; the owner is checked on the final record.
    for stranger in strangers:
        with pytest.raises(InvocationDoesNotExistError):
            stranger.await_result(invocation_id)
    assert f.await_result(invocation_id) == 7


# ----- results and errors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ending", "raised"),
    [
        (Ending(InvocationStatus.FAILED, error=ErrorInfo("KeyError", "'k'", "Traceback (most recent call last)")),
         InvocationFailedError),
        (Ending(InvocationStatus.CANCELLED), InvocationCancelledError),
        (Ending(InvocationStatus.TIMED_OUT), InvocationTimedOutError),
    ],
    ids=lambda v: getattr(getattr(v, "status", None), "value", None) or getattr(v, "__name__", ""),
)
def test_await_result_raises_the_error_of_the_final_status(
    client: Client[FakeEngine], engine: FakeEngine, ending: Ending, raised: type[Exception]
) -> None:
    engine.outcome = lambda _: ending
    f = function(client)
    invocation_id = f.start(1)
    with pytest.raises(raised) as caught:
        f.await_result(invocation_id)
    assert type(caught.value) is raised
    assert caught.value.invocation_id == invocation_id  # type: ignore[attr-defined]
    if isinstance(caught.value, InvocationFailedError):
        assert (caught.value.error_type, caught.value.error_message) == ("KeyError", "'k'")
        assert caught.value.remote_traceback == "Traceback (most recent call last)"


def test_await_result_returns_the_value_of_a_success(client: Client[FakeEngine]) -> None:
    f = function(client)
    assert f.await_result(f.start({"a": [1, 2]})) == {"a": [1, 2]}
    assert f.call_remote(("t", 3)) == ("t", 3)


# ----- listing --------------------------------------------------------------------------------


def test_list_pages_newest_first_until_an_offset_of_none(client: Client[FakeEngine]) -> None:
    f, g = function(client), function(client, "g")
    started = [f.start(i) for i in range(2 * limits.LIST_PAGE_SIZE + 7)]
    g.start(0)
    pages, offset = [], None
    while True:
        page = f.list(offset)
        pages.append(page.invocation_ids)
        if page.offset is None:
            break
        assert page.offset == page.invocation_ids[-1]
        offset = page.offset
    assert [len(p) for p in pages] == [limits.LIST_PAGE_SIZE, limits.LIST_PAGE_SIZE, 7]
    assert [i for p in pages for i in p] == sorted(started, reverse=True)
    assert f.list_ids() == sorted(started, reverse=True)


def test_a_last_page_that_is_exactly_full_has_no_offset(client: Client[FakeEngine]) -> None:
    f = function(client)
    started = [f.start(i) for i in range(limits.LIST_PAGE_SIZE)]
    page = f.list()
    assert page.invocation_ids == sorted(started, reverse=True) and page.offset is None


# ----- map ------------------------------------------------------------------------------------


def test_map_yields_in_input_order_with_a_window_of_max_concurrency(
    client: Client[FakeEngine], engine: FakeEngine
) -> None:
    engine.outcome = doubled_unless_one_fails
    ahead: list[int] = []
    awaited = engine.await_invocation

    async def counting(invocation_id: str):  # type: ignore[no-untyped-def]
        ahead.append(len(engine.started) - len(engine.awaited))
        return await awaited(invocation_id)

    engine.await_invocation = counting  # type: ignore[method-assign]
    items = [5, 0, 9, 2, 7, 3, 8, 4]
    assert list(function(client).map(items)) == [2 * x for x in items]
    assert [item_of(engine, i) for i in engine.awaited] == items
    assert max(ahead) <= 3  # the manifest's max_concurrency
    assert engine.cancels == []


def test_map_cancels_what_it_started_when_an_invocation_fails(client: Client[FakeEngine], engine: FakeEngine) -> None:
    engine.outcome = doubled_unless_one_fails
    results = function(client).map(range(10))
    assert next(results) == 0
    with pytest.raises(InvocationFailedError, match="one is bad"):
        next(results)
    # Window 3: items 0-2 started, 3 after 0's result; 1 failed while 2 and 3 were open.
    assert [item_of(engine, i) for i in engine.started] == [0, 1, 2, 3]
    assert sorted((item_of(engine, i), was_open) for i, was_open in engine.cancels) == [(2, True), (3, True)]


def test_map_cancels_what_it_started_when_the_caller_walks_away(
    client: Client[FakeEngine], engine: FakeEngine
) -> None:
    results = function(client).map(range(10))
    assert next(results) == 0
    results.close()  # type: ignore[attr-defined]  # what `break` and garbage collection do
    assert sorted(str(item_of(engine, i)) for i, _ in engine.cancels) == ["1", "2"]


def test_map_with_return_exceptions_yields_errors_in_place(client: Client[FakeEngine], engine: FakeEngine) -> None:
    engine.outcome = doubled_unless_one_fails
    results = list(function(client).starmap([(x,) for x in range(5)], return_exceptions=True))
    failed = results[1]
    assert isinstance(failed, InvocationFailedError) and item_of(engine, failed.invocation_id or "") == 1
    assert results[:1] + results[2:] == [0, 4, 6, 8]
    assert engine.cancels == []


# ----- cancel ---------------------------------------------------------------------------------


def test_cancel_says_whether_it_asked(client: Client[FakeEngine], engine: FakeEngine) -> None:
    f = function(client)
    running = f.start(1)
    assert f.cancel(running) is True
    assert engine.cancels == [(running, True)]
    assert f.get(running).status == InvocationStatus.CANCELLED
    # Ended (here by the cancel): False, and the engine is not asked again.
    assert f.cancel(running) is False
    done = f.start(2)
    engine.finish(done, Ending(InvocationStatus.SUCCEEDED, 2))
    assert f.cancel(done) is False
    assert engine.cancels == [(running, True)]


def test_cancel_is_false_when_the_invocation_ends_before_the_request(
    client: Client[FakeEngine], engine: FakeEngine
) -> None:
    f = function(client)
    invocation_id = f.start(1)
    read = engine.get_invocation

    async def read_then_end(invocation_id: str):  # type: ignore[no-untyped-def]
        seen = await read(invocation_id)
        engine.finish(invocation_id, Ending(InvocationStatus.SUCCEEDED, 1))
        return seen

    engine.get_invocation = read_then_end  # type: ignore[method-assign]
    assert f.cancel(invocation_id) is False
    assert engine.cancels == [(invocation_id, False)]
