"""The dev store's trimming keeps exactly the visibility indexes Multinode's queries use, and
compaction gives the room back (on a small SQLite file shaped like the dev server's)."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from multinode.admin.devstore import (
    KEPT_INDEXES,
    QUERIED_ATTRIBUTES,
    attribute_columns,
    compact,
    page_size,
    slot_index,
    trim_visibility_indexes,
)
from multinode.contract import names

pytestmark = pytest.mark.timeout(30)

SLOTS = {
    names.SA_STATUS: "Keyword01", names.SA_PARENT: "Keyword02", names.SA_PROJECT: "Keyword03",
    names.SA_FUNCTION: "Keyword04", names.SA_LOCK: "Keyword06", names.SA_VERSION: "Keyword07",
    names.SA_CREATED: "Datetime01",
}
COLUMNS = [f"Keyword{n:02d}" for n in range(1, 11)] + [f"Datetime{n:02d}" for n in range(1, 4)] + ["Bool01", "Int01"]
SYSTEM_INDEXES = ["by_workflow_id", "by_workflow_type", "by_status", "by_task_queue", "by_history_length",
                  "by_parent_workflow_id", "by_temporal_namespace_division"]


def alias_map(slots: dict[str, str]) -> bytes:
    """A namespace record as the server stores it: map entries (column, alias) among other fields."""
    entries = b"".join(
        b"\n" + bytes([len(entry)]) + entry
        for entry in (b"\n" + bytes([len(c)]) + c.encode() + b"\x12" + bytes([len(a)]) + a.encode()
                      for a, c in slots.items())
    )
    return b"\x0a\x07default\x1a\x02\x08\x01" + b"\x42" + bytes([len(entries)]) + entries


def make_store(path: Path, slots: dict[str, str]) -> None:
    with closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE namespaces (name TEXT, data BLOB)")
        db.execute("INSERT INTO namespaces VALUES ('default', ?)", (alias_map(slots),))
        columns = ", ".join(f"{c} TEXT" for c in COLUMNS)
        db.execute(f"CREATE TABLE executions_visibility (namespace_id TEXT, workflow_id TEXT, workflow_type_name TEXT,"
                   f" status INT, task_queue TEXT, history_length INT, parent_workflow_id TEXT,"
                   f" TemporalNamespaceDivision TEXT, start_time TEXT, close_time TEXT, run_id TEXT, {columns})")
        db.execute("CREATE INDEX default_idx ON executions_visibility (namespace_id, close_time DESC, start_time DESC, run_id)")
        for index, column in [("by_workflow_id", "workflow_id"), ("by_workflow_type", "workflow_type_name"),
                              ("by_status", "status"), ("by_task_queue", "task_queue"),
                              ("by_history_length", "history_length"), ("by_parent_workflow_id", "parent_workflow_id"),
                              ("by_temporal_namespace_division", "TemporalNamespaceDivision"),
                              *[(slot_index(c), c) for c in COLUMNS]]:
            db.execute(f"CREATE INDEX {index} ON executions_visibility (namespace_id, {column}, close_time DESC, run_id)")
        db.executemany(
            "INSERT INTO executions_visibility (namespace_id, workflow_id, run_id, Keyword03, start_time, close_time)"
            " VALUES ('ns', ?, ?, 'project', '2026-12-01 00:00:00+00:00', '2026-12-01 00:00:01+00:00')",
            [(f"inv-{i:08d}", f"run-{i:08d}" * 3) for i in range(3000)],
        )
        db.commit()


def indexes(path: Path) -> set[str]:
    with closing(sqlite3.connect(path)) as db:
        return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}


def test_the_alias_map_is_read_from_the_namespace_record() -> None:
    assert attribute_columns(alias_map(SLOTS)) == SLOTS
    assert attribute_columns(b"\x00garbage\n\x09Keyword01\x12") == {}


def test_only_the_queried_columns_keep_their_indexes(tmp_path: Path) -> None:
    store = tmp_path / "temporal.db"
    make_store(store, SLOTS)
    dropped = trim_visibility_indexes(store, "default")
    kept = indexes(store)
    assert kept == KEPT_INDEXES | {slot_index(SLOTS[a]) for a in QUERIED_ATTRIBUTES}
    # Status and lock are set on every invocation but no query filters on them.
    assert {"by_keyword_01", "by_keyword_06", "by_history_length", "by_bool_01"} <= set(dropped)
    assert trim_visibility_indexes(store, "default") == []  # idempotent


def test_an_unreadable_alias_map_keeps_every_attribute_slot(tmp_path: Path) -> None:
    store = tmp_path / "temporal.db"
    make_store(store, {names.SA_PROJECT: "Keyword03"})  # the others missing: cannot tell
    trim_visibility_indexes(store, "default")
    kept = indexes(store)
    assert {slot_index(c) for c in COLUMNS if c.startswith(("Keyword", "Datetime"))} <= kept
    assert "by_bool_01" not in kept and "by_history_length" not in kept


def test_compaction_gives_back_the_dropped_indexes_room(tmp_path: Path) -> None:
    store = tmp_path / "temporal.db"
    make_store(store, SLOTS)
    trim_visibility_indexes(store, "default")
    result = compact(store)
    assert result.bytes_after < result.bytes_before / 2
    with closing(sqlite3.connect(store)) as db:
        assert db.execute("SELECT count(*) FROM executions_visibility").fetchone() == (3000,)


def test_compaction_can_change_the_page_size_and_keeps_the_journal_mode(tmp_path: Path) -> None:
    store = tmp_path / "temporal.db"
    make_store(store, SLOTS)
    with closing(sqlite3.connect(store)) as db:
        db.execute("PRAGMA journal_mode=WAL")
    assert page_size(store) == 4096
    compact(store, 16_384)
    assert page_size(store) == 16_384
    with closing(sqlite3.connect(store)) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert db.execute("SELECT count(*) FROM executions_visibility").fetchone() == (3000,)
    with pytest.raises(ValueError, match="page_size_bytes must be one of"):
        compact(store, 3000)
