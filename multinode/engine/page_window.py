"""How `.list` finds one page of the newest invocation ids when visibility cannot sort.

The engine's visibility store has no ORDER BY, but invocation ids sort by creation time and
every invocation carries its creation time as a search attribute. A page is therefore read as
a creation-time window reaching back from its upper end: the window is listed whole (one
consistent call when it fits), sorted here, and cut to the page. A window holding more than a
page also holds the next page's first id; only one holding less asks for a count of what is
older than it (to widen or to end), since a count reads every older invocation and so grows with
the store, while a window listing reads about a page and a half. The window adapts: too few ids
and it widens, too many for one listing and it narrows by the window's count; the span that
worked (shrunk to the target if it held more) is the next page's first guess. A page is usually
one round trip, and never a count unless it is the last one or the window was too narrow.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

FIRST_SPAN_SECONDS = 60.0
WIDEN_STEP = 16.0
# The remembered span aims at this many pages' worth of ids: listing cost grows with every id
# listed, and a window holding less than a page costs another round.
TARGET_PAGES = 1.5
# Ids are rarely spread evenly; after this many narrowings the window is read in pages.
MAX_NARROWINGS = 3


@dataclass(frozen=True)
class VisibilityWindow:
    """Reads of one scope (a query and the page's upper end), by the window's lower end in
    epoch seconds (0 means everything)."""

    # Every id at or after `lower`, or None when one listing call cannot hold them.
    listing: Callable[[float], Awaitable[list[str] | None]]
    # Every id at or after `lower`, paged: exact, and slower.
    paged_listing: Callable[[float], Awaitable[list[str]]]
    count_since: Callable[[float], Awaitable[int]]
    count_before: Callable[[float], Awaitable[int]]


async def newest_page(
    reads: VisibilityWindow,
    anchor: float,
    span: float,
    before_id: str | None,
    limit: int,
    reach_back_to: float | None = None,
) -> tuple[list[str], str | None, float]:
    """The `limit` newest ids (below `before_id`), the next older id if there is one (None:
    this is the last page), and the span to try first next time.

    Windows reach back from `anchor` (now, or the page's upper end), at least `span` and, when
    given, at least to `reach_back_to` (the creation time of the id that followed the same page
    last time: that window still holds more than a page, unless invocations were removed)."""
    if reach_back_to is not None:
        span = max(span, anchor - reach_back_to)
    narrowings = 0
    while True:
        lower = max(0.0, anchor - span)
        listed = await reads.listing(lower)
        if listed is None:
            if narrowings < MAX_NARROWINGS:
                # Shrink to the target by the window's count.
                span *= TARGET_PAGES * limit / max(1, await reads.count_since(lower))
                narrowings += 1
                continue
            listed = await reads.paged_listing(lower)
        ids = sorted({i for i in listed if before_id is None or i < before_id}, reverse=True)
        # More than a page in the window: the next id is in it, nothing older needs counting
        # (a count reads every older invocation: its cost grows with the store).
        if len(ids) > limit or lower <= 0 or await reads.count_before(lower) == 0:
            break
        # Too few: widen by the density found (if any), gently after a narrowing.
        guess = TARGET_PAGES * limit / len(ids) if ids else WIDEN_STEP
        span *= min(2.0 if narrowings else WIDEN_STEP, max(1.5, guess))
    if len(ids) > TARGET_PAGES * limit:
        span *= TARGET_PAGES * limit / len(ids)
    # The loop ends with more than a page in reach, or with nothing older left.
    return ids[:limit], ids[limit] if len(ids) > limit else None, span
