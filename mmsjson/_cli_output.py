"""How the ``mmsjson`` command shows a group or bulk run: live progress, a summary, a full report.

On a terminal the run is drawn live with :mod:`rich` (done/total, rate, time left, counts by
outcome). Anywhere else (a pipe, a CI log) the output is plain lines without control codes: a
start line, a progress line every few seconds, and the summary. The summary lists only the rows
that were not accepted; every row goes to ``--report FILE.csv`` and, with ``--json``, to stdout as
JSON lines (one object per outcome, then one summary object).

If stdout or the report cannot be written (a closed pipe, a full disk), the report says so once,
goes on on stderr, and calls ``on_output_error`` so that the run can stop as on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shlex
import shutil
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from mmsjson.flavours.base import redact
from mmsjson.models import BulkOutcome, BulkProgress, OutcomeStatus

__all__ = ["KEY_MASK", "RunReport", "masked", "resume_command", "safe", "silence"]

#: How many rows that were not accepted the summary lists; the rest are in the report.
SHOWN_FAILURES = 50
REPORT_COLUMNS = (
    "index", "line", "to", "status", "tracking_id", "error_code", "error", "attempts", "replayed",
)


def safe(text: object) -> str:
    """``text`` printable on any stream: a lone surrogate (from undecodable input) is escaped."""
    return str(text).encode("utf-8", "backslashreplace").decode("utf-8")


KEY_MASK = "[api-key]"


def masked(value: Any, secrets: Sequence[str]) -> Any:
    """``value`` (text, or dicts and lists of it) with each of ``secrets`` masked: an answer that
    echoes the key (a tracking id, status details) must not bring it into the output."""
    for secret in secrets:
        value = redact(value, secret, KEY_MASK)
    return value


def silence(stream: TextIO) -> None:
    """Point ``stream``'s file descriptor at the null device after a write to it failed, so that
    Python's flush of it at exit does not fail again (a closed pipe, a full disk)."""
    with contextlib.suppress(OSError, ValueError):
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, stream.fileno())
        finally:
            os.close(null)


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def resume_command(argv: Sequence[str]) -> str:
    """The command line that ran this process, to run again: ``python -m mmsjson ...`` or ``mmsjson ...``."""
    script = sys.argv[0] if sys.argv else ""
    name = os.path.basename(script)
    if not script or name in ("__main__.py", "-m", "-c"):
        program = [sys.executable, "-m", "mmsjson"]
    else:
        found = shutil.which(name)
        same = found is not None and os.path.realpath(found) == os.path.realpath(script)
        program = [name if same else script]
    return shlex.join([*program, *argv])


