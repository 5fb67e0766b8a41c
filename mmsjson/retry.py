"""Whether a failed request may be sent again, decided in one place, and how long to wait first.

:func:`classify` sorts every error into one of three verdicts, and everything that must decide
about a failure asks it: the retry loop of the send pipeline, the journal of a bulk run, the
fan-out's outcome per recipient.

- ``RETRY``: surely not accepted, and trying again may succeed (E113/E106, HTTP 429/503, a
  connection that could not be made).
- ``UNKNOWN``: the request may have been accepted (the answer was lost); sending it again could
  deliver the same MMS twice, so it is retried only when the caller opts in.
- ``FINAL``: not accepted, and the same request would fail the same way (a refused number, a bad
  key, a TLS failure, a request refused before I/O).
"""

from __future__ import annotations

import enum
import math
import random
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from attrs import Attribute, field, frozen

from mmsjson.errors import ApiError, MMSError, TransportError, ValidationError

__all__ = ["RetryPolicy", "Verdict", "classify", "parse_retry_after"]


class Verdict(enum.Enum):
    """What a failure means for sending the same request again."""

    RETRY = "retry"
    UNKNOWN = "unknown"
    FINAL = "final"


def classify(error: BaseException) -> Verdict:
    """The verdict on ``error``: may the same request be sent again, and is its outcome known?"""
    if isinstance(error, ApiError):
        return Verdict.RETRY if error.retryable else Verdict.FINAL
    if isinstance(error, TransportError):
        if error.outcome_unknown:
            return Verdict.UNKNOWN
        return Verdict.RETRY if error.retryable else Verdict.FINAL
    return Verdict.FINAL


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delay-seconds or an HTTP-date (RFC 9110)."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if seconds == seconds else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


@frozen(kw_only=True)
class RetryPolicy:
    """How often, and after how long, a request :func:`classify` calls ``RETRY`` is sent again.

    Waits grow exponentially from ``base_delay`` to ``max_delay``, each drawn uniformly from the
    upper half of the current step ("equal jitter": never less than half the step, so a storm of
    E113 cannot retry at once), and never shorter than what the service asked for in
    ``Retry-After`` or an E106 answer (capped at ``max_delay``). ``retry_unknown=True`` also
    retries requests whose answer was lost: only for callers who accept that a person may then get
    the message twice.
    """

    max_attempts: int = field(default=6)
    base_delay: float = field(default=0.2)
    max_delay: float = field(default=10.0)
    retry_unknown: bool = False

    @max_attempts.validator
    def _check_attempts(self, _: object, value: object) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValidationError("max_attempts", f"must be an integer of at least 1, not {value!r}")

    @base_delay.validator
    @max_delay.validator
    def _check_delay(self, attribute: Attribute[float], value: object) -> None:
        """A negative or NaN delay retries without back-off; an infinite cap can wait forever
        (a ``Retry-After`` of ``1e999``)."""
        if isinstance(value, bool) or not isinstance(value, int | float) or not (
            0 <= value < math.inf
        ):
            raise ValidationError(
                attribute.name, f"must be a finite number of seconds, at least 0, not {value!r}"
            )

    def should_retry(self, error: MMSError, attempt: int) -> bool:
        """Whether to try again after ``error`` on try number ``attempt`` (from 1)."""
        if attempt >= self.max_attempts:
            return False
        verdict = classify(error)
        return verdict is Verdict.RETRY or (verdict is Verdict.UNKNOWN and self.retry_unknown)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after try number ``attempt`` failed."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        wait = random.uniform(ceiling / 2, ceiling)
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_delay))
        return wait
