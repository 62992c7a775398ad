"""The state of a suite build in progress, on disk, so that a killed build resumes where it stopped.

Context: computing ground truth is the slow part of a build (on SmolLM2, every head and MLP patched over R
resamples: about a minute per example on two CPU cores). A build therefore writes each finished step at once,
atomically, into ``.NAME.partial/`` next to the destination, and a rerun of the same build reads it back
instead of recomputing:

    .NAME.partial/
      key.json                 what is being built (config, weights, corpus, test seed); another build's
                               state is discarded (it is derived data: nothing of it fits the new build)
      steps/NAME.json          a finished planning step (a split's candidates, its natural controls)
      examples/ID.json         one finished example (its row, whether or not it passed the final check)
      search/SPLIT-TARGET/     the searches' Optuna studies (which resume on their own)

Every value goes through JSON exactly (floats as their shortest repr), so a resumed build writes the same rows,
and hence the same fingerprint, as an uninterrupted one. When the suite is saved the folder is removed.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from advdla.atomic import write_json_atomic
from advdla.errors import AdvdlaError
from advdla.suites.fingerprint import canonical_json
from advdla.suites.store import Example

__all__ = ["PartialBuild"]


class PartialBuild:
    """Finished steps and examples of one build, cached under ``.NAME.partial`` beside ``dest``.

    The build of one process; :class:`advdla.suites.workers.SharedBuild` has the same interface for a build
    shared by several workers through a database (``shared`` tells them apart).
    """

    shared = False

    def __init__(self, dest: Path, key: dict[str, Any]) -> None:
        self.root = dest.parent / f".{dest.name}.partial"
        self._check_key(key)

    def _check_key(self, key: dict[str, Any]) -> None:
        file = self.root / "key.json"
        try:
            if canonical_json(json.loads(file.read_text())) == canonical_json(key):
                return
        except (OSError, ValueError):
            pass
        self.remove()  # absent, unreadable, or another build's: start afresh
        write_json_atomic(file, key)

    @property
    def examples_done(self) -> int:
        return len(list((self.root / "examples").glob("*.json")))

    def search_dir(self, name: str) -> Path:
        return self.root / "search" / name

    def step(self, name: str, compute: Callable[[], Any]) -> Any:
        """``compute()``'s JSON value, computed once: read back from ``steps/NAME.json`` on a resumed build."""
        file = self.root / "steps" / f"{name}.json"
        if file.is_file():
            return json.loads(file.read_text())
        value = compute()
        write_json_atomic(file, value, allow_nan=False)
        return json.loads(file.read_text())  # the value as a resumed build will see it

    def steps(self, jobs: list[tuple[str, Callable[[], Any]]]) -> list[Any]:
        """Several steps' values in order (here one after another)."""
        return [self.step(name, compute) for name, compute in jobs]

    def example(self, example_id: str, compute: Callable[[], Example]) -> Example:
        """The example with this id, computed once and written at once (a kill loses at most the one in flight)."""
        file = self.root / "examples" / f"{example_id}.json"
        if file.is_file():
            return Example.from_row(json.loads(file.read_text()))
        write_json_atomic(file, compute().to_row(), allow_nan=False)
        return Example.from_row(json.loads(file.read_text()))

    def examples(self, jobs: list[tuple[str, Callable[[], Example]]], *,
                 enough: Callable[[list[Example]], bool] | None = None,
                 after: Callable[[], None] | None = None) -> list[Example]:
        """The examples in order, each computed once, until the ones so far are ``enough`` (all without it);
        ``after`` is called after each."""
        out: list[Example] = []
        for example_id, compute in jobs:
            if enough is not None and enough(out):
                break
            out.append(self.example(example_id, compute))
            if after is not None:
                after()
        return out

    def save(self, dest: Path, write: Callable[[], Path]) -> Path:
        """Write the suite (``write()``): a single process simply does."""
        return write()

    @contextmanager
    def removed_on_error(self) -> Iterator[None]:
        """Remove the state when the build stops with an :class:`AdvdlaError` (bad input, too few examples: a
        rerun needs another config anyway); a kill or Ctrl-C keeps it for the resume."""
        try:
            yield
        except AdvdlaError:
            self.remove()
            raise

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
