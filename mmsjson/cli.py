"""The ``mmsjson`` command: a demo on the local fake server, sends from the shell, and the sandbox.

The API key is read from ``MMSJSON_API_KEY`` only, never from an argument that ``ps`` would show.
Exit codes a script can rely on: 0 every request accepted; 1 the API rejected at least one;
2 bad input (nothing was sent); 3 at least one outcome is unknown (the answer was lost);
4 the journal is in use by another run (nothing was sent; run again when it has finished);
70 an unexpected error inside mmsjson (a bug); 74 the output (stdout, --report, the journal) could
not be written; 130 interrupted (Ctrl-C or SIGTERM). Every error is one line on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import json
import math
import os
import shlex
import signal
import sqlite3
import sys
import textwrap
from array import array
from collections.abc import AsyncGenerator, Callable, Iterator, Sequence
from typing import Any, NoReturn, TextIO, cast
from urllib.parse import quote, urlsplit

import aiohttp

from mmsjson._cli_input import (
    CsvLayout,
    csv_records,
    custom_texts,
    expiry,
    from_mask,
    read_message,
    resolve_env,
    scan_csv,
    server_rate,
    throughput,
)
from mmsjson._cli_output import RunReport, masked, resume_command, safe, silence
from mmsjson._fanout import group_jobs
from mmsjson._version import __version__
from mmsjson.client import API_KEY_ENV, MMSClient
from mmsjson.errors import (
    ApiError,
    JournalBusy,
    MMSError,
    StoreError,
    TransportError,
    ValidationError,
)
from mmsjson.flavours import DEFAULT_BASE_URL
from mmsjson.flavours.choose import FLAVOUR_NAMES, SERVICE_PLAN_ENV, SMS_REST_TOKEN_ENV, flavour_from_env
from mmsjson.journal import BulkJournal
from mmsjson.media import MEDIA_TYPES, check_media
from mmsjson.models import (
    MMS,
    BulkJob,
    Image,
    Outcome,
    OutcomeStatus,
    Pdf,
    SaveResult,
    SendResult,
    Slide,
)
from mmsjson.numbers import normalize_numbers
from mmsjson.testing.demo_flavours import three_flavours
from mmsjson.testing.network import network_option
from mmsjson.testing.server import FAULT_KINDS, FakeMMSServer, Fault

__all__ = ["main"]

EXIT_OK, EXIT_REJECTED, EXIT_USAGE, EXIT_UNKNOWN, EXIT_BUSY = 0, 1, 2, 3, 4
EXIT_INTERNAL, EXIT_OUTPUT, EXIT_INTERRUPTED = 70, 74, 130
DEBUG_ENV = "MMSJSON_DEBUG"
REDIS_ENV, REDIS_KEY_ENV = "MMSJSON_REDIS_URL", "MMSJSON_REDIS_KEY"
DEMO_PARTICIPANTS = ("+1 774 555 0001", "+1 774 555 0002", "+1 774 555 0003", "+1 774 555 0004")

EXIT_CODES = f"""exit codes:
  0    every request accepted
  1    the API rejected at least one request
  2    bad input (an option, a file, a damaged journal); nothing was sent
  3    at least one outcome is unknown (the answer was lost); it was not resent
  {EXIT_BUSY}    the journal is in use by another run; nothing was sent; run again when it has finished
  70   an unexpected error inside mmsjson (a bug; {DEBUG_ENV}=1 shows the traceback)
  74   the output (stdout, --report, the journal) could not be written: a closed pipe, a full
       disk; a run stops as on Ctrl-C and prints the command that resumes it
  130  interrupted (Ctrl-C or SIGTERM)"""

ENVIRONMENT = f"""environment:
  {API_KEY_ENV}     the API key (required; never an option, which ps would show)
  MMSJSON_BASE_URL    default of --base-url
  MMSJSON_SERVICE_ID  default of --service-id
  MMSJSON_SENDER      default of --sender
  {SMS_REST_TOKEN_ENV}, {SERVICE_PLAN_ENV}  the credentials of --flavour sms-rest
  {REDIS_ENV}, {REDIS_KEY_ENV}  defaults of --redis and --redis-key
  {DEBUG_ENV}       set to 1 to see the traceback of an unexpected error"""


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows each option's default (when it has one) and keeps the epilog's line breaks."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if action.default in (None, False, [], argparse.SUPPRESS) or "%(default)" in text:
            return text
        return super()._get_help_string(action)

    def _split_lines(self, text: str, width: int) -> list[str]:
        """Wrap help text without breaking an option's name at its hyphens."""
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr and exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _table(outcomes: Sequence[Outcome], out: TextIO) -> None:
    out.write(f"{'recipient':<14} {'outcome':<9} {'tracking id / error':<40}\n")
    out.write(f"{'-' * 14} {'-' * 9} {'-' * 40}\n")
    for outcome in outcomes:
        detail = outcome.tracking_id if outcome.status is OutcomeStatus.ACCEPTED else outcome.info
        out.write(safe(f"{outcome.to:<14} {outcome.status.value:<9} {detail or ''}") + "\n")


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
            group = await client.send_group(mms, participants)
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


