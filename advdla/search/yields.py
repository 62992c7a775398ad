"""Yield: verified adversarial examples per 100 candidates, for the search's samplers and for natural text.

Context: a search is worth running only if it finds adversarial examples much more often than chance does.
:func:`measure_yield` runs, for each objective and seed, three arms at the SAME candidate budget and the same
target:

- ``tpe``: the search as shipped (:func:`~advdla.search.engine.run_search`, TPE sampler);
- ``random``: the same space, sampled at random (no model of it);
- ``natural``: unmanipulated corpus windows of the same length (documents the search does not use).

Every fast hit of every arm (adversarial and of the objective's mechanism, :func:`~advdla.search.objectives.is_hit`)
is re-verified on the slow reference path with fresh resamples, as the search's reported examples are; the yield
is verified hits per 100 candidates. Near-duplicates count (a search that found a context keeps varying it), so
each row also counts the distinct base documents among its verified examples, the conservative count.

Intervals: per arm, a Wilson 95% interval on the pooled proportion (seeds together); per ratio (tpe / random,
tpe / natural), a 95% interval from a bootstrap over seeds and, within a seed, over candidates. Both treat
candidates as independent, which near-duplicates make optimistic: read them with the per-seed rates.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from advdla.components import Component
from advdla.corpus import TokenWindows, load_corpus
from advdla.search.engine import (
    SearchConfig,
    check_lengths,
    resolve_target,
    run_search,
    search_resamples,
    slow_scores,
    space_for,
    validate,
    verify_resamples,
)
from advdla.search.evaluate import Evaluator, verify
from advdla.search.objectives import is_hit

__all__ = ["ARMS", "ArmRun", "measure_yield", "natural_arm", "summarise", "wilson"]

ARMS = ("tpe", "random", "natural")


@dataclass
class ArmRun:
    """One arm at one seed and objective: candidates scored, fast hits, verified hits, distinct documents, time."""

    objective: str
    arm: str
    seed: int
    target: str
    candidates: int
    fast_hits: int
    verified: int
    distinct_docs: int
    seconds: float

    @property
    def per_100(self) -> float:
        return 100.0 * self.verified / max(self.candidates, 1)


def natural_arm(bridge: Any, config: SearchConfig, target: Component) -> tuple[int, int, int, int]:
    """``config.trials`` corpus windows of ``seq_len`` tokens, scored like candidates; fast hits re-verified on the slow
    path with the search's fresh verification resamples. Returns (candidates, fast hits, verified, distinct docs)."""
    windows = TokenWindows(load_corpus(config.corpus), bridge.tokenizer)
    space = space_for(bridge, windows, target, config)  # the searches' own (built once per seed)
    evaluator = Evaluator(bridge, target, search_resamples(windows, space, config))
    fresh = verify_resamples(windows, space, config)
    avoid = set(space.base_docs) | set(config.exclude_docs)
    tokens, docs = _windows(windows, config, avoid)
    fast, verified, good_docs = 0, 0, set()
    for i in range(0, len(tokens), config.batch):
        hits = is_hit(evaluator(tokens[i:i + config.batch]), config.thresholds, config.objective)
        for j in torch.nonzero(hits).flatten().tolist():
            fast += 1
            v = verify(bridge, target, tokens[i + j], fresh)
            if is_hit(slow_scores(v), config.thresholds, config.objective):
                verified += 1
                good_docs.add(docs[i + j])
    return len(tokens), fast, verified, len(good_docs)


def _windows(windows: TokenWindows, config: SearchConfig, avoid: set[int]) -> tuple[torch.Tensor, list[int]]:
    """``config.trials`` windows, at most one per document per draw, drawn in rounds when the corpus is small."""
    out, docs, left, k = [], [], config.trials, 0
    while left > 0:
        eligible = int(sum(1 for i, n in enumerate(windows.lengths) if n >= config.seq_len and i not in avoid))
        n = min(left, max(eligible, 1))
        tokens, d = windows.sample(config.seq_len, n, seed=config.seed + 7 + 1000 * k, exclude=avoid)
        out.append(tokens)
        docs += d
        left, k = left - n, k + 1
    return torch.cat(out), docs


def _search_arm(bridge: Any, config: SearchConfig, out_dir: Path) -> tuple[int, int, int, int]:
    """A search with every distinct fast hit re-verified: (candidates, fast hits, verified, distinct docs)."""
    cfg = dataclasses.replace(config, max_verify=config.trials, max_examples=None)
    result = run_search(bridge, cfg, out_dir=out_dir)
    c = result.summary["counts"]
    docs = int(result.examples["source_doc"].nunique()) if len(result.examples) else 0
    return c["study_complete_trials"], c["study_adversarial_fast"], c["verified_examples"], docs


