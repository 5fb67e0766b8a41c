"""What the ``mmsjson`` command reads: option values, message files, CSV files, the environment.

Every problem becomes a :class:`~mmsjson.errors.ValidationError` (or an ``argparse`` type error)
naming the option, file and line, so the command prints one line and exits 2 before anything is
sent. Files may start with a UTF-8 byte order mark (``utf-8-sig``), as spreadsheet programs write.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path

from attrs import frozen

from mmsjson.errors import ValidationError
from mmsjson.flavours.json import load_mms
from mmsjson.models import MMS, check_from_mask

__all__ = [
    "CSV_COLUMNS",
    "ENV_OPTIONS",
    "CsvLayout",
    "csv_records",
    "custom_texts",
    "expiry",
    "from_mask",
    "read_message",
    "resolve_env",
    "scan_csv",
    "server_rate",
    "throughput",
]

#: Options that fall back to an environment variable: argparse ``dest`` -> variable.
ENV_OPTIONS: Mapping[str, str] = {
    "base_url": "MMSJSON_BASE_URL",
    "service_id": "MMSJSON_SERVICE_ID",
    "sender": "MMSJSON_SENDER",
}

#: The columns a bulk CSV file may name in its header row, and the other names each is known by.
CSV_COLUMNS: Mapping[str, tuple[str, ...]] = {
    "to": ("to", "number", "recipient", "phone"),
    "client_reference": ("client_reference", "reference"),
    "from_mask": ("from_mask",),
    "service_id": ("service_id",),
    "sender": ("sender", "from"),
}
_ENCODING = "utf-8-sig"


def resolve_env(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> None:
    """Fill each option left unset from its environment variable (an empty variable is unset)."""
    environ = os.environ if environ is None else environ
    for dest, variable in ENV_OPTIONS.items():
        if hasattr(args, dest) and getattr(args, dest) is None:
            setattr(args, dest, environ.get(variable) or None)


# -- option types (argparse turns ArgumentTypeError into one line and exit 2) -------------------------


def throughput(text: str) -> float:
    """A request rate: a finite number of at least 1 per second."""
    try:
        rate = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of requests per second") from None
    if not math.isfinite(rate) or rate < 1:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give a finite number of requests per second of at least 1"
        )
    return rate


def server_rate(text: str) -> int:
    """The fake server's limit: a whole number of requests per second, at least 1."""
    rate = throughput(text)
    if rate != int(rate):
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number of requests per second")
    return int(rate)


def from_mask(text: str) -> str:
    """An alphanumeric sender mask: at most 50 characters (the API refuses longer with E115)."""
    try:
        check_from_mask(text, "--from-mask")
    except ValidationError as exc:
        raise argparse.ArgumentTypeError(f"{exc.rule} (the API refuses it with E115)") from None
    return text


