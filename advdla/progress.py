"""Progress reporting without a screen: stages below the face call a callback, the face draws it.

Context: long work (a model fetch, a search, a suite build, scoring) should show progress, but only the
command-line face may print (``cli.py``, ``commands/``, ``pipeline.py``, ``report.py``). So every long
function takes ``progress: Progress | None`` and calls it with a :class:`Step`; the face passes
:func:`advdla.report.progress_bar` (a rich bar on stderr), tests and library users pass nothing.

Usage inside a stage::

    tick = progress or silent
    for i, item in enumerate(items):
        ...
        tick(Step("suite", done=i + 1, total=len(items), info=f"{n_adv} adversarial"))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Step:
    """One progress report: ``task`` names the bar, ``done`` of ``total`` units are finished (total None: unknown)."""

    task: str
    done: int
    total: int | None = None
    info: str = ""


Progress = Callable[[Step], None]


def silent(step: Step) -> None:
    """The default callback: report nothing."""


__all__ = ["Progress", "Step", "silent"]
