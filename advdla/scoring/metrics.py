"""Metrics: how well a method's estimates match a suite's causal ground truth, per example and aggregated.

Context: for every suite example a method returns one estimate per panel component (:mod:`advdla.methods`);
the suite holds the truth ``te_mean`` (the total effect, averaged over resamples). Scoring compares the two
per example, then averages per split and per kind (adversarial vs natural), with a seeded percentile
bootstrap over examples for 95% intervals. The result is a tidy pandas frame with the columns
``method, split, kind, metric, value, lo, hi, n``.

Metrics (per example, over its panel; registered with ``higher_is_better`` like lm-eval's metrics):

- ``spearman``, ``kendall``: rank correlation of estimate and truth (NaN when either is constant);
- ``topk_recall``: share of the true top k (below) that are among the k largest |estimate|;
- ``sign_agreement``: share of |truth| carried by components whose estimate has the truth's sign;
- ``mae_norm``: mean |estimate - truth| over the panel, divided by |LD| (lower is better);
- ``fooled``: 1 when the method puts the example's target in its top k by |estimate| (with |estimate| >=
  floor * |LD|) while the target is not in the true top k, else 0. Averaged, it is the fooled rate (lower is better).

The true top k: the k components with the largest |truth| *among those with |truth| >= floor * |LD|*
(``floor`` = 0.05 by default). Without the floor, an example where only two components matter would count
an erased writer with 1% of LD as "in the true top 3" just because everything else is smaller still.

Intuition: an adversarial example is built so that DLA puts an erased writer on top; ``fooled`` on the
adversarial kind is the number the benchmark exists for.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from advdla.suites import Example

__all__ = [
    "METRICS",
    "FRAME_COLUMNS",
    "MetricSpec",
    "register_metric",
    "example_metrics",
    "bootstrap_ci",
    "per_example_frame",
    "aggregate",
    "score_estimates",
]

FRAME_COLUMNS = ["method", "split", "kind", "metric", "value", "lo", "hi", "n"]


# ------------------------------------------------------------------------------------------------ metrics


@dataclass(frozen=True)
class MetricSpec:
    name: str
    fn: Callable[..., float]
    higher_is_better: bool
    description: str


METRICS: dict[str, MetricSpec] = {}


def register_metric(name: str, *, higher_is_better: bool, description: str) -> Callable:
    """Decorator: register ``fn(est, truth, *, target, ld, k, floor) -> float`` (est and truth: 1-d numpy arrays)."""

    def wrap(fn: Callable) -> Callable:
        METRICS[name] = MetricSpec(name, fn, higher_is_better, description)
        return fn

    return wrap


def _topk(x: np.ndarray, k: int) -> set[int]:
    """Indices of the k largest |x|; ties broken by panel order (stable), so results are deterministic."""
    return set(np.argsort(-np.abs(x), kind="stable")[:k].tolist())


def _true_topk(truth: np.ndarray, k: int, ld: float, floor: float) -> set[int]:
    """The k largest |truth| among components whose |truth| is at least ``floor * |LD|``."""
    return {i for i in _topk(truth, k) if abs(truth[i]) >= floor * abs(ld)}


def _correlation(fn: Callable, est: np.ndarray, truth: np.ndarray) -> float:
    if np.ptp(est) == 0 or np.ptp(truth) == 0:
        return float("nan")
    return float(fn(est, truth).statistic)


@register_metric("spearman", higher_is_better=True, description="Spearman rank correlation with the total effect")
def spearman(est: np.ndarray, truth: np.ndarray, **_: Any) -> float:
    return _correlation(stats.spearmanr, est, truth)


@register_metric("kendall", higher_is_better=True, description="Kendall tau-b with the total effect")
def kendall(est: np.ndarray, truth: np.ndarray, **_: Any) -> float:
    return _correlation(stats.kendalltau, est, truth)


@register_metric(
    "topk_recall", higher_is_better=True, description="share of the true top-k (by |TE|) in the method's top-k"
)
def topk_recall(est: np.ndarray, truth: np.ndarray, *, k: int, ld: float, floor: float, **_: Any) -> float:
    true = _true_topk(truth, k, ld, floor)
    return len(_topk(est, k) & true) / len(true) if true else float("nan")


@register_metric(
    "sign_agreement",
    higher_is_better=True,
    description="share of sum |TE| on components whose sign the method gets right",
)
def sign_agreement(est: np.ndarray, truth: np.ndarray, **_: Any) -> float:
    weight = np.abs(truth)
    return float((weight * (np.sign(est) == np.sign(truth))).sum() / weight.sum()) if weight.sum() > 0 else float("nan")


@register_metric("mae_norm", higher_is_better=False, description="mean |estimate - TE| over the panel, over |LD|")
def mae_norm(est: np.ndarray, truth: np.ndarray, *, ld: float, **_: Any) -> float:
    return float(np.abs(est - truth).mean() / max(abs(ld), 1e-6))


@register_metric(
    "fooled", higher_is_better=False, description="target in the method's top-k by |estimate| but not in the true top-k"
)
def fooled(est: np.ndarray, truth: np.ndarray, *, target: int, k: int, ld: float, floor: float, **_: Any) -> float:
    claimed = _true_topk(est, k, ld, floor)  # the same floor: a method that gives the target ~0 claims nothing
    return float(target in claimed and target not in _true_topk(truth, k, ld, floor))


def example_metrics(est: Iterable[float], example: Example, *, k: int = 3, floor: float = 0.05) -> dict[str, float]:
    """Every registered metric for one example: ``est`` in panel order against the example's ``te_mean``."""
    truth = example.truth
    e, t = np.asarray(list(est), dtype=float), truth.te_mean.numpy().astype(float)
    target = truth.panel.index(example.target)
    return {m.name: m.fn(e, t, target=target, ld=truth.ld, k=k, floor=floor) for m in METRICS.values()}


