"""A crash-safe journal for bulk runs: rerun the same job list and nobody is sent to twice.

Each job's key is written, durably, after the limiter lets it start and before its request is
written to the socket; its outcome is written before the outcome is reported. Rerunning the same
jobs with the same journal:

- skips a job that was accepted, or rejected for good, and reports its recorded outcome again;
- sends again a job that was surely not accepted for a reason that may pass (E113 after every
  retry, HTTP 429/503, a connection that could not be made);
- never resends a job whose outcome is unknown (the answer was lost, or the process died while
  the request may have been on the wire): it is reported ``unknown`` and listed by
  :meth:`BulkJournal.unknown` for an operator to check, for example against postbacks.

A journal belongs to one run at a time: opening it takes an exclusive OS lock on ``<journal>.lock``
(released on close, and by the OS when the process dies), and a second run gets
:class:`~mmsjson.errors.JournalBusy` saying who holds it. A file that is not a journal (damaged,
another program's database, unreadable) gives :class:`~mmsjson.errors.JournalError` and is left as
it is.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
import socket
import sys
import time
from datetime import UTC, datetime
from types import TracebackType

from attrs import frozen

from mmsjson._store import SQLiteStore, StoreKind
from mmsjson.errors import (
    ApiError,
    JournalBusy,
    JournalError,
    MMSError,
    StoreError,
    ValidationError,
)
from mmsjson.models import OutcomeStatus
from mmsjson.retry import Verdict, classify

__all__ = ["JOURNAL_KIND", "SENDING", "BulkJournal", "JournalEntry", "job_key"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    key TEXT PRIMARY KEY,
    recipient TEXT NOT NULL,
    state TEXT NOT NULL,
    retryable INTEGER NOT NULL DEFAULT 0,
    tracking_id TEXT,
    code TEXT,
    info TEXT,
    updated_at REAL NOT NULL
);
"""
#: What marks a SQLite file as a bulk journal ("mmsJ"), and the version of its schema.
JOURNAL_KIND = StoreKind(name="mmsjson bulk journal", application_id=0x6D6D734A, version=1)
#: The state of a job whose request may be on the wire; after a crash its outcome is unknown.
SENDING = "sending"


def job_key(body: bytes) -> str:
    """A job's default key: the digest of its request body (recipient, content and options)."""
    return hashlib.sha256(body).hexdigest()


@frozen
class JournalEntry:
    """What the journal knows of one job."""

    key: str
    recipient: str
    state: str
    retryable: bool
    tracking_id: str | None
    code: str | None
    info: str | None

    @property
    def resend(self) -> bool:
        """Whether a rerun should send this job (again)."""
        return self.state == OutcomeStatus.REJECTED and self.retryable


def _retryable(error: MMSError | None) -> bool:
    return error is not None and classify(error) is Verdict.RETRY


def _info(error: MMSError | None) -> str | None:
    """What to keep of ``error``: the API's own words for an API error, so a replay reads the same."""
    if isinstance(error, ApiError):
        return error.info
    return None if error is None else str(error)


def _text(value: str | None) -> str | None:
    """``value`` as SQLite can store it: a lone surrogate (a key decoded with ``surrogateescape``,
    a peer's ``"\\ud800"``) is kept as its escape, instead of failing the write and the run."""
    if isinstance(value, str) and not value.isascii():
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


