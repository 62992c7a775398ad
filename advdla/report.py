"""Terminal output shared by the commands: rich tables or JSON, and progress bars.

Every command that prints results takes ``--format table|json``; :func:`emit` renders either from the same
rows, so the JSON is exactly the table's content in machine-readable form. Progress bars go to stderr, so
JSON on stdout stays clean.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import time
from collections.abc import Iterable
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from advdla.atomic import jsonable
from advdla.progress import Step

console = Console()
err_console = Console(stderr=True)


def add_format_arg(parser: Any) -> None:
    parser.add_argument("--format", choices=("table", "json"), default="table", help="output format (default: table)")


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


def table(rows: list[dict[str, Any]], *, title: str | None = None, columns: Iterable[str] | None = None) -> Table:
    cols = list(columns or (rows[0].keys() if rows else []))
    t = Table(title=title)
    for c in cols:
        t.add_column(c, justify="right" if rows and isinstance(rows[0].get(c), (int, float)) else "left")
    for r in rows:
        t.add_row(*(fmt_value(r.get(c, "")) for c in cols))
    return t


def emit(payload: dict[str, Any], fmt: str, *, tables: list[tuple[str, list[dict[str, Any]]]] | None = None) -> None:
    """Print ``payload`` as JSON, or each (title, rows) in ``tables`` as a rich table."""
    if fmt == "json":
        print(json.dumps(payload, indent=2, default=jsonable))
        return
    for title, rows in tables or []:
        console.print(table(rows, title=title))