# ------------------------------------------------------------------------------------------- aggregation


def bootstrap_ci(values: np.ndarray, *, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Seeded percentile bootstrap interval of the mean over examples (NaNs dropped; a single value: (v, v))."""
    v = values[~np.isnan(values)]
    if len(v) == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), size=(n_boot, len(v)))].mean(1)
    alpha = (1 - level) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def per_example_frame(
    method: str, estimates: Mapping[str, Iterable[float]], examples: list[Example], *, k: int = 3
) -> pd.DataFrame:
    """One row per (example, metric): columns method, example_id, split, kind, metric, value."""
    out = []
    for ex in examples:
        for metric, value in example_metrics(estimates[ex.example_id], ex, k=k).items():
            out.append(
                {
                    "method": method,
                    "example_id": ex.example_id,
                    "split": ex.split,
                    "kind": ex.kind,
                    "metric": metric,
                    "value": value,
                }
            )
    return pd.DataFrame(out)


def aggregate(per_example: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Mean per (method, split, kind, metric) with bootstrap 95% intervals; kind 'all' pools both kinds.

    ``n`` counts the examples whose metric is defined (not NaN).
    """
    pooled = (
        pd.concat([per_example, per_example.assign(kind="all")]) if per_example["kind"].nunique() > 1 else per_example
    )
    out = []
    for (method, split, kind, metric), g in pooled.groupby(["method", "split", "kind", "metric"], sort=False):
        vals = g["value"].to_numpy(dtype=float)
        lo, hi = bootstrap_ci(vals, n_boot=n_boot, seed=seed)
        n = int((~np.isnan(vals)).sum())
        out.append(
            {
                "method": method,
                "split": split,
                "kind": kind,
                "metric": metric,
                "value": float(np.nanmean(vals)) if n else float("nan"),
                "lo": lo,
                "hi": hi,
                "n": n,
            }
        )
    return pd.DataFrame(out, columns=FRAME_COLUMNS)


def score_estimates(
    method: str,
    estimates: Mapping[str, Iterable[float]],
    examples: list[Example],
    *,
    k: int = 3,
    n_boot: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """The tidy frame (``FRAME_COLUMNS``) for one method's estimates keyed by example_id."""
    return aggregate(per_example_frame(method, estimates, examples, k=k), n_boot=n_boot, seed=seed)