class RunReport:
    """The progress callback of one group or bulk run, and what it prints.

    ``out`` gets the summary (and JSON lines with ``json_lines``, when the display and summary go
    to ``err`` instead). ``lines`` maps a job's index to its CSV line. ``secrets`` (the keys in
    use) are masked in every row. ``clock`` is injectable.
    """

    def __init__(
        self,
        *,
        title: str,
        total: int,
        out: TextIO,
        err: TextIO,
        throughput: float | None,
        json_lines: bool = False,
        report: TextIO | None = None,
        report_path: str | None = None,
        lines: Sequence[int] | None = None,
        secrets: Sequence[str] = (),
        clock: Callable[[], float] = time.monotonic,
        plain_every: float = 10.0,
    ) -> None:
        self.title = title
        self.total = total
        self.out = out
        self.err = err
        self.display = err if json_lines else out
        self.throughput = throughput
        self.json_lines = json_lines
        self.report_path = report_path
        self.lines = lines
        self.secrets = tuple(secrets)
        self.clock = clock
        self.plain_every = plain_every
        self.counts = dict.fromkeys(OutcomeStatus, 0)
        self.replayed = 0
        self.failures: list[BulkOutcome] = []
        self._hidden = 0
        self.started = self.finished = self.last_line = 0.0
        #: What could not be written ("cannot write ..."), once a write failed.
        self.output_error: str | None = None
        #: Called once, when a write first fails; the run sets it to stop itself.
        self.on_output_error: Callable[[], object] | None = None
        self._report = report
        self._writer = csv.writer(report) if report is not None else None
        if self._writer is not None:
            self._write_row(REPORT_COLUMNS)
        self._live: Progress | None = None
        self._task: Any = None

    # -- counting ---------------------------------------------------------------------------------

    @property
    def done(self) -> int:
        return sum(self.counts.values())

    @property
    def sent(self) -> int:
        """Outcomes of this run's requests (not replayed from a journal)."""
        return self.done - self.replayed

    def elapsed(self) -> float:
        return (self.finished or self.clock()) - self.started

    def rate(self) -> float:
        elapsed = self.elapsed()
        return self.sent / elapsed if elapsed > 0 else 0.0

    def exit_code(self) -> int:
        if self.counts[OutcomeStatus.UNKNOWN]:
            return 3
        return 1 if self.counts[OutcomeStatus.REJECTED] else 0

    def _line_of(self, outcome: BulkOutcome) -> int | None:
        if self.lines is None or outcome.index >= len(self.lines):
            return None
        return self.lines[outcome.index]

    def _stats(self) -> str:
        rate = self.rate()
        left = (self.total - self.done) / rate if rate > 0 else None
        eta = _duration(left) if left is not None else "?"
        counts = ", ".join(f"{count} {status.value}" for status, count in self.counts.items())
        return f"{rate:.1f}/s, {eta} left; {counts}"

    # -- the progress callback ----------------------------------------------------------------------

    def start(self) -> None:
        self.started = self.last_line = self.clock()
        if self.display.isatty():
            console = Console(file=self.display, highlight=False)
            self._live = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[stats]}"), console=console, refresh_per_second=4,
            )
            self._task = self._live.add_task(self.title, total=self.total, stats=self._stats())
            self._live.start()
        else:
            limit = f"at up to {self.throughput:g}/s" if self.throughput else "without a rate limit"
            self._say(f"{self.title}: {self.total} to send {limit}")

    def __call__(self, progress: BulkProgress) -> None:
        outcome = progress.last
        self.counts[outcome.status] += 1
        self.replayed += outcome.replayed
        if outcome.status is not OutcomeStatus.ACCEPTED:
            if len(self.failures) < SHOWN_FAILURES:
                self.failures.append(outcome)
            else:
                self._hidden += 1
        if self._writer is not None:
            self._write_row(self._record(outcome).values())
        if self.json_lines:
            self._emit(self.out, json.dumps({"type": "outcome", **self._record(outcome)}) + "\n")
        if self._live is not None:
            self._live.update(self._task, completed=self.done, stats=self._stats())
        elif self.clock() - self.last_line >= self.plain_every:
            self.last_line = self.clock()
            self._say(f"{self.title}: {self.done}/{self.total} done, {self._stats()}")

    def _record(self, outcome: BulkOutcome) -> dict[str, Any]:
        record = {
            "index": outcome.index, "line": self._line_of(outcome), "to": outcome.to,
            "status": outcome.status.value, "tracking_id": outcome.tracking_id,
            "error_code": outcome.code, "error": outcome.info, "attempts": outcome.attempts,
            "replayed": outcome.replayed,
        }
        return masked(record, self.secrets) if self.secrets else record

    def stop(self) -> None:
        self.finished = self.clock()
        if self._live is not None:
            self._live.update(self._task, completed=self.done, stats=self._stats())
            self._live.stop()
            self._live = None

    # -- writing ------------------------------------------------------------------------------------

    def _failed(self, what: str, exc: OSError) -> None:
        if self.output_error is None:
            self.output_error = f"cannot write {what}: {exc.strerror or exc}"
            if self.on_output_error is not None:
                self.on_output_error()

    def _write_row(self, row: Any) -> None:
        assert self._writer is not None
        try:
            self._writer.writerow(row)
        except OSError as exc:
            self._writer = None
            self._failed(f"the report {self.report_path}", exc)

    def close_report(self) -> None:
        """Flush the report (its last rows may still be buffered), noting a failure."""
        if self._report is not None and self._writer is not None:
            try:
                self._report.flush()
            except OSError as exc:
                self._writer = None
                self._failed(f"the report {self.report_path}", exc)

    def _emit(self, stream: TextIO, text: str) -> None:
        """Write ``text`` to ``stream`` now; if stdout fails, JSON lines stop and the rest goes to
        stderr."""
        try:
            stream.write(text)
            stream.flush()
        except OSError as exc:
            if stream is self.err:
                return
            silence(stream)
            self._failed("standard output", exc)
            shown = stream is self.display
            self.out = self.display = self.err
            self.json_lines = False
            if shown:
                self._emit(self.err, text)

    # -- the end ------------------------------------------------------------------------------------

    def _say(self, text: str = "") -> None:
        self._emit(self.display, safe(text) + "\n")

    def summary(self, *, interrupted: bool = False, journal: str | None = None) -> None:
        """Counts by outcome, time, sustained rate, and the rows that were not accepted."""
        how = "interrupted after" if interrupted else "finished in"
        self._say(f"\n{self.title}: {self.done} of {self.total} done, {how} {_duration(self.elapsed())}")
        for status, count in self.counts.items():
            self._say(f"  {status.value:<9} {count}")
        if self.replayed:
            self._say(f"  {self.replayed} of them recorded by an earlier run in the journal {journal}, "
                      "not sent again")
        limit = f"a throughput of {self.throughput:g}/s" if self.throughput else "no rate limit"
        if self.elapsed() < 1.0:
            self._say(f"  rate      {self.sent} done within one second, against {limit}")
        else:
            share = f" ({self.rate() / self.throughput:.0%})" if self.throughput else ""
            rate = f"{self.rate():.1f}/s sustained over {self.sent} done in this run"
            self._say(f"  rate      {rate}, against {limit}{share}")
        if self.failures:
            self._say(f"\nnot accepted ({len(self.failures) + self._hidden}):")
            where = "line" if self.lines is not None else "#"
            self._say(f"  {where:>6}  {'recipient':<16} {'outcome':<9} error")
            for outcome in sorted(self.failures, key=lambda o: o.index):
                line = self._line_of(outcome)
                label = line if line is not None else outcome.index + 1
                info = masked(outcome.info or "", self.secrets)
                self._say(f"  {label:>6}  {outcome.to:<16} {outcome.status.value:<9} {info}")
            if self._hidden:
                self._say(f"  ... and {self._hidden} more: see the full report (--report FILE.csv or --json)")
        if self.counts[OutcomeStatus.UNKNOWN]:
            self._say("unknown means the request may have been accepted: it was not sent again; "
                      "check those recipients (for example against postbacks) before sending to them")
        if self.report_path is not None and self._writer is not None:
            self._say(f"full report: {self.report_path}")
        if self.json_lines:
            self._emit(self.out, json.dumps({"type": "summary", **self.as_dict(interrupted)}) + "\n")

    def as_dict(self, interrupted: bool) -> dict[str, Any]:
        return {
            "total": self.total, "done": self.done,
            **{status.value: count for status, count in self.counts.items()},
            "replayed": self.replayed, "elapsed_seconds": round(self.elapsed(), 3),
            "rate_per_second": round(self.rate(), 3), "throughput": self.throughput,
            "interrupted": interrupted,
        }

    def resume(self, journal: str | None, recorded: Mapping[str, int] | None, command: str) -> None:
        """After Ctrl-C: what the journal holds, and the command that resumes the run."""
        if journal is None or recorded is None:
            self._say("no journal: running the same command again would send to everyone again; "
                      "resuming needs --journal FILE")
            return
        total = sum(recorded.values())
        by_state = ", ".join(f"{count} {state}" for state, count in sorted(recorded.items()))
        self._say(f"the journal {journal} records {total} outcomes ({by_state or 'none'}); "
                  f"{max(self.total - total, 0)} not sent yet")
        self._say("to resume, run the same command again; nobody recorded in the journal is sent to twice:")
        self._say(f"  {command}")
