"""Phone numbers: accept what people type, send what the API wants.

The API takes numbers in international form with the country code, no ``+`` and no ``00`` dialling
prefix (``17745559144``). People type ``+1 (774) 555-9144``; that is normalised. What cannot be
read one way only (a ``00`` or national ``0`` prefix, letters, a wrong length) is refused with a
message that shows how to write it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

from mmsjson.errors import ValidationError

__all__ = ["normalize_number", "normalize_numbers", "normalize_sender"]

_SEPARATORS = str.maketrans("", "", " -.()/\u00a0\t")
_EXAMPLE = "write it in international form with the country code, e.g. 17745559144"
_MIN_DIGITS = 8
_MAX_DIGITS = 15
_SENDER_MIN_DIGITS = 3


def _digits(raw: object, field: str) -> str:
    if not isinstance(raw, str):
        raise ValidationError(field, f"must be a phone number as a string, not {type(raw).__name__}")
    text = raw.strip().translate(_SEPARATORS)
    if not text:
        raise ValidationError(field, f"is empty; {_EXAMPLE}")
    plus = text.startswith("+")
    if plus:
        text = text[1:]
    if not text.isascii() or not text.isdigit():
        raise ValidationError(field, f"{raw!r} has characters other than digits; {_EXAMPLE}")
    if text.startswith("0"):
        if text.startswith("00"):
            raise ValidationError(
                field,
                f"{raw!r} starts with the 00 dialling prefix; drop it and "
                f"write {text[2:] or 'the number'} instead",
            )
        raise ValidationError(
            field, f"{raw!r} looks national (leading 0); {_EXAMPLE}"
        )
    return text


def normalize_number(raw: str, *, field: str = "to") -> str:
    """``raw`` as the API's international form, or :class:`ValidationError` naming ``field``."""
    digits = _digits(raw, field)
    if not _MIN_DIGITS <= len(digits) <= _MAX_DIGITS:
        raise ValidationError(
            field,
            f"{raw!r} has {len(digits)} digits, an international number has "
            f"{_MIN_DIGITS} to {_MAX_DIGITS}; {_EXAMPLE}",
        )
    return digits


@functools.lru_cache(maxsize=64)
def normalize_sender(raw: str, *, field: str = "from") -> str:
    """A sender: a short code (3+ digits) or a long number in international form."""
    digits = _digits(raw, field)
    if not _SENDER_MIN_DIGITS <= len(digits) <= _MAX_DIGITS:
        raise ValidationError(
            field,
            f"{raw!r} has {len(digits)} digits; a sender is a short code or an international "
            f"number of {_SENDER_MIN_DIGITS} to {_MAX_DIGITS} digits",
        )
    return digits


def normalize_numbers(raws: Iterable[str], *, field: str) -> tuple[str, ...]:
    """Each number normalised, duplicates dropped, the caller's order kept."""
    if isinstance(raws, str):
        raise ValidationError(field, "must be a list of numbers, not one string")
    seen: dict[str, None] = {}
    for index, raw in enumerate(raws):
        seen.setdefault(normalize_number(raw, field=f"{field}[{index}]"), None)
    return tuple(seen)