# -- sending ------------------------------------------------------------------------------------------

_FLAGS = {
    "service_id": ("--service-id", "MMSJSON_SERVICE_ID"),
    "sender": ("--sender", "MMSJSON_SENDER"),
}


def _require(args: argparse.Namespace, dest: str, column: bool = False) -> None:
    """Refuse a run without ``--sender`` / ``--service-id``: every request would be rejected.

    SMS REST batches carry no service id (the service plan is in the URL), so none is required.
    """
    if dest == "service_id" and getattr(args, "flavour", "json") == "sms-rest":
        return
    if getattr(args, dest) is None:
        flag, variable = _FLAGS[dest]
        where = f", or fill the {dest} column of every row" if column else ""
        raise ValidationError(flag, f"is required: give {flag} or set {variable}{where}")


def _client(args: argparse.Namespace) -> MMSClient:
    redis = args.redis or os.environ.get(REDIS_ENV) or None
    redis_key = args.redis_key or os.environ.get(REDIS_KEY_ENV) or None
    if redis is not None and redis_key is None:
        raise ValidationError("--redis-key", f"is required with --redis: give it or set {REDIS_KEY_ENV}")
    limit: dict[str, Any] = {"throughput": args.throughput, "shared": redis, "key": redis_key}
    if args.flavour != "json":
        return MMSClient(
            flavour=flavour_from_env(args.flavour, base_url=args.base_url),
            service_id=args.service_id, sender=args.sender, **limit,
        )
    key = (os.environ.get(API_KEY_ENV) or "").strip()
    if not key:
        raise ValidationError("", f"set the {API_KEY_ENV} environment variable to your API key")
    return MMSClient(
        key, service_id=args.service_id, sender=args.sender,
        base_url=args.base_url or DEFAULT_BASE_URL, **limit,
    )


def _secrets() -> tuple[str, ...]:
    """The keys the command may send (masked wherever an answer echoes one back)."""
    values = (os.environ.get(API_KEY_ENV), os.environ.get(SMS_REST_TOKEN_ENV))
    return tuple(value.strip() for value in values if value and value.strip())


def _print_result(result: SendResult | SaveResult, out: TextIO) -> None:
    out.write(json.dumps(masked(dict(result.raw), _secrets()), indent=2) + "\n")


async def _send(args: argparse.Namespace, out: TextIO) -> int:
    mms = read_message(args.message)
    _require(args, "service_id")
    _require(args, "sender")
    async with _client(args) as client:
        result = await client.send(
            mms, args.to, from_mask=args.from_mask, client_reference=args.client_reference
        )
    _print_result(result, out)
    return EXIT_OK


async def _save(args: argparse.Namespace, out: TextIO) -> int:
    mms = read_message(args.message)
    async with _client(args) as client:
        result = await client.save(mms, name=args.name, client_reference=args.client_reference)
        base_url = client.base_url
    sandbox_id = None if result.mms_id else await _sandbox_template_id(base_url, result.tracking_id)
    _print_result(result, out)
    if sandbox_id is not None:
        _say(f"template id (mms-id): {sandbox_id} (told by the sandbox; a real account sends it in "
             "the N003 postback for this tracking id: see PostbackReceiver.template_id)")
    return EXIT_OK


