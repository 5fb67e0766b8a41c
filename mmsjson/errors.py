"""The exceptions mmsjson raises, and the table of the API's error codes.

Every exception derives from :class:`MMSError`::

    MMSError
    ├── ValidationError            refused before any network I/O (also a ValueError)
    │   └── MediaError             a media URL failed the pre-flight check
    ├── ApiError                   the API answered and did not accept the request
    │   ├── BadRequestError        E100 E107 E108 E115, other HTTP 4xx
    │   ├── AuthError              E104 E105 E112, HTTP 401/403
    │   ├── AccountError           E103 E713 (blocked, billing)
    │   ├── ThroughputExceeded     E106 E113, HTTP 429  (retryable)
    │   ├── RecipientError         E110 E114
    │   ├── SenderError            E111
    │   ├── ContentError           E2xx E31x E33x E34x slide and media problems
    │   ├── TemplateError          E311, and TemplateNotFound for E241
    │   └── ServerError            E503, HTTP 503 (HTTP 503 is retryable)
    ├── TransportError             no answer: ``outcome_unknown`` says whether it may have been accepted
    │   └── SharedLimitUnavailable the shared limit's Redis could not be reached; not sent
    └── StoreError                 a SQLite file mmsjson keeps cannot be used (damaged, foreign, unreadable)
        └── JournalError           the bulk journal cannot be used; nothing was sent
            └── JournalBusy        another run holds the journal (``holder`` says who)

An error code the table does not know still becomes an :class:`ApiError` with the code kept, so a
new code on the server never crashes a client. No exception text ever contains the API key: the
client never hands it to an exception.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "AccountError",
    "ApiError",
    "AuthError",
    "BadRequestError",
    "ContentError",
    "ERROR_CODES",
    "JournalBusy",
    "JournalError",
    "MMSError",
    "MediaError",
    "RecipientError",
    "SenderError",
    "ServerError",
    "StoreError",
    "TemplateError",
    "TemplateNotFound",
    "ThroughputExceeded",
    "TransportError",
    "ValidationError",
    "api_error_from_code",
    "api_error_from_http",
]


def _rebuild(cls: type[MMSError], args: tuple[Any, ...], state: dict[str, Any]) -> MMSError:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class MMSError(Exception):
    """Root of every error mmsjson raises; ``attempts`` counts the requests made before it."""

    attempts: int = 0

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle by state, so every error crosses a process pool whatever its constructor takes."""
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))


class ValidationError(MMSError, ValueError):
    """A message, number or option the API would reject, refused before any network I/O.

    ``path`` names the field (``slides[2].video``), ``rule`` says what is wrong.
    """

    def __init__(self, path: str, rule: str) -> None:
        self.path = path
        self.rule = rule
        super().__init__(f"{path}: {rule}" if path else rule)

    def within(self, prefix: str) -> ValidationError:
        """The same error with its path placed under ``prefix`` (``slides[2]`` + ``.video``)."""
        if not self.path:
            path = prefix
        elif self.path.startswith("["):
            path = f"{prefix}{self.path}"
        else:
            path = f"{prefix}.{self.path}"
        return ValidationError(path, self.rule)


class MediaError(ValidationError):
    """A media URL failed the pre-flight check, so the service would refuse the MMS.

    ``checks`` holds the :class:`~mmsjson.media.MediaCheck` of every failing URL.
    """

    def __init__(self, path: str, rule: str, checks: tuple[Any, ...] = ()) -> None:
        super().__init__(path, rule)
        self.checks = checks