if sys.platform == "win32":
    import msvcrt

    def _try_lock(fd: int) -> bool:
        os.lseek(fd, 1 << 30, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except PermissionError:
            return False
        return True

else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True


class _RunLock:
    """One run's exclusive hold on a journal: an OS lock on ``<journal>.lock``, naming its holder.

    The lock file is never deleted (deleting it would let two runs lock two different files); the
    OS drops the lock when the file is closed or the process dies.
    """

    def __init__(self, journal: str) -> None:
        self.path = os.path.realpath(journal) + ".lock"
        try:
            self._file = open(  # noqa: SIM115 - held until release
                self.path, "a+", encoding="utf-8", errors="replace"
            )
        except OSError as exc:
            raise JournalError(journal, f"cannot create its lock file {self.path}: {exc.strerror}") from exc
        try:
            locked = _try_lock(self._file.fileno())
        except OSError as exc:
            self._file.close()
            raise JournalError(journal, f"cannot lock {self.path}: {exc.strerror}") from exc
        if not locked:
            self._file.seek(0)
            holder = self._file.read(200).strip() or "unknown"  # what a run writes is shorter
            self._file.close()
            raise JournalBusy(journal, holder)
        since = datetime.now(UTC).isoformat(timespec="seconds")
        self._file.truncate(0)
        self._file.write(f"pid {os.getpid()} on {socket.gethostname()} since {since}\n")
        self._file.flush()

    def release(self) -> None:
        if not self._file.closed:
            self._file.truncate(0)
            self._file.close()


class BulkJournal:
    """The SQLite journal of one bulk run (``path`` is created if missing), held by this run alone.

    Raises :class:`~mmsjson.errors.JournalBusy` when another run (in this process or another) has
    the journal open, and :class:`~mmsjson.errors.JournalError` when ``path`` is not a journal.
    Close it (or use ``with``) to let the next run have it. A write that cannot get SQLite's write
    lock (some other program has the file open for writing) within ``busy_timeout`` seconds fails
    with :class:`sqlite3.OperationalError`, which stops the run; nothing waits forever.
    """

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout: float = 5.0) -> None:
        if (
            isinstance(busy_timeout, bool) or not isinstance(busy_timeout, int | float)
            or not 0 <= busy_timeout < math.inf
        ):  # an infinite or NaN wait for SQLite's write lock could stop a run for good
            raise ValidationError(
                "busy_timeout", f"must be a finite number of seconds, at least 0, not {busy_timeout!r}"
            )
        self.path = os.fspath(path)
        self._lock = _RunLock(self.path)
        try:
            self._store = SQLiteStore(self.path, _SCHEMA, kind=JOURNAL_KIND, busy_timeout=busy_timeout)
        except StoreError as exc:
            self._lock.release()
            raise JournalError(exc.path, exc.problem) from exc
        except BaseException:
            self._lock.release()
            raise
        #: Jobs being worked on now, by key: a second job with the same key (in this run or
        #: another run sharing this object) waits for the first one's outcome, so a person is
        #: sent to once.
        self.claims: dict[str, asyncio.Event] = {}

    def __repr__(self) -> str:
        return f"<BulkJournal {self.path}>"

    def __enter__(self) -> BulkJournal:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Finish the writes under way, close the file and let another run have the journal."""
        try:
            self._store.close()
        finally:
            self._lock.release()

    async def entry(self, key: str) -> JournalEntry | None:
        rows = await self._store.fetch(
            "SELECT key, recipient, state, retryable, tracking_id, code, info FROM jobs WHERE key = ?",
            (_text(key),),
        )
        if not rows:
            return None
        key_, recipient, state, retryable, tracking_id, code, info = rows[0]
        return JournalEntry(key_, recipient, state, bool(retryable), tracking_id, code, info)

    async def sending(self, key: str, recipient: str) -> None:
        """Record, durably, that ``key``'s request may go on the wire from now on."""
        await self._store.execute(
            "INSERT INTO jobs (key, recipient, state, updated_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(key) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
            (_text(key), _text(recipient), SENDING, time.time()),
        )

    async def record(
        self,
        key: str,
        recipient: str,
        status: OutcomeStatus,
        *,
        tracking_id: str | None = None,
        error: MMSError | None = None,
    ) -> None:
        """Record ``key``'s outcome durably."""
        await self._store.execute(
            "INSERT INTO jobs (key, recipient, state, retryable, tracking_id, code, info, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET state = excluded.state, "
            "retryable = excluded.retryable, tracking_id = excluded.tracking_id, code = excluded.code, "
            "info = excluded.info, updated_at = excluded.updated_at",
            (
                _text(key), _text(recipient), status.value, int(_retryable(error)),
                _text(tracking_id), _text(getattr(error, "code", None)), _text(_info(error)),
                time.time(),
            ),
        )

    async def unknown(self) -> list[JournalEntry]:
        """Jobs whose outcome is unknown: they may have been accepted, and are not resent."""
        rows = await self._store.fetch(
            "SELECT key, recipient, state, retryable, tracking_id, code, info FROM jobs "
            "WHERE state IN (?, ?) ORDER BY updated_at",
            (SENDING, OutcomeStatus.UNKNOWN.value),
        )
        return [JournalEntry(k, r, s, bool(rt), t, c, i) for k, r, s, rt, t, c, i in rows]

    async def counts(self) -> dict[str, int]:
        """How many jobs are in each state."""
        rows = await self._store.fetch("SELECT state, COUNT(*) FROM jobs GROUP BY state")
        return {state: count for state, count in rows}
