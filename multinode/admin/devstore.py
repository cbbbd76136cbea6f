"""The embedded dev server's SQLite file: the visibility indexes Multinode never reads, its page
size, and compaction.

The dev server's visibility table keeps one index per column (57 of them, one per system field
and per search-attribute slot, used or not), and each finished workflow pays an entry in every
one: measured, about 290 bytes per index per workflow, most of what a finished invocation costs.
Multinode filters on a few columns only; the rest of the indexes are dropped (queries on those
columns, from the Web UI say, still work, by scanning). Dropping is idempotent and done while the
server runs, right after it started: SQLite re-prepares the server's statements on the schema
change. A store whose custom search attributes cannot be read keeps every slot's index.
"""

from __future__ import annotations

import re
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from multinode.contract import names

# System columns Multinode (or the Web UI's default views) filters on.
KEPT_INDEXES = frozenset({"default_idx", "by_workflow_id", "by_workflow_type", "by_status", "by_task_queue"})
# Multinode's own search attributes that some query filters on (listing, inspection, children).
QUERIED_ATTRIBUTES = frozenset({names.SA_PROJECT, names.SA_FUNCTION, names.SA_VERSION, names.SA_PARENT, names.SA_CREATED})
# A search-attribute slot's index is named after its column: Keyword01 -> by_keyword_01.
_SLOT = re.compile(r"(Keyword|Datetime|Bool|Double|Int|Text)(\d\d)")
BUSY_TIMEOUT_SECONDS = 30.0
# What SQLite accepts.
PAGE_SIZES = tuple(2**n for n in range(9, 17))


@dataclass(frozen=True)
class Compaction:
    bytes_before: int
    bytes_after: int


def slot_index(column: str) -> str:
    found = _SLOT.fullmatch(column)
    if found is None:
        raise ValueError(f"not a search-attribute column: {column!r}")
    return f"by_{found.group(1).lower()}_{found.group(2)}"


def attribute_columns(namespace_record: bytes) -> dict[str, str]:
    """Search attribute name -> its column, from a namespace's stored record (its alias map:
    entries of a column name and an attribute name, each a length-prefixed string)."""
    found: dict[str, str] = {}
    for match in re.finditer(rb"\n([\x07-\x0b])((?:Keyword|Datetime|Bool|Double|Int|Text)\d\d)\x12", namespace_record):
        if match.group(1)[0] != len(match.group(2)):
            continue
        start = match.end()
        length = namespace_record[start] if start < len(namespace_record) else 0
        alias = namespace_record[start + 1:start + 1 + length]
        if length and len(alias) == length:
            found[alias.decode("ascii", "replace")] = match.group(2).decode()
    return found


def unused_indexes(db: sqlite3.Connection, namespace: str) -> list[str]:
    """The visibility indexes on columns no Multinode query filters on."""
    indexes = [row[0] for row in db.execute(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'executions_visibility'"
        " AND name LIKE 'by\\_%' ESCAPE '\\'"
    )]
    row = db.execute("SELECT data FROM namespaces WHERE name = ?", (namespace,)).fetchone()
    columns = attribute_columns(bytes(row[0])) if row else {}
    if not set(columns) >= QUERIED_ATTRIBUTES:
        # Unreadable: keep every slot that could hold one of Multinode's attributes.
        kept_slots = {i for i in indexes if i.startswith(("by_keyword_", "by_datetime_"))}
    else:
        kept_slots = {slot_index(columns[a]) for a in QUERIED_ATTRIBUTES}
    return [i for i in indexes if i not in KEPT_INDEXES and i not in kept_slots]


def trim_visibility_indexes(database: Path, namespace: str) -> list[str]:
    """Drop the visibility indexes no Multinode query uses; the ones dropped (none the second
    time)."""
    with closing(sqlite3.connect(database, timeout=BUSY_TIMEOUT_SECONDS)) as db:
        dropped = unused_indexes(db, namespace)
        for index in dropped:
            db.execute(f'DROP INDEX IF EXISTS "{index}"')
        db.commit()
    return dropped


def compact(database: Path, page_size_bytes: int = 0) -> Compaction:
    """Rewrite the file without its free pages and with full index pages (the server must not be
    running): the room that removed invocations and page splits left behind. With
    `page_size_bytes`, also in pages of that size (SQLite changes it only outside WAL mode, so
    the file leaves it for the rewrite)."""
    if page_size_bytes and page_size_bytes not in PAGE_SIZES:
        raise ValueError(f"page_size_bytes must be one of {PAGE_SIZES}, got {page_size_bytes}")
    before = _size(database)
    with closing(sqlite3.connect(database, timeout=BUSY_TIMEOUT_SECONDS)) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        current = db.execute("PRAGMA page_size").fetchone()[0]
        if page_size_bytes and page_size_bytes != current:
            mode = db.execute("PRAGMA journal_mode").fetchone()[0]
            db.execute("PRAGMA journal_mode=DELETE")
            db.execute(f"PRAGMA page_size={page_size_bytes}")
            db.execute("VACUUM")
            db.execute(f"PRAGMA journal_mode={mode}")
        else:
            db.execute("VACUUM")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return Compaction(before, _size(database))


def page_size(database: Path) -> int:
    with closing(sqlite3.connect(database, timeout=BUSY_TIMEOUT_SECONDS)) as db:
        size: int = db.execute("PRAGMA page_size").fetchone()[0]
        return size


def _size(database: Path) -> int:
    return sum(p.stat().st_size for p in database.parent.glob(database.name + "*") if p.is_file())