def expiry(text: str) -> datetime:
    """An ISO 8601 date and time with its timezone (``2026-12-01T09:00:00Z``, ``...+01:00``)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 date and time, e.g. 2026-12-01T09:00:00Z"
        ) from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} has no timezone; add one, e.g. 2026-12-01T09:00:00Z or +01:00"
        )
    return moment


def custom_texts(items: Sequence[str] | None) -> dict[int, str] | None:
    """``--custom-text N=TEXT`` options as a mapping of slide numbers (from 1) to texts."""
    if not items:
        return None
    texts: dict[int, str] = {}
    for item in items:
        number, sep, text = item.partition("=")
        if not sep or not (number.isascii() and number.isdigit()) or int(number) < 1:
            raise ValidationError("--custom-text", f"{item!r} must look like 1=Hello (a slide number from 1)")
        texts[int(number)] = text
    return texts


# -- files --------------------------------------------------------------------------------------------


def _not_utf8(option: str, path: str, exc: UnicodeDecodeError) -> ValidationError:
    byte = exc.object[exc.start:exc.start + 1].hex()
    where = ""
    with contextlib.suppress(OSError), open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                where = f" (line {number})"
                break
    return ValidationError(
        option, f"{path} is not UTF-8 text: byte 0x{byte}{where}; save it as UTF-8"
    )


def read_message(path: str) -> MMS:
    """An MMS from a JSON file in the API's own form."""
    try:
        text = Path(path).read_text(encoding=_ENCODING)
    except OSError as exc:
        raise ValidationError("--message", f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise _not_utf8("--message", path, exc) from None
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise ValidationError("--message", f"{path} is not JSON: {exc}") from None
    except RecursionError:
        raise ValidationError("--message", f"{path} is nested too deeply to be an MMS") from None
    try:
        return load_mms(document)
    except ValidationError as exc:
        raise exc.within(path) from None


def _header_name(cell: str) -> str:
    return cell.strip().lower().replace("-", "_").replace(" ", "_")


@frozen(kw_only=True)
class CsvLayout:
    """What a first pass over a CSV file found: where each column is, and how many rows.

    ``columns`` maps a field of :data:`CSV_COLUMNS` to its column; ``ignored`` lists header names
    that are not used; ``filled`` holds the fields with a value in every row.
    """

    path: str
    header: bool
    columns: Mapping[str, int]
    ignored: tuple[str, ...]
    rows: int
    filled: frozenset[str]


def _rows(path: str, option: str) -> Iterator[tuple[int, list[str]]]:
    """Each non-blank row with its line number; any reading problem as a ValidationError."""
    try:
        with open(path, newline="", encoding=_ENCODING) as handle:
            reader = csv.reader(handle)
            try:
                for row in reader:
                    cells = [cell.strip() for cell in row]
                    if any(cells):
                        yield reader.line_num, cells
            except UnicodeDecodeError as exc:
                raise _not_utf8(option, path, exc) from None
            except csv.Error as exc:
                raise ValidationError(option, f"{path} line {reader.line_num}: {exc}") from None
    except OSError as exc:
        raise ValidationError(option, f"cannot read {path}: {exc.strerror}") from None


def _layout(header: list[str]) -> tuple[dict[str, int], tuple[str, ...]]:
    """Columns by header name; the recipients are in the ``to`` column, else the first."""
    aliases = {alias: field for field, names in CSV_COLUMNS.items() for alias in names}
    columns: dict[str, int] = {}
    for index, cell in enumerate(header):
        field = aliases.get(_header_name(cell))
        if field is not None and field not in columns:
            columns[field] = index
    columns.setdefault("to", 0)
    used = set(columns.values())
    ignored = tuple(cell for index, cell in enumerate(header) if index not in used and cell)
    return columns, ignored


def scan_csv(path: str, option: str = "--csv") -> CsvLayout:
    """Read ``path`` once to check it and learn its layout, before anything is sent.

    A first row whose first cell has no digit is a header, and columns are found by the names of
    :data:`CSV_COLUMNS` (the recipients in ``to``, else the first column). Without a header, rows
    are ``number[,client reference]``.
    """
    header = False
    columns: dict[str, int] = {"to": 0, "client_reference": 1}
    ignored: tuple[str, ...] = ()
    rows = 0
    counts: dict[str, int] = {}
    for position, (_, cells) in enumerate(_rows(path, option)):
        if position == 0 and not any(ch.isdigit() for ch in cells[0]):
            header = True
            columns, ignored = _layout(cells)
            continue
        if not _cell(cells, columns["to"]):
            continue
        rows += 1
        for field, index in columns.items():
            if _cell(cells, index):
                counts[field] = counts.get(field, 0) + 1
    filled = frozenset(field for field, count in counts.items() if count == rows and rows)
    return CsvLayout(
        path=path, header=header, columns=columns, ignored=ignored, rows=rows, filled=filled
    )


def _cell(cells: list[str], index: int) -> str | None:
    return (cells[index] or None) if index < len(cells) else None


def csv_records(layout: CsvLayout, option: str = "--csv") -> Iterator[tuple[int, dict[str, str | None]]]:
    """Each data row of a scanned file as its line number and its fields (``None`` when empty)."""
    for position, (line, cells) in enumerate(_rows(layout.path, option)):
        if position == 0 and layout.header:
            continue
        values = {field: _cell(cells, index) for field, index in layout.columns.items()}
        if values["to"]:
            yield line, values