async def _sandbox_template_id(base_url: str, tracking_id: str) -> str | None:
    """The template id a local sandbox gave a save, or ``None`` for any other server."""
    parts = urlsplit(base_url)
    if parts.scheme != "http" or parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        return None
    url = f"{parts.scheme}://{parts.netloc}/_fake/templates/{quote(tracking_id, safe='')}"
    try:
        async with aiohttp.ClientSession() as session, session.get(
            url, timeout=aiohttp.ClientTimeout(total=2)
        ) as answer:
            found = await answer.json() if answer.status == 200 else {}
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return None
    mms_id = found.get("mms-id") if isinstance(found, dict) else None
    return mms_id if isinstance(mms_id, str) else None


async def _send_saved(args: argparse.Namespace, out: TextIO) -> int:
    _require(args, "service_id")
    _require(args, "sender")
    async with _client(args) as client:
        result = await client.send_saved(
            args.mms_id, args.to, from_mask=args.from_mask, client_reference=args.client_reference,
            **_overrides(args, args.mms_id),
        )
    _print_result(result, out)
    return EXIT_OK


def _content(args: argparse.Namespace) -> MMS | str:
    return read_message(args.message) if args.message is not None else str(args.mms_id)


_OVERRIDE_FLAGS = {
    "custom_texts": "--custom-text", "subject": "--subject",
    "fallback_sms_text": "--fallback-sms-text", "expires_at": "--expires-at",
}


def _overrides(args: argparse.Namespace, content: MMS | str) -> dict[str, Any]:
    """The saved template's overrides given on the command line (``--subject``...)."""
    given = {
        "custom_texts": custom_texts(args.custom_text), "subject": args.subject,
        "fallback_sms_text": args.fallback_sms_text, "expires_at": args.expires_at,
    }
    given = {name: value for name, value in given.items() if value is not None}
    if given and isinstance(content, MMS):
        flag = _OVERRIDE_FLAGS[next(iter(given))]
        raise ValidationError(flag, "applies to a saved template (--mms-id) only; a --message file "
                                    "carries its own")
    return given


def _check_job(client: MMSClient, job: BulkJob) -> None:
    """Build the first job's request once: what every job shares (content, sender, overrides) is
    checked before anything is sent, instead of giving every job the same rejection.

    A bad number is that row's own problem; the run reports it as that row's rejection.
    """
    routing: dict[str, Any] = {
        "service_id": job.service_id or client.service_id, "sender": job.sender or client.sender,
        "to_displayonly": list(job.to_displayonly) or None, "from_mask": job.from_mask,
        "client_reference": job.client_reference,
    }
    try:
        if job.mms is not None:
            client.flavour.send(job.mms, job.to, **routing)
        else:
            assert job.mms_id is not None
            client.flavour.send_saved(job.mms_id, job.to, **routing, **job.template_overrides)
    except ValidationError as exc:
        if exc.path.split("[")[0].split(".")[0] not in ("to", "to_displayonly"):
            raise


def _interrupt_handler(task: asyncio.Task[Any] | None) -> Callable[[], None]:
    """On the first Ctrl-C (or SIGTERM), stop starting requests and wait for those on the wire; a
    second stops at once. Returns the function that removes the handler."""
    if task is None:
        return lambda: None
    loop = asyncio.get_running_loop()
    on_term = signal.getsignal(signal.SIGTERM)

    def remove() -> None:
        loop.remove_signal_handler(signal.SIGINT)
        loop.remove_signal_handler(signal.SIGTERM)
        with contextlib.suppress(TypeError, ValueError):  # the loop leaves SIGTERM at SIG_DFL
            signal.signal(signal.SIGTERM, on_term)

    def first() -> None:
        remove()
        # sys.stderr at this moment: while the live display runs, rich's proxy prints above it.
        _say("\nstopping: waiting for the requests already sent (Ctrl-C again quits at once, "
             "leaving their outcomes unknown)")
        task.cancel()

    try:
        loop.add_signal_handler(signal.SIGINT, first)
        loop.add_signal_handler(signal.SIGTERM, first)
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or Windows
        return lambda: None
    return remove


def _stop_for_output(report: RunReport, task: asyncio.Task[Any] | None) -> None:
    """Stop a run whose output (stdout or ``--report``) cannot be written, as the first Ctrl-C does."""
    _say(f"\nmmsjson: {report.output_error}; stopping: waiting for the requests already sent")
    if task is not None:
        task.cancel()


def _same_file(one: str, other: str) -> bool:
    if os.path.realpath(one) == os.path.realpath(other):
        return True
    try:
        return os.path.samefile(one, other)
    except OSError:  # either does not exist (yet)
        return False


