"""The SQLite store: every awaited call ends, and a marked store uses only its own kind of file."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from mmsjson._store import SQLiteStore, StoreKind
from mmsjson.errors import StoreError

SCHEMA = "CREATE TABLE IF NOT EXISTS items (value INTEGER NOT NULL);"
INSERT = "INSERT INTO items (value) VALUES (?)"
KIND = StoreKind(name="test store", application_id=0x74657374, version=2)
#: Only so that a regression fails the test instead of hanging the suite.
GUARD = 30.0


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "store.db"


@pytest.fixture
def store(path: Path) -> Iterator[SQLiteStore]:
    store = SQLiteStore(path, SCHEMA, busy_timeout=0.05)
    yield store
    store.close()


@contextmanager
def write_lock(path: Path) -> Iterator[None]:
    """Another connection holds the database's write lock until the block ends."""
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        other.execute("ROLLBACK")
        other.close()


async def settle(*calls: Awaitable[Any]) -> list[Any]:
    return await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), GUARD)


def marks(path: Path) -> tuple[int, int]:
    db = sqlite3.connect(path)
    try:
        return db.execute("PRAGMA application_id").fetchone()[0], db.execute("PRAGMA user_version").fetchone()[0]
    finally:
        db.close()


# -- every call ends --------------------------------------------------------------------------


async def test_calls_that_cannot_get_the_write_lock_all_fail_with_the_lock_error(
    store: SQLiteStore, path: Path
) -> None:
    with write_lock(path):
        results = await settle(store.execute(INSERT, (1,)), store.execute(INSERT, (2,)), store.fetch("SELECT 1"))
    assert all(isinstance(r, sqlite3.OperationalError) and "locked" in str(r) for r in results)


async def test_the_store_works_again_once_the_write_lock_is_released(store: SQLiteStore, path: Path) -> None:
    with write_lock(path):
        await settle(store.execute(INSERT, (1,)))
    assert await asyncio.wait_for(store.execute(INSERT, (2,)), GUARD) == 1
    assert await store.fetch("SELECT value FROM items") == [(2,)]


async def test_a_statement_whose_arguments_cannot_be_bound_fails_alone(store: SQLiteStore) -> None:
    results = await settle(store.execute(INSERT, (2**70,)), store.execute(INSERT, (1,)))
    assert isinstance(results[0], OverflowError)
    assert results[1] == 1
    assert await store.fetch("SELECT value FROM items") == [(1,)]


