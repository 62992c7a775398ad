"""Yield: verified adversarial examples per 100 candidates, for the search's samplers and for natural text.

Context: a search is worth running only if it finds adversarial examples much more often than chance does.
:func:`measure_yield` runs, for each objective and seed, three arms at the SAME candidate budget and the same
target:

- ``tpe``: the search as shipped (:func:`~advdla.search.engine.run_search`, TPE sampler);
- ``random``: the same space, sampled at random (no model of it);
- ``natural``: unmanipulated corpus windows of the same length (documents the search does not use).

Every distinct fast hit of every arm (adversarial and of the objective's mechanism,
:func:`~advdla.search.objectives.is_hit`) is re-scored against fresh resamples, the ones a search verifies its
examples with (:func:`reverify`: on the batched fast path, a few also on the slow reference path as a check); the
yield is verified hits per 100 candidates. Near-duplicates count (a search that found a context keeps varying
it), so each row also counts the distinct base documents among its verified examples, the conservative count.

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
import optuna
import pandas as pd
import torch
from optuna.trial import TrialState

from advdla.components import Component, parse_component
from advdla.corpus import TokenWindows, load_corpus
from advdla.search.config import SearchConfig, check_lengths, validate
from advdla.search.engine import DEFAULT_STUDY, run_search, search_resamples, space_for
from advdla.search.evaluate import Evaluator, verify
from advdla.search.objectives import is_hit
from advdla.search.storage import open_storage
from advdla.search.target import resolve_target
from advdla.search.verified import slow_scores, verify_resamples

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
    fast_hits: int  # distinct token sequences
    verified: int
    distinct_docs: int
    slow_checked: int  # verified hits also re-scored on the slow reference path ...
    slow_agreed: int  # ... and how many of those agreed with the fast path
    seconds: float

    @property
    def per_100(self) -> float:
        return 100.0 * self.verified / max(self.candidates, 1)


def natural_arm(bridge: Any, config: SearchConfig, target: Component) -> tuple[int, int, int, int, int, int]:
    """``config.trials`` corpus windows of ``seq_len`` tokens, scored like candidates, fast hits re-verified as the
    searches' are (:func:`reverify`). Returns (candidates, fast hits, verified, distinct docs, slow checked, slow
    agreed)."""
    windows = TokenWindows(load_corpus(config.corpus), bridge.tokenizer)
    space = space_for(bridge, windows, target, config)  # the searches' own (built once per seed)
    evaluator = Evaluator(bridge, target, search_resamples(windows, space, config), precision=config.precision)
    avoid = set(space.base_docs) | set(config.exclude_docs)
    tokens, docs = _windows(windows, config, avoid)
    hit_rows: list[int] = []
    for i in range(0, len(tokens), config.batch):
        hits = is_hit(evaluator(tokens[i:i + config.batch]), config.thresholds, config.objective)
        hit_rows += [i + j for j in torch.nonzero(hits).flatten().tolist()]
    ok, checked, agreed = reverify(bridge, target, tokens[hit_rows], verify_resamples(windows, space, config), config)
    return len(tokens), len(hit_rows), int(ok.sum()), len({docs[r] for r, good in zip(hit_rows, ok) if good}), \
        checked, agreed


def reverify(bridge: Any, target: Component, tokens: torch.Tensor, fresh: torch.Tensor, config: SearchConfig, *,
             slow: int = 3) -> tuple[torch.Tensor, int, int]:
    """Which of ``tokens`` (distinct fast hits) are still hits against ``fresh`` resamples (the searches'
    verification resamples, never optimised against), scored on the batched fast path; the first ``slow`` of them
    are re-scored on the slow reference path (:func:`~advdla.search.evaluate.verify`) as well, and the count
    that agrees comes back: (ok per row, slow-checked, agreed).

    Why the fast path: the slow one costs about 40 single-prompt forwards per example, which on SmolLM2 and two
    busy cores is half a minute, more than the search itself once it finds dozens of hits.
    """
    if not len(tokens):
        return torch.zeros(0, dtype=torch.bool), 0, 0
    evaluator = Evaluator(bridge, target, fresh)  # fp32 whatever config.precision: this is the verification
    ok = torch.cat([is_hit(evaluator(tokens[i:i + config.batch]), config.thresholds, config.objective)
                    for i in range(0, len(tokens), config.batch)])
    agreed = sum(bool(is_hit(slow_scores(verify(bridge, target, tokens[i], fresh)), config.thresholds,
                             config.objective)) == bool(ok[i]) for i in range(min(slow, len(tokens))))
    return ok, min(slow, len(tokens)), agreed


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


def _search_arm(bridge: Any, config: SearchConfig, out_dir: Path) -> tuple[int, int, int, int, int, int]:
    """A search (its own slow verification off), then every distinct fast hit re-verified by :func:`reverify`:
    (candidates, distinct fast hits, verified, distinct docs, slow checked, slow agreed)."""
    cfg = dataclasses.replace(config, max_verify=0, max_examples=None)
    result = run_search(bridge, cfg, out_dir=out_dir)
    study = optuna.load_study(study_name=DEFAULT_STUDY, storage=open_storage(f"sqlite:///{out_dir / 'study.db'}"))
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    seen: dict[tuple[int, ...], Any] = {}
    for t in trials:
        if t.user_attrs["scores"]["adversarial"]:
            seen.setdefault(tuple(t.user_attrs["scores"]["tokens"]), t)
    windows = TokenWindows(load_corpus(config.corpus), bridge.tokenizer)
    target = parse_component(result.target, bridge.cfg)
    space = space_for(bridge, windows, target, config)
    tokens = torch.tensor(list(seen), dtype=torch.long).reshape(len(seen), config.seq_len)
    ok, checked, agreed = reverify(bridge, target, tokens, verify_resamples(windows, space, config), config)
    docs = {space.source_doc(t.params["context"]) for t, good in zip(seen.values(), ok) if good}
    return len(trials), len(seen), int(ok.sum()), len(docs), checked, agreed


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
                     f"({rows[-1].fast_hits} fast, {rows[-1].distinct_docs} documents, slow path agreed on "
                     f"{rows[-1].slow_agreed}/{rows[-1].slow_checked}, {rows[-1].seconds:.0f} s)")
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
    lo, hi = np.quantile(ratios, [0.025, 0.975], method="inverted_cdf")  # no interpolation: inf stays inf
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
        if "slow_checked" in f:
            row["slow_agreed_of"] = [int(f.slow_agreed.sum()), int(f.slow_checked.sum())]
        if arm == "tpe":
            for base in ("random", "natural"):
                other = frame[(frame.objective == objective) & (frame.arm == base)]
                if len(other):
                    rate = other.verified.sum() / max(other.candidates.sum(), 1)
                    row[f"x_{base}"] = float((k / max(n, 1)) / rate) if rate else math.inf
                    row[f"x_{base}_ci"] = _ratio_interval(f, other)
        out.append(row)
    return out