def _check_report(args: argparse.Namespace) -> None:
    """Refuse a ``--report`` that names an input: opening it for writing would empty the CSV
    file (nobody sent to), or wreck the journal (everyone sent to twice on the next run)."""
    inputs = [("--csv", getattr(args, "csv", None)), ("--message", getattr(args, "message", None))]
    journal = getattr(args, "journal", None)
    if journal:
        inputs += [("--journal", journal), ("--journal's lock", f"{journal}.lock"),
                   ("--journal's log", f"{journal}-wal"), ("--journal's shared memory", f"{journal}-shm")]
    for option, path in inputs:
        if path is not None and _same_file(args.report, path):
            raise ValidationError("--report", f"{args.report} is the {option} file; writing the "
                                  "report would overwrite it: give another file")


@contextlib.contextmanager
def _report_file(path: str | None) -> Iterator[TextIO | None]:
    if path is None:
        yield None
        return
    try:
        handle = open(path, "w", newline="", encoding="utf-8", errors="backslashreplace")  # noqa: SIM115
    except OSError as exc:
        raise ValidationError("--report", f"cannot write {path}: {exc.strerror}") from None
    try:
        yield handle
    finally:
        with contextlib.suppress(OSError):  # RunReport.close_report flushed it and noted a failure
            handle.close()


async def _run(
    client: MMSClient,
    jobs: Any,
    *,
    args: argparse.Namespace,
    out: TextIO,
    total: int,
    title: str,
    lines: Sequence[int] | None = None,
) -> int:
    """Send ``jobs`` as a bulk run with live progress, a summary, and a clean stop on Ctrl-C."""
    err = sys.stderr
    if args.report is not None:
        _check_report(args)
    journal = BulkJournal(args.journal) if args.journal else None
    try:
        with _report_file(args.report) as report_file:
            report = RunReport(
                title=title, total=total, out=out, err=err, throughput=args.throughput,
                json_lines=args.json, report=report_file, report_path=args.report, lines=lines,
                secrets=_secrets(),
            )
            task = asyncio.current_task()
            remove_handler = _interrupt_handler(task)
            report.on_output_error = lambda: _stop_for_output(report, task)
            interrupted = False
            report.start()
            try:
                run = client.send_bulk(jobs, progress=report, journal=journal)
                run = cast(AsyncGenerator[Any, None], run)
                async with contextlib.aclosing(run) as outcomes:
                    async for _ in outcomes:
                        pass
            except asyncio.CancelledError:
                interrupted = True
            except sqlite3.Error as exc:  # the journal could not be written (a full disk): the
                # run ended as on Ctrl-C, requests on the wire awaited
                interrupted = True
                report.output_error = f"cannot write the journal {args.journal}: {exc}"
            finally:
                remove_handler()
                report.on_output_error = None
                report.stop()
            report.close_report()
            report.summary(interrupted=interrupted, journal=args.journal)
            if report.output_error is not None:
                _fail(report.output_error, EXIT_OUTPUT)
            elif not interrupted:
                return report.exit_code()
            recorded = await journal.counts() if journal is not None else None
            report.resume(args.journal, recorded, resume_command(args.argv))
            return EXIT_OUTPUT if report.output_error is not None else EXIT_INTERRUPTED
    finally:
        if journal is not None:
            journal.close()


def _csv_participants(path: str) -> list[str]:
    layout = scan_csv(path)
    return [str(values["to"]) for _, values in csv_records(layout)]


async def _group(args: argparse.Namespace, out: TextIO) -> int:
    content = _content(args)
    overrides = _overrides(args, content)
    people = list(args.participants or [])
    if args.csv:
        people += _csv_participants(args.csv)
    if not people:
        raise ValidationError("participants", "a group needs at least one: give numbers or --csv FILE")
    unique = list(normalize_numbers(people, field="participants"))
    _require(args, "service_id")
    _require(args, "sender")
    jobs = group_jobs(
        content, unique, client_reference=args.client_reference, from_mask=args.from_mask, **overrides
    )
    async with _client(args) as client:
        _check_job(client, jobs[0])
        return await _run(client, jobs, args=args, out=out, total=len(jobs), title="group")


