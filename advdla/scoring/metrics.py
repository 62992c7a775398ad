"""Metrics: how well a method's estimates match a suite's causal ground truth, per example and aggregated.

Context: for every suite example a method returns one estimate per panel component (:mod:`advdla.methods`);
the suite holds the truth ``te_mean`` (the total effect, averaged over resamples). Scoring compares the two
per example, then averages per split and per group (adversarial, natural, all, and the adversarial examples'
mechanisms), with a seeded percentile bootstrap over *base documents* (clusters) for 95% intervals. The result
is a tidy pandas frame with the columns ``method, split, kind, metric, value, lo, hi, n``; methods are compared
with paired cluster-bootstrap intervals (the intervals live in :mod:`advdla.scoring.stats`).

Metrics (per example, over its panel; registered in :data:`METRICS`, an :class:`advdla.registry.Registry` of
:class:`MetricSpec`, with ``higher_is_better`` like lm-eval's ``@register_metric("spearman", higher_is_better=True)``):

- ``spearman``, ``kendall``: rank correlation of estimate and truth (NaN when either is constant);
- ``topk_recall``: share of the true top k (below) that are among the k largest |estimate|;
- ``sign_agreement``: share of |truth| carried by components whose estimate has the truth's sign;
- ``mae_norm``: mean |estimate - truth| over the panel, divided by |LD| (lower is better);
- ``spearman_w``: Spearman weighted by |truth| (a weighted Pearson correlation of the ranks): the order among
  near-zero effects hardly counts;
- ``auroc``: how well |estimate| separates the components that matter (|truth| >= 0.1 |LD|) from the rest;
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
import torch
from scipy import stats

from advdla.attribution import magnitude_rank
from advdla.registry import Registry
from advdla.scoring.stats import bootstrap_ci
from advdla.suites import Example

__all__ = ["METRICS", "FRAME_COLUMNS", "MetricSpec", "register_metric", "example_metrics", "cluster_of",
           "per_example_frame", "aggregate", "score_estimates"]

FRAME_COLUMNS = ["method", "split", "kind", "metric", "value", "lo", "hi", "n"]


# ------------------------------------------------------------------------------------------------ metrics


@dataclass(frozen=True)
class MetricSpec:
    """A registered metric: ``fn(est, truth, *, target, ld, k, floor) -> float`` and what a table says about it
    (records store ``higher_is_better`` with every value, so a reader needs no registry to rank them)."""

    name: str
    fn: Callable[..., float]
    higher_is_better: bool
    description: str


METRICS = Registry[MetricSpec]("metric")


def register_metric(name: str, *, higher_is_better: bool, description: str) -> Callable:
    """Decorator: register ``fn(est, truth, *, target, ld, k, floor) -> float`` (est and truth: 1-d numpy arrays).

    The order of registration is the order of a record's metrics (and of its per-example columns)."""

    def wrap(fn: Callable) -> Callable:
        METRICS.add(name, MetricSpec(name, fn, higher_is_better, description))
        return fn

    return wrap


def _topk(x: np.ndarray, k: int) -> set[int]:
    """Components in the top k of ``x``: advdla's one rule (:func:`advdla.attribution.magnitude_rank`: by |x|,
    ties to the earlier panel component), the rule the search and the suite thresholds use too."""
    values = torch.from_numpy(np.asarray(x, dtype=float))
    return {i for i in range(len(values)) if int(magnitude_rank(values, i)) <= k}


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


@register_metric("spearman_w", higher_is_better=True,
                 description="Spearman rank correlation weighted by |TE|: the order of the components that matter")
def spearman_w(est: np.ndarray, truth: np.ndarray, **_: Any) -> float:
    w = np.abs(truth)
    if w.sum() == 0 or np.ptp(est) == 0 or np.ptp(truth) == 0:
        return float("nan")
    return _weighted_pearson(stats.rankdata(est), stats.rankdata(truth), w / w.sum())


