"""The ``mmsjson`` command: a demo on the local fake server, sends from the shell, and the sandbox.

The API key is read from ``MMSJSON_API_KEY`` only, never from an argument that ``ps`` would show.
Exit codes a script can rely on: 0 every request accepted; 1 the API rejected at least one;
2 bad input (nothing was sent); 3 at least one outcome is unknown (the answer was lost);
130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from mmsjson._fanout import group_jobs
from mmsjson._version import __version__
from mmsjson.client import API_KEY_ENV, MMSClient
from mmsjson.errors import ApiError, MMSError, TransportError, ValidationError
from mmsjson.flavours import DEFAULT_BASE_URL
from mmsjson.flavours.json import load_mms
from mmsjson.media import MEDIA_TYPES, check_media
from mmsjson.models import (
    MMS,
    BulkJob,
    BulkOutcome,
    Image,
    Outcome,
    OutcomeStatus,
    Pdf,
    SaveResult,
    SendResult,
    Slide,
)
from mmsjson.numbers import normalize_numbers
from mmsjson.testing.network import network_option
from mmsjson.testing.server import FakeMMSServer

__all__ = ["main"]

EXIT_OK, EXIT_REJECTED, EXIT_USAGE, EXIT_UNKNOWN, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
DEMO_PARTICIPANTS = ("+1 774 555 0001", "+1 774 555 0002", "+1 774 555 0003", "+1 774 555 0004")


class _Progress:
    """A one-line progress bar on stderr, drawn only when stderr is a terminal."""

    def __init__(self, total: int, stream: TextIO = sys.stderr, width: int = 30) -> None:
        self.total, self.done, self.stream, self.width = total, 0, stream, width
        self.live = stream.isatty()

    def step(self, _: object = None) -> None:
        self.done += 1
        if self.live:
            filled = self.width * self.done // max(self.total, 1)
            bar = "#" * filled + "-" * (self.width - filled)
            self.stream.write(f"\r[{bar}] {self.done}/{self.total}")
            if self.done == self.total:
                self.stream.write("\n")
            self.stream.flush()


def _table(outcomes: Sequence[Outcome], out: TextIO) -> None:
    out.write(f"{'recipient':<14} {'outcome':<9} {'tracking id / error':<40}\n")
    out.write(f"{'-' * 14} {'-' * 9} {'-' * 40}\n")
    for outcome in outcomes:
        detail = outcome.tracking_id if outcome.status is OutcomeStatus.ACCEPTED else outcome.info
        out.write(f"{outcome.to:<14} {outcome.status.value:<9} {detail or ''}\n")


def _exit_code(outcomes: Sequence[Outcome]) -> int:
    statuses = {o.status for o in outcomes}
    if OutcomeStatus.UNKNOWN in statuses:
        return EXIT_UNKNOWN
    if OutcomeStatus.REJECTED in statuses:
        return EXIT_REJECTED
    return EXIT_OK


def _demo_mms() -> MMS:
    return MMS(
        slides=[
            Slide(text="Our new menu is out!", image=Image("https://example.com/menu.jpg")),
            Slide(text="Full menu attached", pdf=Pdf("https://example.com/menu.pdf")),
        ],
        subject="New menu",
        fallback_sms_text="Our new menu is out",
    )


async def _demo(args: argparse.Namespace, out: TextIO) -> int:
    participants = args.participants or list(DEMO_PARTICIPANTS)
    async with FakeMMSServer(throughput=args.throughput) as server:
        out.write(f"fake MMS JSON API on {server.base_url} (throughput {args.throughput}/s)\n\n")
        async with MMSClient(
            server.api_key, service_id="demo", sender="12345", base_url=server.base_url,
            throughput=args.throughput,
        ) as client:
            mms = _demo_mms()
            out.write(f"group send to {len(participants)} participants, one request each:\n")
            bar = _Progress(len(participants))
            group = await client.send_group(mms, participants, progress=bar.step)
            _table(group.outcomes, out)
            saved = await client.save(mms, name="menu")
            mms_id = saved.mms_id or server.mms_id_for(saved.tracking_id)
            out.write(f"\nsaved template: tracking id {saved.tracking_id}, mms-id {mms_id}\n")
            if mms_id is None:
                out.write("the fake server did not store the template\n")
                return EXIT_REJECTED
            again = await client.send_group(mms_id, participants, custom_texts={1: "Menu, saved"})
            out.write("send-saved to the same group:\n")
            _table(again.outcomes, out)
            stats = client.stats
            out.write(
                f"\n{stats.requests} requests, {stats.accepted} accepted, {stats.rejected} rejected, "
                f"{stats.unknown} unknown, {stats.retries} retries\n"
            )
    return _exit_code([*group.outcomes, *again.outcomes])


def _client(args: argparse.Namespace) -> MMSClient:
    key = os.environ.get(API_KEY_ENV)
    if not key:
        raise ValidationError("", f"set the {API_KEY_ENV} environment variable to your API key")
    return MMSClient(
        key, service_id=args.service_id, sender=args.sender, base_url=args.base_url,
        throughput=args.throughput,
    )


def _message(path: str) -> MMS:
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValidationError("--message", f"cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise ValidationError("--message", f"{path} is not JSON: {exc}") from None
    try:
        return load_mms(document)
    except ValidationError as exc:
        raise exc.within(path) from None


def _custom_texts(items: Sequence[str] | None) -> dict[int, str] | None:
    if not items:
        return None
    texts: dict[int, str] = {}
    for item in items:
        number, sep, text = item.partition("=")
        if not sep or not number.isdigit():
            raise ValidationError("--text", f"{item!r} must look like 1=Hello")
        texts[int(number)] = text
    return texts


def _csv_rows(path: str) -> list[list[str]]:
    """Rows of a CSV file whose first column is a phone number; a header row is skipped."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = [[cell.strip() for cell in row] for row in csv.reader(handle) if row and row[0].strip()]
    except OSError as exc:
        raise ValidationError("--csv", f"cannot read {path}: {exc.strerror}") from None
    if rows and not any(ch.isdigit() for ch in rows[0][0]):
        rows = rows[1:]
    return rows


