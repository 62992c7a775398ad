"""One search's settings, checked before anything is loaded, and what a finished search hands back.

Context: a :class:`SearchConfig` is everything that shapes a search; its :meth:`~SearchConfig.space_key` is the
part that shapes the search space, stored with the study (:func:`advdla.search.storage.open_study`) so that a
resume with other space arguments is refused instead of mixing two spaces. :func:`validate` and
:func:`check_lengths` turn each impossible setting into one line before the first forward (the command line
calls :func:`validate` even before it loads a model).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from advdla.attribution import check_context
from advdla.criteria import Thresholds
from advdla.errors import AdvdlaError, did_you_mean
from advdla.precision import DEFAULT_PRECISION, check_precision
from advdla.search.objectives import check_objective
from advdla.search.samplers import SAMPLERS
from advdla.search.space import WINDOWS_PER_BASE

__all__ = ["SearchConfig", "SearchResult", "validate", "check_lengths"]


@dataclass
class SearchConfig:
    """One search. Fields that shape the space (:meth:`space_key`) must match when a stored study is resumed."""

    target: str = "auto"  # a component name, or auto: the first of analysis.rank_targets (compensated direct effect)
    objective: str = "compensation"  # compensation (DE - TE, DE real) | dla (DLA - TE) | baseline (DLA - DE)
    trials: int = 200  # the study stops when it holds this many COMPLETE trials (all workers together)
    batch: int = 16  # candidates asked, scored and told together
    sampler: str = "tpe"  # tpe | nsga2 (multi-objective) | random (baseline)
    resamples: int = 8  # R: TE is averaged over R fixed same-length corpus resamples
    seq_len: int = 24  # every candidate has exactly this many tokens
    seed: int = 0
    thresholds: Thresholds = field(default_factory=Thresholds)
    n_slots: int = 4  # free token slots
    pool_size: int = 96  # candidate tokens per slot
    n_gcg: int = 2  # gradient-ranked token swaps per candidate (GCG-style, per context and position; 0: none)
    exploit: float = 0.5  # tpe: share of each batch spent on one- or two-parameter mutations of the best trials
    seed_contexts: int = 32  # tpe: the study starts with this many pre-screened contexts unedited (best first;
    # at most a quarter of the trials)
    gcg_k: int = 16  # swap tokens ranked per (context, position)
    n_base: int = 64  # base corpus windows
    max_examples: int | None = None  # also stop once the study holds this many adversarial trials
    corpus: str = "builtin"
    max_verify: int = 32  # re-verify at most this many distinct candidates (best first) on the slow path
    verify_resamples: int = 8  # fresh resamples for the re-verification (not the ones the search optimised against)
    # Corpus documents the search must not touch (bases, spans, resamples): a suite's dev search excludes the test
    # split's documents and vice versa, so the two splits share no text by construction.
    exclude_docs: tuple[int, ...] = ()
    # bf16 | fp32: the dtype candidates are scored in (advdla.precision); the re-verification is fp32 either way
    precision: str = DEFAULT_PRECISION

    @property
    def mode(self) -> str:
        """The objective shape the sampler is told: ``scalar`` or ``multi`` (an unknown sampler: ``scalar``)."""
        return SAMPLERS.get(self.sampler).mode if self.sampler in SAMPLERS else "scalar"

    def space_key(self, model: str, target: str) -> dict[str, Any]:
        keys = ("resamples", "seq_len", "seed", "n_slots", "pool_size", "n_base", "corpus", "n_gcg", "gcg_k")
        key = {"model": model, "target": target, "mode": self.mode, "objective": self.objective,
               **{k: getattr(self, k) for k in keys},
               # the contexts are pre-screened for the target in the top k with LD > margin (space.prescreen_contexts)
               "prescreen": {"top_k": self.thresholds.top_k, "margin": self.thresholds.margin,
                             "windows_per_base": WINDOWS_PER_BASE, "exact": True}}
        if self.exclude_docs:  # a hash: the list can be long, and old studies (no exclusion) keep their key
            key["exclude_docs"] = hashlib.sha256(",".join(map(str, sorted(self.exclude_docs))).encode()).hexdigest()
        return key

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"exclude_docs": list(self.exclude_docs)}  # as JSON stores it


@dataclass
class SearchResult:
    """What a search found and how it went (``summary`` is what ``search.json`` holds)."""

    target: str
    examples: Any  # pandas DataFrame, one row per verified adversarial example
    summary: dict[str, Any]
    out_dir: Path


def validate(config: SearchConfig) -> None:
    """One clear line for each impossible setting."""
    if config.trials < 1:
        raise AdvdlaError(f"--trials must be at least 1, got {config.trials}: the search needs a budget")
    if not 0 <= config.exploit <= 1:
        raise AdvdlaError(f"--exploit must be between 0 and 1, got {config.exploit}")
    if config.n_gcg < 0 or config.gcg_k < 1:
        raise AdvdlaError(f"--n-gcg must be at least 0 and --gcg-k at least 1, got {config.n_gcg} and {config.gcg_k}")
    for name in ("batch", "resamples", "n_base", "pool_size", "verify_resamples"):
        if getattr(config, name) < 1:
            raise AdvdlaError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(config, name)}")
    if config.seq_len < 4:
        raise AdvdlaError(f"--seq-len must be at least 4, got {config.seq_len}")
    if config.sampler not in SAMPLERS:
        raise AdvdlaError(f"unknown sampler {config.sampler!r}: use one of {', '.join(SAMPLERS)}."
                          f"{did_you_mean(config.sampler, SAMPLERS.names())}")
    check_objective(config.objective)
    check_precision(config.precision)


def check_lengths(bridge: Any, config: SearchConfig) -> None:
    """Every length the search feeds the model fits its context: candidates and resamples (seq_len) and the
    pre-screen's windows (2 x seq_len). One line naming both numbers, before any forward."""
    what = f"search --seq-len {config.seq_len}"
    check_context(bridge, config.seq_len, f"{what} (candidates and resamples)")
    check_context(bridge, 2 * config.seq_len, f"{what} (pre-screen windows of 2 x {config.seq_len})", per_unit=2)
