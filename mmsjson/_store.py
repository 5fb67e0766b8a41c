"""Durable SQLite writes that never block the event loop.

One thread owns the connection. Callers await their statement; the thread runs every statement
waiting in its queue in one transaction and commits once (group commit), so a burst of thousands of
writes costs a few fsyncs, not thousands. Each awaited write has reached the database file when it
returns: a process killed right after loses nothing that was awaited. Every awaited call ends, with
its result or an error, even when the write lock cannot be had or the thread stops.

A store given a :class:`StoreKind` marks the files it creates as its own (SQLite's
``application_id`` and ``user_version``) and refuses, before writing anything, a file that is not:
random bytes, a damaged database, another program's database, or a newer schema.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

from attrs import field, frozen
from attrs.validators import ge, lt

from mmsjson.errors import StoreError

__all__ = ["SQLiteStore", "StoreKind"]

logger = logging.getLogger(__name__)

_Tables = dict[str, tuple[tuple[str, str], ...]]


@frozen(kw_only=True)
class StoreKind:
    """What makes a SQLite file one of ours: ``application_id`` and schema ``version``.

    ``name`` says what the file is in error messages ("mmsjson bulk journal"). The id must be a
    positive 32-bit number no other kind of file uses.
    """

    name: str
    application_id: int = field(validator=[ge(1), lt(2**31)])
    version: int = field(default=1, validator=[ge(1), lt(2**31)])


class _Call(NamedTuple):
    sql: str
    args: Sequence[Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    fetch: bool


class SQLiteStore:
    """A SQLite file written from one thread; ``await store.execute(sql, args)`` is durable.

    ``kind`` marks and checks the file (see :class:`StoreKind`); without it any SQLite file is
    used as it is, read whole once first if ``verify`` (so a damaged one is refused at open, not
    found when a write or read touches the damage). A transaction that cannot get the write lock
    within ``busy_timeout`` seconds fails every statement in it with
    :class:`sqlite3.OperationalError`. A file that cannot be opened or used raises
    :class:`~mmsjson.errors.StoreError` naming it.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        schema: str,
        *,
        kind: StoreKind | None = None,
        busy_timeout: float = 5.0,
        verify: bool = False,
    ) -> None:
        if busy_timeout < 0:
            raise ValueError(f"busy_timeout must be at least 0 seconds, not {busy_timeout}")
        self.path = os.fspath(path)
        self._queue: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._guard = threading.Lock()
        self._refusal: RuntimeError | None = None
        self._ready = threading.Event()
        self._open_error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, args=(schema, kind, busy_timeout, verify), daemon=True, name="mmsjson-sqlite"
        )
        self._thread.start()
        self._ready.wait()
        if self._open_error is not None:
            self._thread.join()
            raise self._open_error

    def __repr__(self) -> str:
        return f"<SQLiteStore {self.path}>"

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        """Run one statement durably; return the number of rows it changed."""
        result: int = await self._submit(sql, args, fetch=False)
        return result

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one query in the writer thread (so it sees every write before it)."""
        rows: list[tuple[Any, ...]] = await self._submit(sql, args, fetch=True)
        return rows

    def close(self) -> None:
        """Finish the writes queued so far and close the file; later calls raise RuntimeError."""
        with self._guard:
            if self._refusal is None:
                self._refusal = RuntimeError(f"{self!r} is closed")
                self._queue.put(None)
        self._thread.join()

    def _submit(self, sql: str, args: Sequence[Any], *, fetch: bool) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        with self._guard:
            if self._refusal is not None:
                raise self._refusal
            self._queue.put(_Call(sql, args, loop, future, fetch))
        return future

    def _refuse(self, reason: RuntimeError) -> None:
        """Refuse every later call with ``reason`` and fail every call still queued with it."""
        with self._guard:
            if self._refusal is None:
                self._refusal = reason
        while True:
            try:
                call = self._queue.get_nowait()
            except queue.Empty:
                return
            if call is not None:
                _notify(call, None, reason)

    # -- the writer thread --------------------------------------------------------------------

    def _run(self, schema: str, kind: StoreKind | None, busy_timeout: float, verify: bool) -> None:
        try:
            db = self._open(schema, kind, busy_timeout, verify)
        except BaseException as exc:
            self._open_error = exc
            self._refuse(RuntimeError(f"{self!r} could not be opened"))
            self._ready.set()
            return
        self._ready.set()
        reason = RuntimeError(f"{self!r} is closed")
        try:
            self._serve(db)
        except BaseException as exc:
            logger.error("the writer thread of %r failed", self, exc_info=exc)
            reason = RuntimeError(f"{self!r} stopped: its writer thread failed ({exc!r})")
            reason.__cause__ = exc
        finally:
            self._refuse(reason)
            try:
                db.close()
            except sqlite3.Error:
                logger.exception("closing %r failed", self)

    def _serve(self, db: sqlite3.Connection) -> None:
        while True:
            batch = [self._queue.get()]
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            calls = [call for call in batch if call is not None]
            try:
                if calls:
                    self._write(db, calls)
            except BaseException as exc:
                failed = RuntimeError(f"{self!r} stopped: its writer thread failed ({exc!r})")
                for call in calls:
                    _notify(call, None, failed)
                raise
            if len(calls) < len(batch):
                return

    def _write(self, db: sqlite3.Connection, calls: list[_Call]) -> None:
        """Run ``calls`` in one transaction and settle each caller's future."""
        results: list[tuple[Any, BaseException | None]] = []
        try:
            if db.in_transaction:
                db.execute("ROLLBACK")
            db.execute("BEGIN IMMEDIATE")
            try:
                for call in calls:
                    try:
                        cursor = db.execute(call.sql, call.args)
                        results.append((cursor.fetchall() if call.fetch else cursor.rowcount, None))
                    except Exception as exc:
                        if not db.in_transaction:
                            raise
                        results.append((None, exc))
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            results = [(None, exc)] * len(calls)
        for call, (value, error) in zip(calls, results, strict=True):
            _notify(call, value, error)

    def _open(
        self, schema: str, kind: StoreKind | None, busy_timeout: float, verify: bool
    ) -> sqlite3.Connection:
        try:
            if self.path != ":memory:":
                os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666))
        except OSError as exc:
            raise StoreError(self.path, f"cannot be opened: {exc.strerror}") from exc
        what = kind.name if kind is not None else "SQLite database"
        try:
            db = sqlite3.connect(
                self.path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise StoreError(self.path, f"cannot be opened: {exc}") from exc
        try:
            if kind is not None:
                self._claim(db, schema, kind)
            _enter_wal(db, busy_timeout)
            db.execute("PRAGMA synchronous=FULL")
            if kind is None:
                if verify:
                    self._verify(db, what)
                db.executescript(schema)
        except BaseException as exc:
            db.close()
            if isinstance(exc, sqlite3.Error):
                raise StoreError(self.path, _problem(exc, what)) from exc
            raise
        return db

    def _claim(self, db: sqlite3.Connection, schema: str, kind: StoreKind) -> None:
        """Create a new file as ``kind``; accept one of ours; refuse anything else, unchanged."""
        application_id = _pragma(db, "application_id")
        version = _pragma(db, "user_version")
        objects = db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        mark = f"PRAGMA application_id = {kind.application_id}; PRAGMA user_version = {kind.version};"
        if application_id == 0 and version == 0 and not objects:
            db.executescript(f"BEGIN IMMEDIATE; {mark}\n{schema}\n;COMMIT;")
            return
        tables, expected = _tables(db), _tables_of(schema)
        if application_id == kind.application_id:
            if version != kind.version:
                newer = "a newer" if version > kind.version else "an older"
                raise StoreError(
                    self.path,
                    f"is a {kind.name} of schema version {version}, written by {newer} mmsjson; "
                    f"this one reads version {kind.version}",
                )
            if any(tables.get(name) != columns for name, columns in expected.items()):
                raise StoreError(
                    self.path, f"is marked as a {kind.name} but lacks its tables: damaged or altered"
                )
            self._verify(db, kind.name)
            return
        if application_id == 0 and version == 0 and tables == expected:
            self._verify(db, kind.name)
            db.executescript(f"BEGIN IMMEDIATE; {mark} COMMIT;")
            return
        found = (
            f"application_id {application_id:#x}" if application_id
            else f"tables {', '.join(sorted(tables))}" if tables
            else f"user_version {version}"
        )
        raise StoreError(
            self.path, f"is another program's SQLite database ({found}), not a {kind.name}; left unchanged"
        )

    def _verify(self, db: sqlite3.Connection, what: str) -> None:
        """Read the whole file once (``PRAGMA quick_check``) so damage shows now, not mid-run."""
        problems = [row[0] for row in db.execute("PRAGMA quick_check(3)")]
        if problems != ["ok"]:
            raise StoreError(self.path, f"is a damaged {what}: {'; '.join(problems)}")


def _enter_wal(db: sqlite3.Connection, busy_timeout: float) -> None:
    """Switch to WAL, waiting up to ``busy_timeout`` seconds for another connection to let it.

    SQLite answers SQLITE_BUSY at once, without waiting, while another process is turning a new
    file into WAL: two receivers started together on a new file made one fail to open.
    """
    deadline = time.monotonic() + busy_timeout
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorname != "SQLITE_BUSY" or time.monotonic() >= deadline:
                raise
        time.sleep(0.01)


def _pragma(db: sqlite3.Connection, name: str) -> int:
    value: int = db.execute(f"PRAGMA {name}").fetchone()[0]
    return value


def _tables(db: sqlite3.Connection) -> _Tables:
    names = [
        row[0] for row in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite^_%' ESCAPE '^'"
        )
    ]
    return {
        name: tuple(
            (column, kind.upper())
            for column, kind in db.execute("SELECT name, type FROM pragma_table_info(?)", (name,))
        )
        for name in names
    }


def _tables_of(schema: str) -> _Tables:
    """The tables ``schema`` creates, with their columns and types."""
    db = sqlite3.connect(":memory:")
    try:
        db.executescript(schema)
        return _tables(db)
    finally:
        db.close()


def _problem(exc: sqlite3.Error, what: str) -> str:
    damaged = exc.sqlite_errorname in ("SQLITE_NOTADB", "SQLITE_CORRUPT")
    if isinstance(exc, sqlite3.OperationalError) and not damaged:
        return f"cannot be used ({exc})"
    return f"is not a {what}, or is damaged ({exc})"


def _notify(call: _Call, value: Any, error: BaseException | None) -> None:
    """Settle ``call`` in its loop; a loop that is closed has nobody waiting."""
    with contextlib.suppress(RuntimeError):
        call.loop.call_soon_threadsafe(_settle, call.future, value, error)


def _settle(future: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)