async def test_calls_waiting_when_the_writer_thread_dies_fail_instead_of_hanging(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    started, release = threading.Event(), threading.Event()

    def broken(db: sqlite3.Connection, calls: list[Any]) -> None:
        started.set()
        release.wait(GUARD)
        raise SystemError("a bug in the writer")

    monkeypatch.setattr(store, "_write", broken)
    first = asyncio.ensure_future(store.execute(INSERT, (1,)))
    assert await asyncio.to_thread(started.wait, GUARD)
    queued = asyncio.ensure_future(store.execute(INSERT, (2,)))
    await asyncio.sleep(0)
    release.set()
    results = await settle(first, queued)
    assert all(isinstance(r, RuntimeError) and "writer thread failed" in str(r) for r in results)


async def test_calls_after_the_writer_thread_died_fail_at_once(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(db: sqlite3.Connection, calls: list[Any]) -> None:
        raise SystemError("a bug in the writer")

    monkeypatch.setattr(store, "_write", broken)
    await settle(store.execute(INSERT, (1,)))
    with pytest.raises(RuntimeError, match="writer thread failed"):
        await store.execute(INSERT, (2,))


async def test_close_finishes_the_writes_queued_before_it(path: Path) -> None:
    store = SQLiteStore(path, SCHEMA)
    writes = [asyncio.ensure_future(store.execute(INSERT, (i,))) for i in range(50)]
    await asyncio.sleep(0)
    store.close()
    assert await settle(*writes) == [1] * 50
    with pytest.raises(RuntimeError, match="closed"):
        await store.execute(INSERT, (0,))


async def test_an_in_memory_store_works_and_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = SQLiteStore(":memory:", SCHEMA)
    try:
        assert await store.execute(INSERT, (1,)) == 1
    finally:
        store.close()
    assert os.listdir(tmp_path) == []


def test_a_file_that_is_not_a_database_is_refused_naming_it(path: Path) -> None:
    path.write_bytes(b"not a database, just text " * 200)
    with pytest.raises(StoreError, match=f"^{path}: is not a SQLite database, or is damaged"):
        SQLiteStore(path, SCHEMA)


def test_a_negative_busy_timeout_is_refused(path: Path) -> None:
    with pytest.raises(ValueError, match="busy_timeout must be at least 0"):
        SQLiteStore(path, SCHEMA, busy_timeout=-1)


# -- marked files -----------------------------------------------------------------------------


def test_a_new_file_is_marked_with_its_kind(path: Path) -> None:
    SQLiteStore(path, SCHEMA, kind=KIND).close()
    assert marks(path) == (KIND.application_id, KIND.version)


def test_an_empty_file_is_taken_as_new(path: Path) -> None:
    path.touch()
    SQLiteStore(path, SCHEMA, kind=KIND).close()
    assert marks(path) == (KIND.application_id, KIND.version)


async def test_a_marked_file_opens_again_with_its_rows(path: Path) -> None:
    store = SQLiteStore(path, SCHEMA, kind=KIND)
    await store.execute(INSERT, (7,))
    store.close()
    again = SQLiteStore(path, SCHEMA, kind=KIND)
    try:
        assert await again.fetch("SELECT value FROM items") == [(7,)]
    finally:
        again.close()


def test_a_store_without_a_kind_leaves_the_file_unmarked(path: Path) -> None:
    SQLiteStore(path, SCHEMA).close()
    assert marks(path) == (0, 0)


def test_an_unmarked_file_with_exactly_our_tables_is_adopted(path: Path) -> None:
    SQLiteStore(path, SCHEMA).close()
    SQLiteStore(path, SCHEMA, kind=KIND).close()
    assert marks(path) == (KIND.application_id, KIND.version)


def test_a_file_of_another_kind_is_refused_and_left_unchanged(path: Path) -> None:
    other = StoreKind(name="other store", application_id=0x6F746872)
    SQLiteStore(path, SCHEMA, kind=other).close()
    before = path.read_bytes()
    with pytest.raises(StoreError, match=r"another program's SQLite database \(application_id 0x6f746872\)"):
        SQLiteStore(path, SCHEMA, kind=KIND)
    assert path.read_bytes() == before


def test_an_unmarked_file_with_other_tables_is_refused_and_left_unchanged(path: Path) -> None:
    db = sqlite3.connect(path)
    db.executescript("CREATE TABLE items (value INTEGER NOT NULL); CREATE TABLE photos (id INTEGER);")
    db.close()
    before = path.read_bytes()
    with pytest.raises(StoreError, match="tables items, photos"):
        SQLiteStore(path, SCHEMA, kind=KIND)
    assert path.read_bytes() == before


def test_a_file_from_a_newer_schema_version_is_refused(path: Path) -> None:
    newer = StoreKind(name=KIND.name, application_id=KIND.application_id, version=KIND.version + 1)
    SQLiteStore(path, SCHEMA, kind=newer).close()
    with pytest.raises(StoreError, match="schema version 3, written by a newer mmsjson; this one reads version 2"):
        SQLiteStore(path, SCHEMA, kind=KIND)


def test_a_marked_file_without_its_tables_is_refused(path: Path) -> None:
    SQLiteStore(path, "CREATE TABLE IF NOT EXISTS other (x);", kind=KIND).close()
    with pytest.raises(StoreError, match="lacks its tables"):
        SQLiteStore(path, SCHEMA, kind=KIND)


def test_a_damaged_page_is_found_when_the_file_is_opened(path: Path) -> None:
    SQLiteStore(path, SCHEMA, kind=KIND).close()
    db = sqlite3.connect(path)
    db.executemany(INSERT, ((i,) for i in range(3000)))
    db.execute("CREATE INDEX by_value ON items (value)")
    db.commit()
    db.close()
    data = bytearray(path.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 2048] = b"\xa5" * 2048
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="store.db: is a damaged test store: "):
        SQLiteStore(path, SCHEMA, kind=KIND)


@pytest.mark.parametrize("application_id", [0, -1, 2**31])
def test_a_kind_needs_a_positive_32_bit_application_id(application_id: int) -> None:
    with pytest.raises(ValueError, match="application_id"):
        StoreKind(name="x", application_id=application_id)
