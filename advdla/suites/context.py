"""What every step of a suite build shares: the candidate prompt and the build's context.

Context: a build (:mod:`advdla.suites.build`) walks its steps in order (search, adversarial candidates, natural
controls from :mod:`advdla.suites.natural`, ground truth, manifest from :mod:`advdla.suites.manifest`); each
step reads the same config, model, corpus windows and split documents, and writes through the same store of
finished work. They are gathered here, apart from the steps, so that the step modules import them without
importing one another.

Intuition: a :class:`Candidate` is a prompt before its truth is computed, small enough to travel as JSON
(a finished step is stored as JSON and read back exactly, so a resumed build sees what a fresh one did).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from advdla.components import Component
from advdla.progress import Progress
from advdla.suites.config import SuiteConfig
from advdla.suites.partial import PartialBuild
from advdla.suites.workers import SharedBuild

__all__ = ["BuildContext", "Candidate", "Finder", "n_adversarial", "other_docs"]


@dataclass(frozen=True)
class Candidate:
    """A prompt to put in the suite: its tokens, target, the document it is built on (-1: unknown), its trial."""

    tokens: tuple[int, ...]
    target: str
    source_doc: int = -1
    trial: int = -1
    near_docs: tuple[int, ...] = ()  # documents the prompt may have borrowed from: resamples avoid them

    @property
    def docs(self) -> set[int]:
        return ({self.source_doc} if self.source_doc >= 0 else set()) | set(self.near_docs)

    def to_json(self) -> list[Any]:
        return [list(self.tokens), self.target, self.source_doc, self.trial, list(self.near_docs)]

    @classmethod
    def from_json(cls, x: list[Any]) -> Candidate:
        return cls(tuple(x[0]), x[1], x[2], x[3], tuple(x[4]))


# find(bridge, target, *, cfg, seed, n, windows, out_dir, exclude_docs, progress) -> (candidates, manifest info)
Finder = Callable[..., tuple[list[Candidate], dict[str, Any]]]


@dataclass
class BuildContext:
    """What every step needs: config, model, corpus windows, the splits' documents, targets, finder, progress."""

    cfg: SuiteConfig
    bridge: Any
    corpus: Any
    windows: Any
    docs: dict[str, set[int]]
    targets: list[Component]
    find: Finder
    progress: Progress
    partial: PartialBuild | SharedBuild | None = None
    up_to: bool = False  # counts are upper bounds (see advdla.suites.build.build_suite)
    precision: str = "fp32"  # the screens' dtype (advdla.precision): natural scan and searches; truth is fp32 always


def other_docs(ctx: BuildContext, split: str) -> set[int]:
    """The documents of the other split: everything a split draws (prompts, resamples, windows) stays off them."""
    return ctx.docs["test" if split == "dev" else "dev"]


def n_adversarial(ctx: BuildContext, split: str) -> int:
    """How many adversarial examples the config asks of ``split``."""
    return ctx.cfg.splits.n_dev if split == "dev" else ctx.cfg.splits.n_test