def measure_yield(bridge: Any, config: SearchConfig, *, seeds: list[int], objectives: list[str],
                  arms: tuple[str, ...] = ARMS, out_dir: str | Path,
                  note: Callable[[str], None] | None = None) -> pd.DataFrame:
    """One :class:`ArmRun` per (objective, seed, arm), as a frame (also written to ``OUT/yield.csv`` as it grows).

    The target is resolved once (``config.target``, ``auto`` with the first seed) and shared by every run, so
    the arms differ only in how candidates are chosen. Searches live in ``OUT/{objective}/seed{s}/{arm}`` (a re-run
    resumes them).
    """
    note = note or (lambda msg: None)
    validate(config)
    check_lengths(bridge, config)
    out_dir = Path(out_dir)
    windows = TokenWindows(load_corpus(config.corpus), bridge.tokenizer)
    target = resolve_target(bridge, config.target, windows, seq_len=config.seq_len, seed=seeds[0])
    note(f"target {target.name}")
    rows = []
    for objective in objectives:
        for seed in seeds:
            cfg = dataclasses.replace(config, target=target.name, objective=objective, seed=seed)
            for arm in arms:
                t0 = time.perf_counter()
                if arm == "natural":
                    counts = natural_arm(bridge, cfg, target)
                else:
                    counts = _search_arm(bridge, dataclasses.replace(cfg, sampler=arm),
                                         out_dir / objective / f"seed{seed}" / arm)
                rows.append(ArmRun(objective, arm, seed, target.name, *counts, time.perf_counter() - t0))
                note(f"{objective} seed {seed} {arm}: {rows[-1].verified} verified of {rows[-1].candidates} "
                     f"({rows[-1].fast_hits} fast, {rows[-1].distinct_docs} documents, {rows[-1].seconds:.0f} s)")
                frame = pd.DataFrame([dataclasses.asdict(r) | {"per_100": r.per_100} for r in rows])
                out_dir.mkdir(parents=True, exist_ok=True)
                frame.to_csv(out_dir / "yield.csv", index=False)
    return frame


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a proportion k / n (as per 100)."""
    if n == 0:
        return float("nan"), float("nan")
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return 100 * max(0.0, centre - half), 100 * min(1.0, centre + half)


def _ratio_interval(num: pd.DataFrame, den: pd.DataFrame, *, draws: int = 4000, seed: int = 0) -> tuple[float, float]:
    """95% bootstrap interval of (pooled rate of ``num``) / (pooled rate of ``den``): seeds resampled, then
    candidates within each seed (binomially). A draw with a zero denominator counts as infinity."""
    rng = np.random.default_rng(seed)
    seeds = sorted(set(num["seed"]) & set(den["seed"]))
    if not seeds:
        return float("nan"), float("nan")
    per = [f.set_index("seed").loc[seeds] for f in (num, den)]
    n = [f["candidates"].to_numpy() for f in per]  # [seeds]
    p = [f["verified"].to_numpy() / np.maximum(c, 1) for f, c in zip(per, n)]
    pick = rng.integers(0, len(seeds), size=(draws, len(seeds)))
    k = [rng.binomial(c[pick], q[pick]).sum(1) for c, q in zip(n, p)]
    total = [c[pick].sum(1) for c in n]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.where(k[1] > 0, (k[0] / total[0]) / (k[1] / total[1]), np.inf)
    lo, hi = np.quantile(ratios, [0.025, 0.975])
    return float(lo), float(hi)


def summarise(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Per (objective, arm): pooled verified per 100 with its Wilson interval, the per-seed rates, distinct documents
    per 100, and for ``tpe`` its ratio to ``random`` and ``natural`` with bootstrap intervals."""
    out = []
    for (objective, arm), f in frame.groupby(["objective", "arm"], sort=False):
        k, n = int(f.verified.sum()), int(f.candidates.sum())
        lo, hi = wilson(k, n)
        row = {"objective": objective, "arm": arm, "seeds": len(f), "candidates": n, "verified": k,
               "per_100": 100 * k / max(n, 1), "ci_low": lo, "ci_high": hi,
               "per_seed": [round(x, 2) for x in f.per_100],
               "docs_per_100": 100 * int(f.distinct_docs.sum()) / max(n, 1),
               "seconds": float(f.seconds.sum())}
        if arm == "tpe":
            for base in ("random", "natural"):
                other = frame[(frame.objective == objective) & (frame.arm == base)]
                if len(other):
                    rate = other.verified.sum() / max(other.candidates.sum(), 1)
                    row[f"x_{base}"] = (k / max(n, 1)) / rate if rate else math.inf
                    row[f"x_{base}_ci"] = _ratio_interval(f, other)
        out.append(row)
    return out
