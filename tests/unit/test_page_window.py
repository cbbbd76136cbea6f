"""`.list`'s page search against an in-memory visibility store that, like the engine's, cannot
sort and caps what one listing call returns."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest

from multinode.engine.page_window import FIRST_SPAN_SECONDS, MAX_NARROWINGS, VisibilityWindow, newest_page

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(20)]

NOW = 1_800_000_000.0
LIMIT = 50


def ident(created: float, serial: int) -> str:
    """Like invocation ids: they sort by creation time."""
    return f"inv-{int(created * 1000):015d}{serial:06d}"


def created_of(identifier: str) -> float:
    return int(identifier[4:19]) / 1000


@dataclass
class Visibility:
    ids: list[str]
    capacity: int = 1000  # ids one listing call returns at most
    rounds: int = 0  # listing calls, each sent with a count beside it
    paged: int = 0
    counted_since: int = 0
    counted_before: int = 0

    def reads(self, upper: float) -> VisibilityWindow:
        scope = [i for i in self.ids if created_of(i) < upper]
        random.Random(len(scope)).shuffle(scope)  # no order to rely on (seeded: reproducible)

        async def listing(lower: float) -> list[str] | None:
            self.rounds += 1
            found = [i for i in scope if created_of(i) >= lower]
            return found if len(found) <= self.capacity else None

        async def paged_listing(lower: float) -> list[str]:
            self.paged += 1
            return [i for i in scope if created_of(i) >= lower]

        async def count_since(lower: float) -> int:
            self.counted_since += 1
            return sum(1 for i in scope if created_of(i) >= lower)

        async def count_before(lower: float) -> int:
            self.counted_before += 1
            return sum(1 for i in self.ids if created_of(i) < lower)

        return VisibilityWindow(listing, paged_listing, count_since, count_before)


@dataclass
class Pager:
    """Reads every page the way Engine.list_page does, remembering the span between pages."""

    visibility: Visibility
    span: float = FIRST_SPAN_SECONDS
    next_of_first_page: float | None = None
    pages: list[list[str]] = field(default_factory=list)

    async def page(self, before_id: str | None) -> tuple[list[str], bool]:
        upper = created_of(before_id) + 0.001 if before_id else NOW + 3600
        anchor = min(upper, NOW)
        ids, next_id, self.span = await newest_page(
            self.visibility.reads(upper), anchor, self.span, before_id, LIMIT,
            self.next_of_first_page if before_id is None else None,
        )
        if before_id is None and next_id is not None:
            self.next_of_first_page = created_of(next_id)
        self.pages.append(ids)
        return ids, next_id is not None

    async def all_pages(self) -> list[str]:
        seen: list[str] = []
        before: str | None = None
        while True:
            ids, more = await self.page(before)
            seen.extend(ids)
            if not more:
                return seen
            assert ids, "a page that promises more must not be empty"
            before = ids[-1]


def burst_and_history() -> list[str]:
    """400 invocations in the last two seconds (several in one millisecond), and 40 spread
    over the past year."""
    rng = random.Random(7)
    ids = [ident(NOW - rng.uniform(0, 2), n) for n in range(400)]
    ids += [ident(NOW - 1.5, 1000 + n) for n in range(5)]  # same millisecond
    ids += [ident(NOW - rng.uniform(60, 365 * 86400), 2000 + n) for n in range(40)]
    return ids


async def test_pages_list_each_id_once_newest_first() -> None:
    ids = burst_and_history()
    pager = Pager(Visibility(ids))
    seen = await pager.all_pages()
    assert seen == sorted(ids, reverse=True)
    assert all(len(page) == LIMIT for page in pager.pages[:-1])


async def test_a_remembered_span_reads_a_page_in_one_round() -> None:
    visibility = Visibility(burst_and_history())
    pager = Pager(visibility)
    await pager.page(None)
    visibility.rounds = visibility.counted_before = 0
    ids, more = await pager.page(None)
    assert visibility.rounds == 1 and visibility.counted_before == 0
    assert more and ids == sorted(visibility.ids, reverse=True)[:LIMIT]


async def test_a_window_too_big_for_one_listing_narrows_by_its_count() -> None:
    rng = random.Random(3)
    ids = [ident(NOW - rng.uniform(0, 30), n) for n in range(5000)]
    visibility = Visibility(ids, capacity=300)
    pager = Pager(visibility)
    page, more = await pager.page(None)
    assert more and page == sorted(ids, reverse=True)[:LIMIT]
    assert visibility.paged == 0 and 1 <= visibility.counted_since <= MAX_NARROWINGS
    # The span it keeps holds no more than the target: the next page is one listing.
    visibility.rounds = 0
    await pager.page(page[-1])
    assert visibility.rounds == 1


async def test_uneven_density_falls_back_to_an_exact_paged_listing() -> None:
    # Everything in one millisecond: no window narrower than that fits one listing.
    ids = [ident(NOW - 5, n) for n in range(700)]
    visibility = Visibility(ids, capacity=100)
    seen = await Pager(visibility).all_pages()
    assert seen == sorted(ids, reverse=True)
    assert visibility.paged >= 1


async def test_only_old_invocations_widen_the_window() -> None:
    ids = [ident(NOW - 200 * 86400 - n, n) for n in range(60)]
    visibility = Visibility(ids)
    page, more = await Pager(visibility).page(None)
    assert more and page == sorted(ids, reverse=True)[:LIMIT]
    assert visibility.rounds <= 6


async def test_nothing_to_list() -> None:
    assert await Pager(Visibility([])).page(None) == ([], False)


async def test_only_a_short_window_counts_what_is_older() -> None:
    """Counting grows with the store: paging a dense history counts only on the last page (and
    when a window came out too short), never once per page."""
    rng = random.Random(5)
    ids = [ident(NOW - rng.uniform(0, 600), n) for n in range(2000)]
    visibility = Visibility(ids)
    pager = Pager(visibility)
    seen = await pager.all_pages()
    assert seen == sorted(ids, reverse=True)
    assert len(pager.pages) == 40
    assert visibility.counted_before < len(pager.pages) // 4


async def test_the_last_page_says_nothing_follows_after_a_count() -> None:
    ids = [ident(NOW - 10 - n, n) for n in range(LIMIT + 1)]
    visibility = Visibility(ids)
    pager = Pager(visibility)
    first, more = await pager.page(None)
    assert more and first == sorted(ids, reverse=True)[:LIMIT]
    visibility.counted_before = 0
    last, more = await pager.page(first[-1])
    assert last == [min(ids)] and not more
    assert visibility.counted_before >= 1
