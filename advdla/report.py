"""Terminal output shared by the commands: rich tables or JSON, and progress bars.

Every command that prints results takes ``--format table|json|csv``; :func:`emit` renders each from the same
rows, so the JSON is exactly the table's content in machine-readable form. Progress bars go to stderr, so
JSON on stdout stays clean.

Tables fit the terminal without cutting a number (:func:`table`): each column is as wide as its longest cell
where the terminal allows, cells wrap only between words (``0.31 [0.12,0.45]`` becomes two lines, never
``0.31 [0.1…``), and the columns that do not fit even then are left out, from the right, with a caption that
names them. ``--wide`` shows every column (lines may then be longer than the terminal), ``--columns A,B``
exactly the ones named; :func:`set_layout` takes both from the command line once, for every table printed.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import re
import time
from collections.abc import Iterable
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from advdla.atomic import jsonable
from advdla.errors import AdvdlaError, did_you_mean
from advdla.progress import Step

console = Console()
err_console = Console(stderr=True)


FORMATS = ("table", "json", "csv")
# Rich's default box: one border character before the first column, then per column its padding (1 each side) and
# the border after it.
EDGE, PER_COLUMN = 1, 3


def add_format_arg(parser: Any) -> None:
    """``--format table|json|csv``, ``--wide`` and ``--columns`` (read by :func:`set_layout`)."""
    parser.add_argument("--format", choices=FORMATS, default="table", help="output format (default: table)")
    parser.add_argument("--wide", action="store_true",
                        help="every column of every table, even where the lines get longer than the terminal")
    parser.add_argument("--columns", default=None, metavar="A,B,...",
                        help="exactly these columns of each table (names as in the header or the JSON)")


PRECISION_CHOICES = ("bf16", "fp32")  # advdla.precision.PRECISIONS (a test keeps them equal): that module imports torch


def add_precision_arg(parser: Any, what: str) -> None:
    """``--precision bf16|fp32``: the dtype the screening forwards run in (``what`` says which ones, for the help).
    Whatever it is, every number stored or reported is fp32 (:mod:`advdla.precision`)."""
    parser.add_argument("--precision", choices=PRECISION_CHOICES, default="bf16",
                        help=f"dtype {what}: bf16 (default; the CPU's bf16 matrix units, re-checked in fp32) or fp32 "
                             f"(screen in fp32 too); stored and reported numbers are fp32 either way")


class _Layout:
    """What the command line asked of the tables: ``wide`` (every column) and ``columns`` (exactly these)."""

    wide = False
    columns: tuple[str, ...] | None = None


LAYOUT = _Layout()


def set_layout(*, wide: bool = False, columns: str | None = None) -> None:
    """Set, once per command, how :func:`table` chooses its columns (the cli calls this with the parsed options)."""
    LAYOUT.wide = bool(wide)
    LAYOUT.columns = tuple(c.strip() for c in columns.split(",") if c.strip()) if columns else None
    if columns is not None and not LAYOUT.columns:
        raise AdvdlaError("--columns is empty: give comma-separated column names, e.g. --columns method,spearman")


def device(value: str) -> str:
    """The argparse type of ``--device``: ``cpu``, ``cuda``, ``cuda:N`` or ``mps``, and only one this machine has.

    Checked while the arguments are parsed, so a missing GPU stops the command before it loads or writes anything.
    """
    if not re.fullmatch(r"cpu|cuda(:\d+)?|mps", value):
        raise argparse.ArgumentTypeError(f"unknown device {value!r}: use cpu, cuda, cuda:N or mps")
    if value == "cpu":
        return value
    import torch  # only for a GPU: `advdla --help` and CPU runs do not pay for it here

    if value == "mps":
        if not torch.backends.mps.is_available():
            raise argparse.ArgumentTypeError("device 'mps' asked for but this machine has no MPS GPU: use --device cpu")
        return value
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    index = int(value.split(":")[1]) if ":" in value else 0
    if not count:
        raise argparse.ArgumentTypeError(f"device {value!r} asked for but no CUDA GPU is visible: use --device cpu")
    if index >= count:
        raise argparse.ArgumentTypeError(
            f"device {value!r} asked for but this machine has {count} CUDA GPU(s): use cuda:0 to cuda:{count - 1}"
        )
    return value


def add_device_arg(parser: Any) -> None:
    parser.add_argument("--device", type=device, default="cpu", help="cpu, cuda, cuda:N or mps (default: cpu)")


def progress(*, transient: bool = True) -> Progress:
    """A rich progress bar on stderr: description, bar, n/N, elapsed, remaining."""
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), TextColumn("{task.fields[info]}"), console=err_console, transient=transient)


class progress_bar:
    """A :data:`advdla.progress.Progress` callback that draws one rich bar per task on stderr.

    Use it as a context manager: ``with progress_bar() as tick: run_search(..., progress=tick)``.
    When stderr is not a terminal (a build in the background, output in a log) a bar cannot redraw, so each
    task instead writes one plain line at most every ``log_every`` seconds, and a last line when it ends if it
    ran that long: short work stays silent, long work leaves a readable trail with its rate and ETA.
    """

    def __init__(self, *, transient: bool = False, log_every: float = 30.0) -> None:
        self._plain = not err_console.is_terminal
        self._bar = None if self._plain else progress(transient=transient)
        self._tasks: dict[str, Any] = {}
        self._log_every = log_every
        self._started: dict[str, float] = {}
        self._first_done: dict[str, int] = {}  # units already done when the task started (a resumed run)
        self._logged: dict[str, float] = {}
        self._finished: set[str] = set()

    def __enter__(self) -> progress_bar:
        if self._bar is not None:
            self._bar.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)

    def __call__(self, step: Step) -> None:
        if self._plain:
            self._log(step)
            return
        if step.task not in self._tasks:
            self._tasks[step.task] = self._bar.add_task(step.task, total=step.total, info="")
        self._bar.update(self._tasks[step.task], completed=step.done, total=step.total, info=step.info)

    def _log(self, step: Step) -> None:
        now = time.monotonic()
        finished = step.total is not None and step.done >= step.total
        if step.task in self._finished:
            if finished:
                return
            self._finished.discard(step.task)  # a new run under the same name (the next split's search): start over
            for state in (self._started, self._logged, self._first_done):
                state.pop(step.task, None)
        start = self._started.setdefault(step.task, now)
        first = self._first_done.setdefault(step.task, step.done)
        last = self._logged.get(step.task, start)
        if now - last < self._log_every and not (finished and now - start >= self._log_every):
            return
        self._logged[step.task] = now
        if finished:
            self._finished.add(step.task)
        err_console.print(plain_progress_line(step, now - start, first), highlight=False, soft_wrap=True)


def plain_progress_line(step: Step, elapsed: float, first_done: int = 0) -> str:
    """``task done/total elapsed, rate/min, ETA, info`` for logs (the bar's content as one line of text).

    ``first_done``: units already done when ``elapsed`` started counting (a resumed run reports them first), so the
    rate and the ETA count only the work done in this run.
    """
    rate = (step.done - first_done) / elapsed if elapsed > 0 else 0.0
    parts = [f"{step.task} {step.done}" + (f"/{step.total}" if step.total is not None else ""),
             f"{elapsed:.0f} s", f"{rate * 60:.1f}/min"]
    if step.total is not None and rate > 0 and step.done < step.total:
        parts.append(f"ETA {(step.total - step.done) / rate:.0f} s")
    if step.info:
        parts.append(step.info)
    return " · ".join(parts)


def fmt_value(v: Any) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.4g}"
    return str(v)


def _words(text: str) -> list[str]:
    return text.split() or [""]


def _measure(header: str, cells: list[str]) -> tuple[int, int]:
    """(widest it needs: its longest line, narrowest it can go without cutting a word: its longest word)."""
    lines = [line for text in [header, *cells] for line in text.splitlines() or [""]]
    return max(len(line) for line in lines), max(len(w) for line in lines for w in _words(line))


def fit_columns(columns: list[str], measures: dict[str, tuple[int, int]], width: int) -> tuple[list[str], list[int]]:
    """The columns shown at ``width`` and each one's width: the longest cell where it all fits, else the widest
    columns narrowed (wrapping between words, never below their longest word); the columns that do not fit even
    at their narrowest are dropped from the right, but two always stay (a field/value card keeps its values). Where
    even two do not fit, the widest is narrowed further (to 8): its longest words then continue on the next line
    (a 64-digit fingerprint in an 80-column terminal), never cut."""
    shown = list(columns)
    while len(shown) > 2 and EDGE + sum(measures[c][1] + PER_COLUMN for c in shown) > width:
        shown.pop()
    widths = [measures[c][0] for c in shown]
    for floor in ([measures[c][1] for c in shown], [min(8, measures[c][1]) for c in shown]):
        excess = EDGE + sum(w + PER_COLUMN for w in widths) - width
        while excess > 0:
            slack = [w - m for w, m in zip(widths, floor)]
            i = max(range(len(widths)), key=lambda j: (slack[j] > 0, widths[j]))
            if slack[i] <= 0:
                break
            widths[i] -= 1
            excess -= 1
    return shown, widths


def _chosen(cols: list[str]) -> list[str]:
    """``--columns`` applied to one table's columns (all of them without it)."""
    if LAYOUT.columns is None:
        return cols
    return [c for c in LAYOUT.columns if c in cols]


def check_columns(tables: list[tuple[str, list[dict[str, Any]]]]) -> None:
    """``--columns`` must name at least one column of the tables printed (one line with the known names)."""
    if LAYOUT.columns is None:
        return
    known = list(dict.fromkeys(c for _, rows in tables for r in rows for c in r))
    unknown = [c for c in LAYOUT.columns if c not in known]
    if unknown and len(unknown) == len(LAYOUT.columns):
        raise AdvdlaError(f"--columns {','.join(unknown)}: no such column; the tables have {', '.join(known)}."
                          f"{did_you_mean(unknown[0], known)}")


def table(rows: list[dict[str, Any]], *, title: str | None = None, columns: Iterable[str] | None = None,
          width: int | None = None) -> Table:
    """A rich table of ``rows`` that fits ``width`` (default: the terminal's) without cutting any cell (see the
    module's docstring); ``columns`` orders them (default: the first row's keys, most important first)."""
    cols = _chosen(list(columns or (dict.fromkeys(c for r in rows for c in r) if rows else [])))
    cells = {c: [fmt_value(r.get(c, "")) for r in rows] for c in cols}
    measures = {c: _measure(c, cells[c]) for c in cols}
    if LAYOUT.wide or LAYOUT.columns is not None:
        shown, widths = cols, [measures[c][0] for c in cols]
    else:
        shown, widths = fit_columns(cols, measures, width or console.width)
    hidden = cols[len(shown):]
    plural = len(hidden) > 1
    caption = (f"{len(hidden)} more column{'s' if plural else ''} (--wide shows {'them' if plural else 'it'}, "
               f"--columns A,B chooses): {', '.join(hidden)}" if hidden else None)
    t = Table(title=title, caption=caption, caption_justify="left")
    for c, w in zip(shown, widths):
        t.add_column(Text(c, overflow="fold"), justify="right" if _numeric(cells[c]) else "left", width=w,
                     overflow="fold")
    for i in range(len(rows)):
        t.add_row(*(cells[c][i] for c in shown))
    return t


def _numeric(cells: list[str]) -> bool:
    """A column of numbers (blank cells allowed) is right-justified, so that their digits line up."""
    try:
        return any(c.strip() for c in cells) and all(float(c) is not None for c in cells if c.strip())
    except ValueError:
        return False


def table_width(t: Table) -> int:
    """The characters one line of ``t`` takes, as :func:`table` laid it out."""
    return EDGE + sum((c.width or 0) + PER_COLUMN for c in t.columns)


def print_table(t: Table) -> None:
    """Print a table from :func:`table`; a wider one (``--wide``, ``--columns``) is printed at its own width."""
    console.print(t, width=max(console.width, table_width(t)))


def emit(payload: dict[str, Any], fmt: str, *, tables: list[tuple[str, list[dict[str, Any]]]] | None = None) -> None:
    """Print ``payload`` as JSON, or each (title, rows) in ``tables`` as a width-fitting rich table, or as CSV (a
    ``# title`` line before each table when there are several)."""
    if fmt == "json":
        print(json.dumps(payload, indent=2, default=jsonable))
        return
    check_columns(tables or [])
    if fmt == "csv":
        print(to_csv(tables or []), end="")
        return
    for title, rows in tables or []:
        if LAYOUT.columns is None or _chosen(list(dict.fromkeys(c for r in rows for c in r))):
            print_table(table(rows, title=title))  # with --columns, a table that has none of them is left out


def to_csv(tables: list[tuple[str, list[dict[str, Any]]]]) -> str:
    """Each table as CSV with a header line (the ``--columns`` chosen, else all); several tables are separated by a
    blank line and a ``# title`` line."""
    out = io.StringIO()
    for i, (title, rows) in enumerate(tables):
        cols = _chosen(list(dict.fromkeys(c for r in rows for c in r)))
        if len(tables) > 1:
            out.write(("\n" if i else "") + f"# {title}\n")
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(cols)
        writer.writerows([[r.get(c, "") for c in cols] for r in rows])
    return out.getvalue()