def _bulk_job(
    args: argparse.Namespace, content: MMS | str, overrides: dict[str, Any], values: dict[str, str | None]
) -> BulkJob:
    return BulkJob(
        to=str(values["to"]),
        mms=content if isinstance(content, MMS) else None,
        mms_id=content if isinstance(content, str) else None,
        client_reference=values.get("client_reference") or args.client_reference,
        from_mask=values.get("from_mask") or args.from_mask,
        service_id=values.get("service_id"),
        sender=values.get("sender"),
        **overrides,
    )


async def _bulk(args: argparse.Namespace, out: TextIO) -> int:
    content = _content(args)
    overrides = _overrides(args, content)
    layout: CsvLayout = scan_csv(args.csv)
    if layout.rows == 0:
        raise ValidationError("--csv", f"{args.csv} has no row with a number")
    for dest in ("service_id", "sender"):
        if dest not in layout.filled:
            _require(args, dest, column=True)
    lines: array[int] = array("q")

    def jobs() -> Iterator[BulkJob]:
        for line, values in csv_records(layout):
            lines.append(line)
            yield _bulk_job(args, content, overrides, values)

    first = next(csv_records(layout))[1]
    if layout.ignored:
        _say(f"mmsjson: columns not used: {', '.join(layout.ignored)}")
    async with _client(args) as client:
        _check_job(client, _bulk_job(args, content, overrides, first))
        return await _run(
            client, jobs(), args=args, out=out, total=layout.rows, title="bulk", lines=lines
        )


async def _check_media(args: argparse.Namespace, out: TextIO) -> int:
    failed = False
    for url in args.urls:
        check = await check_media(url, args.kind)
        failed = failed or not check.ok
        verdict = "ok" if check.ok else "refused"
        out.write(safe(f"{verdict:<8} {url}  [{check.status or '-'} {check.content_type or '-'} "
                       f"{check.content_length if check.content_length is not None else '-'} bytes]") + "\n")
        for problem in check.problems:
            out.write(safe(f"         problem: {problem}") + "\n")
        for warning in check.warnings:
            out.write(safe(f"         warning: {warning}") + "\n")
    return EXIT_REJECTED if failed else EXIT_OK


async def _demo_flavours(args: argparse.Namespace, out: TextIO) -> int:
    return EXIT_OK if await three_flavours(out) == 0 else EXIT_REJECTED


def _fault(text: str) -> tuple[str, int]:
    kind, _, count = text.partition(":")
    if kind not in FAULT_KINDS or (count and not (count.isdigit() and int(count) >= 1)):
        raise argparse.ArgumentTypeError(f"{text!r}: give KIND[:COUNT], KIND one of {', '.join(FAULT_KINDS)}")
    return kind, int(count or 1)


def _postback_url(text: str) -> str:
    if urlsplit(text).scheme not in ("http", "https") or not urlsplit(text).hostname:
        raise argparse.ArgumentTypeError(f"{text!r} is not an http(s) URL")
    return text


def _port(text: str) -> int:
    if not (text.isdigit() and int(text) <= 65535):
        raise argparse.ArgumentTypeError(f"{text!r}: give a port from 0 to 65535 (0 picks a free one)")
    return int(text)


def _seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds >= 0):
        raise argparse.ArgumentTypeError(f"{text!r}: give a finite number of seconds, 0 or more")
    return seconds


def _flavour_name(name: str) -> str:
    return name.replace("_", "-").lower()


async def _sandbox(args: argparse.Namespace, out: TextIO) -> int:
    if os.environ.get(API_KEY_ENV):
        _say(f"mmsjson sandbox: {API_KEY_ENV} from this shell is not used; the sandbox made its own "
             "key (export it as shown below for the sandbox's clients)")
    def log(line: str) -> None:
        out.write(line + "\n")
        out.flush()

    server = FakeMMSServer(
        host=args.host, port=args.port, throughput=args.throughput, record=False,
        postback_url=args.postback_url, postback_delay=args.postback_delay,
        postback_retry_delay=args.postback_retry_delay, log=None if args.quiet else log,
        network=args.network,
    )
    for kind, count in args.fault or ():
        server.inject(Fault(kind, count))
    try:
        await server.start()
    except OSError as exc:
        raise ValidationError("--port", f"cannot listen on {args.host}:{args.port}: {exc.strerror}") from None
    try:
        out.write(f"fake MMS JSON API listening on {server.base_url} (Ctrl-C stops it)\n")
        out.write(f"export {API_KEY_ENV}={shlex.quote(server.api_key)}\n")
        out.write(f"export MMSJSON_BASE_URL={shlex.quote(server.base_url)}\n")
        out.write(
            f"# the other flavours: --flavour xml --base-url {server.xml_url}, or --flavour sms-rest "
            f"--base-url {server.sms_rest_url} with\n"
            f"export {SMS_REST_TOKEN_ENV}={shlex.quote(server.api_key)} "
            f"{SERVICE_PLAN_ENV}={shlex.quote(server.service_plan_id)}\n"
        )
        out.flush()
        await asyncio.Event().wait()
    finally:
        await server.stop()
    return EXIT_OK


