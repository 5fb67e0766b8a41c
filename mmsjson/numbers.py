"""Phone numbers: accept what people type, send what the API wants.

The API takes numbers in international form with the country code, no ``+`` and no ``00`` dialling
prefix (``17745559144``). People type ``+1 (774) 555-9144``; that is normalised. What cannot be
read one way only (a ``00`` or national ``0`` prefix, letters) is refused with a message that shows
how to write it. Whether the digits can be a number at all is judged by libphonenumber's numbering
plan (the ``phonenumbers`` package, imported at first use): ``7745559144`` read as +7... is too
short for Russia, so it is refused with a hint to add the country code, while the 7-digit
``6834002`` (Niue, +683 4002) is accepted. Results are cached, so a number used again costs a
dictionary look-up.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping

from mmsjson.errors import ValidationError

__all__ = ["normalize_number", "normalize_numbers", "normalize_sender"]

_SEPARATORS = str.maketrans("", "", " -.()/\u00a0\t")
_EXAMPLE = "write it in international form with the country code, e.g. 17745559144"
#: ITU-T E.164: an international number has at most 15 digits.
_MAX_DIGITS = 15
#: US and Canadian short codes, the senders the guide names beside toll-free and 10DLC numbers.
_SHORT_CODE_DIGITS = (5, 6)
_CACHE_SIZE = 4096


class _Refused(Exception):
    """A number that cannot be read; ``rule`` says why (the caller adds the field)."""

    def __init__(self, rule: str) -> None:
        super().__init__(rule)
        self.rule = rule


def _digits(raw: str) -> tuple[str, bool]:
    """The digits of ``raw`` and whether it was written with a leading ``+``."""
    text = raw.strip().translate(_SEPARATORS)
    if not text:
        raise _Refused(f"is empty; {_EXAMPLE}")
    plus = text.startswith("+")
    if plus:
        text = text[1:]
    if not text.isascii() or not text.isdigit():
        raise _Refused(f"{raw!r} has characters other than digits; {_EXAMPLE}")
    if text.startswith("0"):
        if text.startswith("00"):
            raise _Refused(
                f"{raw!r} starts with the 00 dialling prefix; drop it and "
                f"write {text[2:] or 'the number'} instead"
            )
        raise _Refused(f"{raw!r} looks national (leading 0); {_EXAMPLE}")
    if len(text) > _MAX_DIGITS:
        raise _Refused(
            f"{raw!r} has {len(text)} digits; an international number has at most "
            f"{_MAX_DIGITS} (E.164)"
        )
    return text, plus


def _plan_problem(digits: str) -> str | None:
    """What libphonenumber's numbering plan says is wrong with ``+digits``, or None."""
    import phonenumbers  # imported at first use: it would add ~15 ms to `import mmsjson`

    try:
        number = phonenumbers.parse("+" + digits)
    except phonenumbers.NumberParseException:
        return "does not start with a country code"
    reason = phonenumbers.is_possible_number_with_reason(number)
    if reason == phonenumbers.ValidationResult.IS_POSSIBLE:
        return None
    if reason == phonenumbers.ValidationResult.INVALID_COUNTRY_CODE:
        return "does not start with a country code"
    length = {
        phonenumbers.ValidationResult.TOO_SHORT: "too short",
        phonenumbers.ValidationResult.TOO_LONG: "too long",
        phonenumbers.ValidationResult.IS_POSSIBLE_LOCAL_ONLY: "too short (a local number)",
    }.get(reason, "of a length no number has")
    country = number.country_code or 0
    region = phonenumbers.region_code_for_country_code(country)
    where = f" ({region})" if region not in ("ZZ", "001") else ""
    return f"is not a possible number: read with country code +{country}{where} it is {length}"


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _international(raw: str) -> str:
    digits, _ = _digits(raw)
    problem = _plan_problem(digits)
    if problem is not None:
        raise _Refused(f"{raw!r} {problem}; if the country code is missing, add it: {_EXAMPLE}")
    return digits


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _sender(raw: str) -> str:
    digits, plus = _digits(raw)
    if not plus and len(digits) in _SHORT_CODE_DIGITS:
        return digits
    if len(digits) < min(_SHORT_CODE_DIGITS):
        raise _Refused(
            f"{raw!r} has {len(digits)} digits; a sender is a short code of 5 or 6 digits, or a "
            "toll-free or 10DLC number with its country code, e.g. 18885551234"
        )
    problem = _plan_problem(digits)
    if problem is not None and len(digits) in _SHORT_CODE_DIGITS:
        raise _Refused(f"{raw!r} {problem}; if it is a short code, write it without +: {digits}")
    if problem is not None:
        raise _Refused(
            f"{raw!r} {problem}; a sender is a short code of 5 or 6 digits, or a toll-free or "
            "10DLC number with its country code, e.g. 18885551234"
        )
    return digits


def _text(raw: object, field: str) -> str:
    if not isinstance(raw, str):
        raise ValidationError(field, f"must be a phone number as a string, not {type(raw).__name__}")
    return raw if type(raw) is str else str.__str__(raw)


def normalize_number(raw: str, *, field: str = "to") -> str:
    """``raw`` as the API's international form, or :class:`ValidationError` naming ``field``."""
    try:
        return _international(raw if type(raw) is str else _text(raw, field))
    except _Refused as refused:
        raise ValidationError(field, refused.rule) from None


def normalize_sender(raw: str, *, field: str = "from") -> str:
    """A sender: a 5-6 digit short code, or a long (toll-free, 10DLC) number in international form."""
    try:
        return _sender(_text(raw, field))
    except _Refused as refused:
        raise ValidationError(field, refused.rule) from None


def normalize_numbers(raws: Iterable[str] | None, *, field: str) -> tuple[str, ...]:
    """Each number normalised, duplicates dropped, the caller's order kept; ``None`` is none."""
    if raws is None:
        return ()
    if isinstance(raws, str | bytes | Mapping) or not isinstance(raws, Iterable):
        if isinstance(raws, str):
            rule = "must be a list of numbers, not one string, e.g. ['17745550002', '17745550003']"
        else:
            rule = f"must be a list of numbers, not {type(raws).__name__}"
        raise ValidationError(field, rule)
    seen: dict[str, None] = {}
    for index, raw in enumerate(raws):
        seen.setdefault(normalize_number(raw, field=f"{field}[{index}]"), None)
    return tuple(seen)
