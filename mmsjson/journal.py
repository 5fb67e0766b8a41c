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
"""

from __future__ import annotations

import hashlib
import os
import time

from attrs import frozen

from mmsjson.errors import ApiError, MMSError
from mmsjson.models import OutcomeStatus
from mmsjson.retry import Verdict, classify
from mmsjson.store import SQLiteStore

__all__ = ["SENDING", "BulkJournal", "JournalEntry", "job_key"]

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


class BulkJournal:
    """The SQLite journal of one bulk run (``path`` is created if missing)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._store = SQLiteStore(path, _SCHEMA)

    def __repr__(self) -> str:
        return f"<BulkJournal {self._store.path}>"

    def close(self) -> None:
        self._store.close()

    async def entry(self, key: str) -> JournalEntry | None:
        rows = await self._store.fetch(
            "SELECT key, recipient, state, retryable, tracking_id, code, info FROM jobs WHERE key = ?",
            (key,),
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
            (key, recipient, SENDING, time.time()),
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
                key, recipient, status.value, int(_retryable(error)), tracking_id,
                getattr(error, "code", None), _info(error), time.time(),
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