# -- the parser ---------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="mmsjson", description="Send MMS through the Sinch MMS JSON API.",
        formatter_class=_Formatter, epilog=f"{ENVIRONMENT}\n\n{EXIT_CODES}",
    )
    parser.add_argument("--version", action="version", version=f"mmsjson {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, summary: str, description: str, run: Callable[..., Any],
                epilog: str = EXIT_CODES) -> argparse.ArgumentParser:
        sub = commands.add_parser(
            name, help=summary, description=textwrap.fill(description, 90), epilog=epilog,
            formatter_class=_Formatter,
        )
        sub.set_defaults(run=run)
        return sub

    demo = command(
        "demo", "group send and save + send-saved on the local fake server",
        "Start the embedded fake API, send an MMS to a group, save it as a template and send the "
        "template to the same group, showing every participant's outcome. Needs no account.", _demo,
    )
    demo.add_argument("participants", nargs="*", metavar="NUMBER",
                      help="participants (default: four demo numbers)")
    demo.add_argument("--throughput", type=server_rate, default=20, metavar="N",
                      help="the fake server's limit and the client's rate, requests per second")

    command(
        "demo-flavours", "one message through the JSON, XML and SMS REST flavours on the fake server",
        "Start the embedded fake API and send the same MMS to three people through each wire "
        "flavour: the MMS JSON API, the older XML API and an SMS REST mt_media batch.", _demo_flavours,
    )

    def remote(name: str, summary: str, description: str, run: Callable[..., Any]) -> argparse.ArgumentParser:
        sub = command(name, summary, description, run, epilog=f"{ENVIRONMENT}\n\n{EXIT_CODES}")
        sub.add_argument("--flavour", choices=FLAVOUR_NAMES, default="json", type=_flavour_name,
                         help="the API to send through: the MMS JSON API, the older XML API, or "
                         f"SMS REST mt_media batches (credentials: ${SMS_REST_TOKEN_ENV} and "
                         f"${SERVICE_PLAN_ENV})")
        sub.add_argument("--base-url", metavar="URL",
                         help=f"API endpoint (default: $MMSJSON_BASE_URL, else {DEFAULT_BASE_URL})")
        sub.add_argument("--service-id", metavar="ID",
                         help="service (campaign) id (default: $MMSJSON_SERVICE_ID)")
        sub.add_argument("--sender", metavar="NUMBER",
                         help="from: a short code or long number (default: $MMSJSON_SENDER)")
        sub.add_argument("--throughput", type=throughput, default=10, metavar="N",
                         help="the account's limit, requests per second")
        sub.add_argument("--redis", metavar="URL",
                         help="share --throughput with every process using this Redis and --redis-key, "
                         f"e.g. redis://host:6379/0 (default: ${REDIS_ENV}; needs mmsjson[redis])")
        sub.add_argument("--redis-key", metavar="KEY",
                         help=f"the shared limit's name, e.g. the account id (default: ${REDIS_KEY_ENV})")
        sub.add_argument("--client-reference", metavar="TEXT",
                         help="your reference, returned in postbacks (at most 64 characters)")
        return sub

    def mask(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--from-mask", type=from_mask, metavar="TEXT",
                         help="alphanumeric sender shown instead of the number (at most 50 characters)")

    def template_overrides(sub: argparse.ArgumentParser, only: str = "") -> None:
        sub.add_argument("--subject", metavar="TEXT", help=f"replace the template's subject{only}")
        sub.add_argument("--fallback-sms-text", metavar="TEXT",
                         help=f"replace the template's fallback SMS text{only}")
        sub.add_argument("--expires-at", type=expiry, metavar="WHEN",
                         help="give up delivering after this ISO 8601 time with timezone, e.g. "
                         f"2026-12-01T09:00:00Z (at most 3 days ahead){only}")
        sub.add_argument("--custom-text", "--text", dest="custom_text", action="append", metavar="N=TEXT",
                         help=f"replace slide N's text (from 1); repeat for more slides{only}")

    def content(sub: argparse.ArgumentParser) -> None:
        which = sub.add_mutually_exclusive_group(required=True)
        which.add_argument("--message", metavar="FILE",
                           help="JSON file in the API's own form (exclusive with --mms-id)")
        which.add_argument("--mms-id", metavar="ID",
                           help="send a saved template instead (exclusive with --message)")

    def run_output(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--report", metavar="FILE.csv",
                         help="write every row's outcome to this CSV file")
        sub.add_argument("--json", action="store_true",
                         help="print every outcome, then a summary, as JSON lines on stdout "
                         "(progress goes to stderr)")

    send = remote("send", "send an MMS to one number (sendmms)",
                  "Send the MMS of a JSON file to one number and print the API's answer.", _send)
    send.add_argument("--to", required=True, metavar="NUMBER", help="the recipient")
    send.add_argument("--message", required=True, metavar="FILE", help="JSON file in the API's own form")
    mask(send)

    save = remote("save", "store an MMS template (savemms)",
                  "Store the MMS of a JSON file as a template; its mms-id arrives in a postback.", _save)
    save.add_argument("--name", required=True, help="the template's name")
    save.add_argument("--message", required=True, metavar="FILE", help="JSON file in the API's own form")

    saved = remote("send-saved", "send a stored template to one number (sendsavedmms)",
                   "Send a saved template to one number, optionally replacing its subject, fallback "
                   "text or slide texts, and print the API's answer.", _send_saved)
    saved.add_argument("--mms-id", required=True, metavar="ID", help="the template's mms-id")
    saved.add_argument("--to", required=True, metavar="NUMBER", help="the recipient")
    mask(saved)
    template_overrides(saved)

    group = remote("group", "send to a group thread, one request per participant",
                   "Send to every participant of a group thread: one request each, the others shown "
                   "as display-only. Shows live progress on a terminal, then a summary listing the "
                   "participants not accepted.", _group)
    group.add_argument("participants", nargs="*", metavar="NUMBER", help="participants")
    group.add_argument("--csv", metavar="FILE",
                       help="CSV file listing participants (column 'to', else the first)")
    content(group)
    mask(group)
    template_overrides(group, " (with --mms-id)")
    group.add_argument("--journal", metavar="FILE",
                       help="SQLite file: a rerun (or a resumed run) sends nobody twice")
    run_output(group)

    bulk = remote("bulk", "send to every number of a CSV file, resumable with a journal",
                  "Send to every row of a CSV file. Without a header, rows are number[,client "
                  "reference]; with a header, the columns to (or the first), client_reference, "
                  "from_mask, service_id and sender are read by name, an empty cell meaning the "
                  "option's value. Shows live progress on a terminal, then a summary listing the rows "
                  "not accepted. Ctrl-C stops cleanly and prints the command that resumes the run.",
                  _bulk)
    bulk.add_argument("--csv", required=True, metavar="FILE", help="the rows to send to")
    content(bulk)
    mask(bulk)
    template_overrides(bulk, " (with --mms-id)")
    bulk.add_argument("--journal", required=True, metavar="FILE",
                      help="SQLite file: a rerun skips who was sent to and never resends an unknown outcome")
    run_output(bulk)

    media = command("check-media", "check media URLs as the service will fetch them",
                    "Fetch each URL as the service will and say whether it would be refused.",
                    _check_media)
    media.add_argument("urls", nargs="+", metavar="URL", help="media URLs")
    media.add_argument("--kind", choices=sorted(MEDIA_TYPES), help="the slide kind the URLs are for")

    sandbox = command(
        "sandbox", "run the fake API server until interrupted",
        "Run the local fake API until Ctrl-C. It makes its own API key (a key exported in this shell "
        "is not used) and prints the export lines for MMSJSON_API_KEY and MMSJSON_BASE_URL.", _sandbox,
    )
    sandbox.add_argument("--host", default="127.0.0.1", help="address to listen on")
    sandbox.add_argument("--port", type=_port, default=8080, help="port to listen on (0 picks a free one)")
    sandbox.add_argument("--throughput", type=server_rate, metavar="N",
                         help="refuse requests over N per second with E113 (default: no limit)")
    sandbox.add_argument("--postback-url", type=_postback_url, metavar="URL",
                         help="send the postbacks the service would to URL: N101 and N102 for each "
                         "accepted send, N003 with the template id for each save")
    sandbox.add_argument("--postback-delay", type=_seconds, default=1.0, metavar="SECONDS",
                         help="seconds from an accepted request to its postbacks")
    sandbox.add_argument("--postback-retry-delay", type=_seconds, default=5.0, metavar="SECONDS",
                         help="seconds before a postback not answered 200 is sent again (at most 5 "
                         "times; the service waits about five minutes)")
    sandbox.add_argument("--fault", type=_fault, action="append", metavar="KIND[:COUNT]",
                         help="answer the next COUNT requests with a fault: e113, status (HTTP 503), "
                         "drop (accept, then close without answering) or delay (2 s); repeatable. "
                         "Faults can also be queued over HTTP: POST /_fake/faults "
                         '{"kind": "e113", "count": 3}')
    sandbox.add_argument("--quiet", action="store_true", help="do not print a line per request")
    sandbox.add_argument(
        "--network", type=network_option, metavar="MODEL",
        help="model a WAN path, e.g. up=60+-20,down=5,loss=1%%,handshake=300 (delays in ms; "
        "40+exp5 is a 40 ms floor plus exponential jitter; e113=3%% refuses a share at random)",
    )
    return parser