def _participants(args: argparse.Namespace) -> list[str]:
    people = list(args.participants or [])
    if args.csv:
        people += [row[0] for row in _csv_rows(args.csv)]
    return people


def _print_result(result: SendResult | SaveResult, out: TextIO) -> None:
    out.write(json.dumps(dict(result.raw), indent=2) + "\n")


async def _send(args: argparse.Namespace, out: TextIO) -> int:
    mms = _message(args.message)
    async with _client(args) as client:
        result = await client.send(mms, args.to, client_reference=args.client_reference)
    _print_result(result, out)
    return EXIT_OK


async def _save(args: argparse.Namespace, out: TextIO) -> int:
    mms = _message(args.message)
    async with _client(args) as client:
        result = await client.save(mms, name=args.name, client_reference=args.client_reference)
    _print_result(result, out)
    return EXIT_OK


async def _send_saved(args: argparse.Namespace, out: TextIO) -> int:
    async with _client(args) as client:
        result = await client.send_saved(
            args.mms_id, args.to, custom_texts=_custom_texts(args.text), subject=args.subject,
            client_reference=args.client_reference,
        )
    _print_result(result, out)
    return EXIT_OK


def _content(args: argparse.Namespace) -> MMS | str:
    if (args.message is None) == (args.mms_id is None):
        raise ValidationError("", "give exactly one of --message FILE and --mms-id ID")
    return _message(args.message) if args.message else str(args.mms_id)


async def _journaled(
    client: MMSClient, jobs: list[BulkJob], journal: str, out: TextIO
) -> int:
    bar = _Progress(len(jobs))
    outcomes: list[Outcome] = []
    async for outcome in client.send_bulk(jobs, journal=journal, progress=bar.step):
        outcomes.append(outcome)
    outcomes.sort(key=lambda o: o.index if isinstance(o, BulkOutcome) else 0)
    _table(outcomes, out)
    replayed = sum(1 for o in outcomes if isinstance(o, BulkOutcome) and o.replayed)
    unknown = [o.to for o in outcomes if o.status is OutcomeStatus.UNKNOWN]
    out.write(f"\n{len(outcomes)} jobs, {replayed} from the journal {journal}, not sent again\n")
    if unknown:
        out.write(f"{len(unknown)} with an unknown outcome, not resent; check them: {', '.join(unknown)}\n")
    return _exit_code(outcomes)


async def _bulk(args: argparse.Namespace, out: TextIO) -> int:
    content = _content(args)
    rows = _csv_rows(args.csv)
    jobs = [
        BulkJob(
            to=row[0], mms=content if isinstance(content, MMS) else None,
            mms_id=content if isinstance(content, str) else None,
            client_reference=row[1] if len(row) > 1 and row[1] else args.client_reference,
            custom_texts=_custom_texts(args.text) if isinstance(content, str) else None,
        )
        for row in rows
    ]
    async with _client(args) as client:
        return await _journaled(client, jobs, args.journal, out)


async def _check_media(args: argparse.Namespace, out: TextIO) -> int:
    failed = False
    for url in args.urls:
        check = await check_media(url, args.kind)
        failed = failed or not check.ok
        verdict = "ok" if check.ok else "refused"
        out.write(f"{verdict:<8} {url}  [{check.status or '-'} {check.content_type or '-'} "
                  f"{check.content_length if check.content_length is not None else '-'} bytes]\n")
        for problem in check.problems:
            out.write(f"         problem: {problem}\n")
        for warning in check.warnings:
            out.write(f"         warning: {warning}\n")
    return EXIT_REJECTED if failed else EXIT_OK


async def _group(args: argparse.Namespace, out: TextIO) -> int:
    content = _content(args)
    people = _participants(args)
    if args.journal:
        unique = list(normalize_numbers(people, field="participants"))
        jobs = group_jobs(
            content, unique, client_reference=args.client_reference, custom_texts=_custom_texts(args.text)
        )
        async with _client(args) as client:
            return await _journaled(client, jobs, args.journal, out)
    async with _client(args) as client:
        bar = _Progress(len(people))
        result = await client.send_group(
            content, people, custom_texts=_custom_texts(args.text),
            client_reference=args.client_reference, progress=bar.step,
        )
    _table(result.outcomes, out)
    return _exit_code(result.outcomes)


