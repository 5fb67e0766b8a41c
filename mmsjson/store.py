"""Durable SQLite writes that never block the event loop.

One thread owns the connection. Callers await their statement; the thread runs every statement
waiting in its queue in one transaction and commits once (group commit), so a burst of thousands of
writes costs a few fsyncs, not thousands. Each awaited write has reached the database file when it
returns: a process killed right after loses nothing that was awaited.
"""

from __future__ import annotations

import asyncio
import os
import queue
import sqlite3
import threading
from collections.abc import Sequence
from typing import Any

__all__ = ["SQLiteStore"]

_Request = tuple[str, Sequence[Any], asyncio.AbstractEventLoop | None, "asyncio.Future[Any] | None", bool]
_STOP = ("", (), None, None, False)


class SQLiteStore:
    """A SQLite file written from one thread; ``await store.execute(sql, args)`` is durable."""

    def __init__(self, path: str | os.PathLike[str], schema: str) -> None:
        self.path = os.fspath(path)
        self._queue: queue.SimpleQueue[_Request] = queue.SimpleQueue()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(schema,), daemon=True, name="mmsjson-sqlite")
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error

    def __repr__(self) -> str:
        return f"<SQLiteStore {self.path}>"

    def _run(self, schema: str) -> None:
        try:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.executescript(schema)
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        while True:
            batch = [self._queue.get()]
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = any(item is _STOP for item in batch)
            results: list[tuple[Any, BaseException | None]] = []
            try:
                db.execute("BEGIN IMMEDIATE")
                for sql, args, _, _, fetch in (item for item in batch if item is not _STOP):
                    try:
                        cursor = db.execute(sql, args)
                        results.append((cursor.fetchall() if fetch else cursor.rowcount, None))
                    except sqlite3.Error as exc:
                        results.append((None, exc))
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                results = [(None, exc)] * len(results)
            for (_, _, loop, future, _), (value, error) in zip(
                (item for item in batch if item is not _STOP), results, strict=True
            ):
                if loop is not None and future is not None:
                    loop.call_soon_threadsafe(_settle, future, value, error)
            if stop:
                db.close()
                return

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        """Run one statement durably; return the number of rows it changed."""
        result: int = await self._submit(sql, args, fetch=False)
        return result

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one query in the writer thread (so it sees every write before it)."""
        rows: list[tuple[Any, ...]] = await self._submit(sql, args, fetch=True)
        return rows

    def _submit(self, sql: str, args: Sequence[Any], *, fetch: bool) -> asyncio.Future[Any]:
        if not self._thread.is_alive():
            raise RuntimeError(f"{self!r} is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.put((sql, args, loop, future, fetch))
        return future

    def close(self) -> None:
        """Finish the writes queued so far and close the file."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()


def _settle(future: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)