def _say(line: str) -> None:
    """Write ``line`` to stderr; when stderr is closed or broken (``2>&-``, ``2>&1 | head``), say
    nothing: the exit code still tells."""
    stream = sys.stderr
    try:
        stream.write(safe(line) + "\n")
        stream.flush()
    except (OSError, ValueError):
        silence(stream)


def _fail(message: str, code: int) -> int:
    _say(f"mmsjson: {message}")
    return code


#: Why writing to stdout fails when the pipe is closed or the disk full: the reader went away
#: (``| head -1``), no space, over quota, or the device failed.
_OUTPUT_ERRNOS = frozenset({errno.EPIPE, errno.ENOSPC, errno.EDQUOT, errno.EIO})


def _unexpected(exc: Exception) -> int:
    if os.environ.get(DEBUG_ENV) == "1":
        raise exc
    return _fail(f"unexpected {type(exc).__name__}: {exc} (a bug in mmsjson; {DEBUG_ENV}=1 shows "
                 "the traceback)", EXIT_INTERNAL)


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the command line; return the exit code."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if sys.stderr is None:  # started with 2>&-
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - for the life of the process
    args = _parser().parse_args(arguments)
    args.argv = arguments
    resolve_env(args)
    if out is None:
        with contextlib.suppress(AttributeError, ValueError):
            sys.stdout.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
    if out is None and sys.stdout is None:  # started with >&-: no outcome could be shown
        return _fail("cannot write standard output: it is closed; nothing was sent", EXIT_OUTPUT)
    stream = out or sys.stdout
    on_term = None
    with contextlib.suppress(ValueError):  # not the main thread
        on_term = signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM is a Ctrl-C
    try:
        code: int = asyncio.run(args.run(args, stream))
    except KeyboardInterrupt:
        return _fail("interrupted", EXIT_INTERRUPTED)
    except OSError as exc:
        if exc.errno not in _OUTPUT_ERRNOS:
            return _unexpected(exc)
        silence(stream)
        return _fail(f"cannot write standard output: {exc.strerror}", EXIT_OUTPUT)
    except ValidationError as exc:
        return _fail(f"invalid input: {exc}", EXIT_USAGE)
    except JournalBusy as exc:
        return _fail(f"the journal {exc.path} is in use by another run ({exc.holder}); nothing was "
                     "sent; run again when it has finished", EXIT_BUSY)
    except StoreError as exc:
        return _fail(f"cannot use the journal {exc.path}: {exc.problem}; nothing was sent", EXIT_USAGE)
    except ApiError as exc:
        return _fail(f"the API refused the request: {exc}", EXIT_REJECTED)
    except TransportError as exc:
        return _fail(str(exc), EXIT_UNKNOWN if exc.outcome_unknown else EXIT_REJECTED)
    except MMSError as exc:
        return _fail(str(exc), EXIT_REJECTED)
    except Exception as exc:
        return _unexpected(exc)
    finally:
        if on_term is not None:
            signal.signal(signal.SIGTERM, on_term)
    return code