class ApiError(MMSError):
    """The API answered and did not accept the request.

    ``code`` is the API's ``error-code`` (``None`` when only an HTTP status came back), ``info``
    its ``error-info``, ``http_status`` the HTTP status and ``response`` the decoded body (or the
    text of a body that was not JSON). ``retryable`` is true only when the request was surely not
    accepted and may be sent again.
    """

    retryable: bool = False

    def __init__(
        self,
        code: str | None,
        info: str | None,
        *,
        http_status: int = 200,
        response: Mapping[str, Any] | str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.code = code
        self.info = info
        self.http_status = http_status
        self.response = response
        self.retry_after = retry_after
        label = code if code is not None else f"HTTP {http_status}"
        meaning = info or (ERROR_CODES.get(code, "") if code else "") or "no details given"
        super().__init__(f"{label}: {meaning}")


class BadRequestError(ApiError):
    """The request was malformed or not allowed (E100, E107, E108, E115, HTTP 4xx)."""


class AuthError(ApiError):
    """The API key, account access or calling IP was refused (E104, E105, E112, HTTP 401/403)."""


class AccountError(ApiError):
    """The account is blocked or has a billing problem (E103, E713)."""


class ThroughputExceeded(ApiError):
    """The account's throughput was exceeded (E113, E106, HTTP 429); not accepted, safe to retry."""

    retryable = True


class RecipientError(ApiError):
    """The destination number is invalid or blacklisted (E110, E114)."""


class SenderError(ApiError):
    """The sender number or short code is invalid for the account (E111)."""


class ContentError(ApiError):
    """A slide or its media broke a content rule (E2xx, E31x, E33x, E34x)."""


class TemplateError(ApiError):
    """A saved template could not be created or used (E311, E241)."""


class TemplateNotFound(TemplateError):
    """The ``mms-id`` does not exist (E241)."""


class ServerError(ApiError):
    """The service failed internally (E503) or was unavailable (HTTP 503, retryable)."""

    def __init__(
        self,
        code: str | None,
        info: str | None,
        *,
        http_status: int = 200,
        response: Mapping[str, Any] | str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(
            code, info, http_status=http_status, response=response, retry_after=retry_after
        )
        self.retryable = http_status == 503


class TransportError(MMSError):
    """No answer came back from the API.

    ``outcome_unknown`` is false when the request surely never reached the service (the connection
    could not be made) and true when it may have been accepted (the connection broke or timed out
    after the request was written). An unknown outcome is never retried unless the caller opts in,
    because a retry could deliver the same MMS twice. ``retryable`` is true for a connection that
    could not be made for a reason that may pass (refused, timed out; not a TLS failure).
    """

    def __init__(
        self,
        message: str,
        *,
        outcome_unknown: bool,
        retryable: bool = False,
        http_status: int | None = None,
    ) -> None:
        self.outcome_unknown = outcome_unknown
        self.retryable = retryable and not outcome_unknown
        self.http_status = http_status
        suffix = (
            "the request may have been accepted; it was not retried"
            if outcome_unknown
            else "the request was not sent"
        )
        super().__init__(f"{message} ({suffix})")


class StoreError(MMSError):
    """A SQLite file mmsjson keeps (a bulk journal, a postback store) cannot be used.

    ``path`` names the file and ``problem`` says what is wrong: it cannot be opened, it is damaged
    or not a database, it is another program's database, or a newer mmsjson wrote it. Nothing was
    written into it.
    """

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}")


class JournalError(StoreError):
    """The bulk journal cannot be used, so the run did not start and nothing was sent."""


class JournalBusy(JournalError):
    """Another run holds the journal; two runs on one journal could send the same MMS twice.

    ``holder`` is what the holding run wrote down about itself (pid, host, start time), or
    ``"unknown"``.
    """

    def __init__(self, path: str, holder: str) -> None:
        self.holder = holder
        super().__init__(
            path,
            f"in use by another run ({holder}); two runs on one journal could send the same MMS "
            "twice, so this one did not start",
        )


#: What each documented ``error-code`` means (the vendor's status-code reference pages).
ERROR_CODES: Mapping[str, str] = {
    "E100": "invalid request; make a valid POST",
    "E103": "API access blocked for the account",
    "E104": "authentication failed, invalid API key",
    "E105": "account has no API access",
    "E106": "calls must be further apart",
    "E107": "invalid action, or this user may not use it",
    "E108": "the JSON could not be parsed",
    "E110": "invalid to number",
    "E111": "invalid from number or short code",
    "E112": "calling IP is not whitelisted",
    "E113": "exceeded the allowed throughput for this action",
    "E114": "number is blacklisted",
    "E115": "sender mask over 50 characters",
    "E223": "more than one object in a slide",
    "E224": "audio, video or image not allowed with an object in a slide",
    "E225": "too many slides",
    "E226": "audio and video not allowed in one slide",
    "E227": "video and image not allowed in one slide",
    "E228": "text over the limit",
    "E229": "content not allowed",
    "E230": "bad slide duration",
    "E241": "this mms-id does not exist",
    "E311": "template name required",
    "E312": "no slides",
    "E313": "a slide is empty",
    "E314": "invalid or missing message subject",
    "E331": "image in a slide too big",
    "E332": "audio in a slide too big",
    "E333": "video in a slide too big",
    "E334": "text in a slide too big",
    "E335": "vCard in a slide too big",
    "E336": "iCal in a slide too big",
    "E337": "PDF in a slide too big",
    "E503": "internal error",
    "E713": "billing problem on the account",
}

_FAMILY_BY_CODE: Mapping[str, type[ApiError]] = {
    **dict.fromkeys(("E100", "E107", "E108", "E115"), BadRequestError),
    **dict.fromkeys(("E104", "E105", "E112"), AuthError),
    **dict.fromkeys(("E103", "E713"), AccountError),
    **dict.fromkeys(("E106", "E113"), ThroughputExceeded),
    **dict.fromkeys(("E110", "E114"), RecipientError),
    "E111": SenderError,
    "E241": TemplateNotFound,
    "E311": TemplateError,
    "E503": ServerError,
}

_CONTENT_PREFIXES = ("E22", "E23", "E31", "E33", "E34")


def _family(code: str) -> type[ApiError]:
    family = _FAMILY_BY_CODE.get(code)
    if family is not None:
        return family
    if code.startswith(_CONTENT_PREFIXES):
        return ContentError
    return ApiError


def api_error_from_code(
    code: str,
    info: str | None,
    *,
    http_status: int = 200,
    response: Mapping[str, Any] | str | None = None,
) -> ApiError:
    """The exception for an API ``error-code``; an unknown code gives a plain :class:`ApiError`.

    With HTTP 429 it is :class:`ThroughputExceeded` (the code kept) whatever the code says: the
    request was not taken, and it may be sent again after backing off.
    """
    family = ThroughputExceeded if http_status == 429 else _family(code)
    return family(code, info, http_status=http_status, response=response)


def api_error_from_http(
    http_status: int, body: str, *, retry_after: float | None = None
) -> ApiError:
    """The exception for an HTTP error status whose body carried no ``error-code``."""
    family: type[ApiError]
    if http_status == 429:
        family = ThroughputExceeded
    elif http_status in (401, 403):
        family = AuthError
    elif http_status >= 500:
        family = ServerError
    else:
        family = BadRequestError
    snippet = " ".join(body.split())[:200]
    info = f"HTTP {http_status} with a non-JSON body: {snippet!r}" if snippet else None
    return family(None, info, http_status=http_status, response=body, retry_after=retry_after)
