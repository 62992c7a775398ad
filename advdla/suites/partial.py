"""The state of a suite build in progress, on disk, so that a killed build resumes where it stopped.

Context: computing ground truth is the slow part of a build (on SmolLM2, every head and MLP patched over R
resamples: about a minute per example on two CPU cores). A build therefore writes each finished step at once,
atomically, into ``.NAME.partial/`` next to the destination, and a rerun of the same build reads it back
instead of recomputing:

    .NAME.partial/
      key.json                 what is being built (config, weights, corpus, test seed); see below for what
                               of another build's state is kept
      steps/NAME.json          a finished planning step (a split's candidates, its natural controls)
      examples/ID.json         one finished example (its row, whether or not it passed the final check)
      search/SPLIT-TARGET/     the searches' Optuna studies (which resume on their own)

Every value goes through JSON exactly (floats as their shortest repr), so a resumed build writes the same rows,
and hence the same fingerprint, as an uninterrupted one. When the suite is saved the folder is removed.

A build of an edited config keeps what still fits it: an example's truth depends only on the model, the
corpus, the prompt length, the seed and the truth settings (:data:`TRUTH_FIELDS`), not on how many examples
are asked for or how long the search runs, so raising ``splits.n_dev`` or ``search.trials`` after a build
stopped short reuses every example computed (and every search study, which resumes with more trials); the
planning steps, which depend on the counts, are redone. A build that stops for want of examples keeps its
state for that rerun.
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

__all__ = ["PartialBuild", "TRUTH_FIELDS"]

# The config fields an example's truth (resamples, panel, values, mechanism label) depends on.
TRUTH_FIELDS = ("model", "corpus", "seq_len", "seed", "resamples", "method_resamples", "panel", "thresholds")
# ... and, with them, those a search study depends on (its trial count may grow: the study resumes).
SEARCH_FIELDS = ("targets", "n_auto_targets")


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
            old = json.loads(file.read_text())
        except (OSError, ValueError):
            old = None
        if old is not None and canonical_json(old) == canonical_json(key):
            return
        if old is not None and _part(old, TRUTH_FIELDS) == _part(key, TRUTH_FIELDS):
            shutil.rmtree(self.root / "steps", ignore_errors=True)  # planned for other counts: plan again
            if _part(old, SEARCH_FIELDS, search=True) != _part(key, SEARCH_FIELDS, search=True):
                shutil.rmtree(self.root / "search", ignore_errors=True)
        else:
            self.remove()  # absent, unreadable, or another model's, corpus's or truth's: start afresh
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
        """Keep the state when the build stops with an :class:`AdvdlaError` (too few examples: a rerun with higher
        counts or more trials reuses every example and study), as on a kill or Ctrl-C; remove it only when
        nothing was computed yet (bad input)."""
        try:
            yield
        except AdvdlaError as exc:
            if not (self.root / "steps").is_dir() and not (self.root / "examples").is_dir():
                self.remove()
                raise
            raise AdvdlaError(f"{exc} (the finished work stays in {self.root} for that rerun)") from None

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def _part(key: dict[str, Any], fields: tuple[str, ...], *, search: bool = False) -> str:
    """The canonical JSON of the key's weights, corpus and schema and of the config ``fields`` (with ``search``:
    also the search budget but its trial count)."""
    config = key.get("config", {})
    part = {k: key.get(k) for k in ("weights", "corpus", "schema_version")} | {f: config.get(f) for f in fields}
    if search:
        part["search"] = {k: v for k, v in config.get("search", {}).items() if k != "trials"}
    return canonical_json(part)