async def _sandbox(args: argparse.Namespace, out: TextIO) -> int:
    server = FakeMMSServer(
        host=args.host, port=args.port, throughput=args.throughput,
        api_key=os.environ.get(API_KEY_ENV), record=False, network=args.network,
    )
    async with server:
        out.write(f"fake MMS JSON API listening on {server.base_url}\n")
        out.write(f"export {API_KEY_ENV}={server.api_key}\n")
        out.flush()
        await asyncio.Event().wait()
    return EXIT_OK


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mmsjson", description="Send MMS through the Sinch MMS JSON API.",
        epilog=f"The API key is read from {API_KEY_ENV}. Exit codes: 0 accepted, 1 rejected, "
        "2 bad input, 3 outcome unknown, 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"mmsjson {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="group send and save + send-saved on the local fake server")
    demo.add_argument("participants", nargs="*", help="numbers (default: four demo numbers)")
    demo.add_argument("--throughput", type=int, default=20, help="requests per second (default 20)")
    demo.set_defaults(run=_demo)

    def remote(name: str, help_text: str, run: Callable[..., Any]) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("--base-url", default=os.environ.get("MMSJSON_BASE_URL", DEFAULT_BASE_URL))
        sub.add_argument("--service-id", default=os.environ.get("MMSJSON_SERVICE_ID"))
        sub.add_argument("--sender", default=os.environ.get("MMSJSON_SENDER"), help="from number")
        sub.add_argument("--throughput", type=float, default=10, help="account limit, requests/s")
        sub.add_argument("--client-reference")
        sub.set_defaults(run=run)
        return sub

    send = remote("send", "send an MMS (sendmms)", _send)
    send.add_argument("--to", required=True)
    send.add_argument("--message", required=True, help="JSON file in the API's own form")
    save = remote("save", "store an MMS template (savemms)", _save)
    save.add_argument("--name", required=True)
    save.add_argument("--message", required=True, help="JSON file in the API's own form")
    saved = remote("send-saved", "send a stored template (sendsavedmms)", _send_saved)
    saved.add_argument("--mms-id", required=True)
    saved.add_argument("--to", required=True)
    saved.add_argument("--subject")
    saved.add_argument("--text", action="append", metavar="N=TEXT", help="replace slide N's text")
    group = remote("group", "send to a group thread, one request per participant", _group)
    group.add_argument("participants", nargs="*")
    group.add_argument("--csv", help="CSV file whose first column lists participants")
    group.add_argument("--message", help="JSON file in the API's own form")
    group.add_argument("--mms-id", help="a saved template instead of --message")
    group.add_argument("--text", action="append", metavar="N=TEXT", help="replace slide N's text")
    group.add_argument("--journal", help="SQLite file: a rerun skips who was sent to already")
    bulk = remote("bulk", "send to every number of a CSV file, resumable with a journal", _bulk)
    bulk.add_argument("--csv", required=True, help="number[,client reference] per row")
    bulk.add_argument("--message", help="JSON file in the API's own form")
    bulk.add_argument("--mms-id", help="a saved template instead of --message")
    bulk.add_argument("--text", action="append", metavar="N=TEXT", help="replace slide N's text")
    bulk.add_argument("--journal", required=True, help="SQLite file: a rerun skips who was sent to")
    media = commands.add_parser("check-media", help="check media URLs as the service will fetch them")
    media.add_argument("urls", nargs="+", metavar="URL")
    media.add_argument("--kind", choices=sorted(MEDIA_TYPES), help="the slide kind the URLs are for")
    media.set_defaults(run=_check_media)

    sandbox = commands.add_parser("sandbox", help="run the fake API server until interrupted")
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--port", type=int, default=8080)
    sandbox.add_argument("--throughput", type=int, default=None)
    sandbox.add_argument(
        "--network", type=network_option, default=None, metavar="MODEL",
        help="model a WAN path, e.g. up=60+-20,down=5,loss=1%%,handshake=300 (delays in ms; "
        "40+exp5 is a 40 ms floor plus exponential jitter; e113=3%% refuses a share at random)",
    )
    sandbox.set_defaults(run=_sandbox)
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the command line; return the exit code."""
    args = _parser().parse_args(argv)
    stream = out or sys.stdout
    err = sys.stderr
    try:
        code: int = asyncio.run(args.run(args, stream))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except ValidationError as exc:
        err.write(f"mmsjson: invalid input: {exc}\n")
        return EXIT_USAGE
    except ApiError as exc:
        err.write(f"mmsjson: the API refused the request: {exc}\n")
        return EXIT_REJECTED
    except TransportError as exc:
        err.write(f"mmsjson: {exc}\n")
        return EXIT_UNKNOWN if exc.outcome_unknown else EXIT_REJECTED
    except MMSError as exc:
        err.write(f"mmsjson: {exc}\n")
        return EXIT_REJECTED
    return code