def _weighted_pearson(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    mx, my = (w * x).sum(), (w * y).sum()
    cov = (w * (x - mx) * (y - my)).sum()
    var = (w * (x - mx) ** 2).sum() * (w * (y - my) ** 2).sum()
    return float(cov / np.sqrt(var)) if var > 0 else float("nan")


@register_metric("auroc", higher_is_better=True,
                 description="AUROC of |estimate| for 'this component matters' (|TE| >= 0.1 |LD|)")
def auroc(est: np.ndarray, truth: np.ndarray, *, ld: float, **_: Any) -> float:
    matters = np.abs(truth) >= 0.1 * abs(ld)
    pos, neg = np.abs(est)[matters], np.abs(est)[~matters]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).mean()
    ties = (pos[:, None] == neg[None, :]).mean()
    return float(greater + 0.5 * ties)


def example_metrics(est: Iterable[float], example: Example, *, k: int = 3, floor: float = 0.05) -> dict[str, float]:
    """Every registered metric for one example: ``est`` in panel order against the example's ``te_mean``."""
    truth = example.truth
    e, t = np.asarray(list(est), dtype=float), truth.te_mean.numpy().astype(float)
    target = truth.panel.index(example.target)
    return {m.name: m.fn(e, t, target=target, ld=truth.ld, k=k, floor=floor) for m in METRICS.values()}


# ------------------------------------------------------------------------------------------- aggregation


def cluster_of(example: Example) -> str:
    """The bootstrap cluster of an example: its base document, or itself when the document is unknown."""
    return f"doc{example.source_doc}" if example.source_doc >= 0 else example.example_id


def per_example_frame(method: str, estimates: Mapping[str, Iterable[float]], examples: list[Example], *,
                      k: int = 3) -> pd.DataFrame:
    """One row per (example, metric): method, example_id, split, kind, mechanism, cluster, metric, value."""
    out = []
    for ex in examples:
        base = {"method": method, "example_id": ex.example_id, "split": ex.split, "kind": ex.kind,
                "mechanism": ex.mechanism, "cluster": cluster_of(ex)}
        for metric, value in example_metrics(estimates[ex.example_id], ex, k=k).items():
            out.append({**base, "metric": metric, "value": value})
    return pd.DataFrame(out)


def aggregate(per_example: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Mean per (method, split, group, metric) with cluster-bootstrap 95% intervals.

    The groups (column ``kind``): 'adversarial', 'natural', 'all' (both), and each mechanism of the
    adversarial examples ('compensation', 'baseline', 'mixed'). ``n`` counts the examples whose metric is
    defined (not NaN).
    """
    rows = per_example.to_dict("records")
    grouped = pd.DataFrame([{**r, "kind": g} for r in rows for g in _groups(r)], columns=list(per_example.columns))
    out = []
    for (method, split, kind, metric), g in grouped.groupby(["method", "split", "kind", "metric"], sort=False):
        vals = g["value"].to_numpy(dtype=float)
        lo, hi = bootstrap_ci(vals, clusters=g["cluster"].to_numpy(), n_boot=n_boot, seed=seed)
        n = int((~np.isnan(vals)).sum())
        mean = float(np.nanmean(vals)) if n else float("nan")
        out.append({"method": method, "split": split, "kind": kind, "metric": metric, "value": mean, "lo": lo,
                    "hi": hi, "n": n})
    return pd.DataFrame(out, columns=FRAME_COLUMNS)


def _groups(row: Mapping[str, Any]) -> list[str]:
    return [row["kind"], "all"] + ([row["mechanism"]] if row["kind"] == "adversarial" else [])


def score_estimates(method: str, estimates: Mapping[str, Iterable[float]], examples: list[Example], *, k: int = 3,
                    n_boot: int = 1000, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The tidy aggregated frame (``FRAME_COLUMNS``) and the per-example frame of one method's estimates."""
    per = per_example_frame(method, estimates, examples, k=k)
    return aggregate(per, n_boot=n_boot, seed=seed), per
