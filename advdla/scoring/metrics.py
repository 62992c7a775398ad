"""Metrics: how well a method's estimates match a suite's causal ground truth, per example and aggregated.

Context: for every suite example a method returns one estimate per panel component (:mod:`advdla.methods`). The
suite holds, per component, the total effect TE (``te_mean``) and the direct effect DE (``de_mean``). Each method
is scored against TE ("does this component matter?", what attributions are used for) and, when it claims to
estimate the direct effect (estimand ``direct``: DLA and its variants), also against DE (:data:`AGAINST`). Scores
are averaged per split and group (adversarial, natural, all, and the adversarial examples' mechanisms) with a
seeded cluster bootstrap over source documents for 95% intervals (:mod:`advdla.scoring.stats`).

Intuition: a metric is only worth reporting if a perfect estimate scores its best value on it and an estimate that
knows nothing (random noise, a constant) cannot do well; so every metric here carries its ``chance``, the value
an uninformed estimator gets on that truth, and the tests check random and constant estimates land on it.
"Matters" is absolute and two-sided: |x| >= tau |LD| (tau = 0.1), for the method's call as for the truth. The
Matthews correlation of the two is the primary metric: it is 0 for any random or constant call, while F1 gives
"everything matters" 2b / (1 + b) at base rate b.

Metrics (per example, over its panel; registered in :data:`METRICS` in this order; NaN where undefined):

- ``mcc``, ``precision``, ``recall``: the method's calls against "matters" (MCC: 0 for a constant call);
- ``auprc``: average precision of |estimate| for "matters", a tie broken at random (in expectation); its chance
  is the exact expected AP of a random order, (P-1)/(N-1) + (1 - (P-1)/(N-1)) H_N / N, which tends to the base
  rate P/N as the panel grows;
- ``target_error``: |estimate - truth| / |LD| on the example's target; ``false_alarm`` (the target does not
  matter, the method calls it) and ``miss`` (it matters, the method does not): 0/1 where defined;
- ``rank_full``, ``rank_late``, ``rank_flagged``: Spearman over the panel, over the late panel (layers from 3
  before the target's), over the method's own top ``k_flag`` by |estimate| ("are the components it points at the
  ones that matter, in that order?"); NaN below 3 components or for a constant;
- ``topk_recall``: share of the true top k (among |truth| >= floor |LD|) in the method's top k;
- ``spearman_w``: Spearman weighted by |truth|; ``auroc``: |estimate| against "matters";
- ``sign_agreement``: share of sum |truth| on components whose sign the method gets right (a zero estimate, no
  sign claimed, gets half); ``mae_norm``: mean |estimate - truth| over the panel, over |LD|.

"The top k" is advdla's one rule (:func:`advdla.attribution.magnitude_rank`: by |value|, ties to the earlier
component). Each metric's slow loop reference lives in :mod:`advdla.scoring.reference`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from jaxtyping import Bool, Float, Int
from numpy import ndarray
from scipy import stats

from advdla.errors import AdvdlaError
from advdla.registry import Registry
from advdla.scoring import reference as ref
from advdla.scoring.stats import bootstrap_ci
from advdla.suites import Example

__all__ = ["METRICS", "FRAME_COLUMNS", "AGAINST", "Context", "MetricSpec", "register_metric", "primary_metric",
           "example_context", "example_metrics", "example_chance", "cluster_of", "per_example_frame", "aggregate",
           "score_estimates"]

FRAME_COLUMNS = ["method", "split", "kind", "metric", "against", "value", "lo", "hi", "n", "chance"]
AGAINST = {"direct": ("te", "de"), "total": ("te",)}  # estimand -> the truths a method is scored against
_TRUTH_COLUMN = {"te": "te_mean", "de": "de_mean"}
NAN = float("nan")
Vec = Float[ndarray, " panel"]


@dataclass(frozen=True)
class Context:
    """What a metric needs besides the two vectors, for one example."""

    target: int  # index of the example's target in the panel
    ld: float  # the clean logit difference
    late: Bool[ndarray, " panel"]  # components in layers >= the target's layer - 3 (the late panel)
    k: int = 3  # top-k of topk_recall
    floor: float = 0.05  # the true top-k only holds |truth| >= floor |LD|
    tau: float = 0.1  # "matters": |x| >= tau |LD|
    k_flag: int = 10  # rank_flagged: the method's own top k_flag by |estimate|


@dataclass(frozen=True)
class MetricSpec:
    """A registered metric: ``fn(est, truth, ctx)`` (1-d float64, panel order), its slow ``reference`` (lists,
    the same value), its direction, and ``chance(truth, ctx)``: what an uninformed estimator gets (None: no such
    value, e.g. recall depends on how often the estimator calls). ``correlation``: the split-half ceiling
    Spearman-Brown-corrects it. Exactly one metric is ``primary`` (``mcc``)."""

    name: str
    fn: Callable[[Vec, Vec, Context], float]
    reference: Callable[[list[float], list[float], Context], float]
    higher_is_better: bool
    description: str
    chance: Callable[[Vec, Context], float] | None
    correlation: bool = False
    primary: bool = False


METRICS = Registry[MetricSpec]("metric")


def register_metric(name: str, *, higher_is_better: bool, description: str, reference: Callable,
                    chance: Callable | None, correlation: bool = False, primary: bool = False) -> Callable:
    """Decorator: register ``fn(est, truth, ctx) -> float``. Registration order is the order of a record's metrics;
    a second primary metric is refused."""

    def wrap(fn: Callable) -> Callable:
        if primary and any(m.primary for m in METRICS.values() if m.name != name):
            raise AdvdlaError(f"metric {name!r} cannot be primary: {primary_metric().name!r} already is")
        METRICS.add(name, MetricSpec(name, fn, reference, higher_is_better, description, chance, correlation,
                                     primary))
        return fn

    return wrap


def primary_metric() -> MetricSpec:
    """The one primary metric (``mcc``)."""
    return next(m for m in METRICS.values() if m.primary)


# ------------------------------------------------------------------------------------------------ helpers


def _says(x: Vec, ctx: Context) -> Bool[ndarray, " panel"]:
    """|x| >= tau |LD|: the method's call (x = est) or whether a component matters (x = truth)."""
    return np.abs(x) >= ctx.tau * abs(ctx.ld)


def _scale(ctx: Context) -> float:
    return max(abs(ctx.ld), 1e-6)


def _constant(x: Vec) -> bool:
    return len(x) < 3 or bool(np.ptp(x) == 0)


def _spearman(est: Vec, truth: Vec) -> float:
    if _constant(est) or _constant(truth):
        return NAN
    return float(stats.spearmanr(est, truth).statistic)


def _top(x: Vec, k: int) -> Int[ndarray, " k"]:
    """Indices of the top k by |x|, ties to the earlier component (magnitude_rank's rule, by a stable sort)."""
    return np.argsort(-np.abs(x), kind="stable")[:k]


def _true_top(truth: Vec, ctx: Context) -> set[int]:
    return {int(i) for i in _top(truth, ctx.k) if abs(truth[i]) >= ctx.floor * abs(ctx.ld)}


def _zero_if_defined(undefined: Callable[[Vec, Context], bool]) -> Callable[[Vec, Context], float]:
    return lambda truth, ctx: NAN if undefined(truth, ctx) else 0.0


def _one_label(truth: Vec, ctx: Context) -> bool:
    return len(set(_says(truth, ctx).tolist())) < 2


# ------------------------------------------------------------------------------------------------ metrics


@register_metric("mcc", higher_is_better=True, reference=ref.mcc, chance=_zero_if_defined(_one_label),
                 correlation=True, primary=True,
                 description="Matthews correlation of the call |est| >= tau|LD| with |truth| >= tau|LD|")
def mcc(est: Vec, truth: Vec, ctx: Context) -> float:
    calls, matters = _says(est, ctx), _says(truth, ctx)
    if _one_label(truth, ctx):
        return NAN
    if calls.all() or not calls.any():
        return 0.0  # a constant call knows nothing: 0 by convention (the formula's 0/0)
    tp, fp = int((calls & matters).sum()), int((calls & ~matters).sum())
    fn, tn = int((~calls & matters).sum()), int((~calls & ~matters).sum())
    return (tp * tn - fp * fn) / float(np.sqrt(float((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))))


@register_metric("precision", higher_is_better=True, reference=ref.precision,
                 chance=lambda truth, ctx: float(_says(truth, ctx).mean()),
                 description="share of the components the method calls that matter (chance: the base rate)")
def precision(est: Vec, truth: Vec, ctx: Context) -> float:
    calls = _says(est, ctx)
    return float((calls & _says(truth, ctx)).sum() / calls.sum()) if calls.any() else NAN


@register_metric("recall", higher_is_better=True, reference=ref.recall, chance=None,
                 description="share of the components that matter that the method calls")
def recall(est: Vec, truth: Vec, ctx: Context) -> float:
    matters = _says(truth, ctx)
    return float((_says(est, ctx) & matters).sum() / matters.sum()) if matters.any() else NAN


def _auprc_chance(truth: Vec, ctx: Context) -> float:
    return auprc(np.zeros_like(truth), truth, ctx)  # one tie of everything: a random order


@register_metric("auprc", higher_is_better=True, reference=ref.auprc, chance=_auprc_chance,
                 description="average precision of |estimate| for 'matters' (chance: a random order's)")
def auprc(est: Vec, truth: Vec, ctx: Context) -> float:
    matters = _says(truth, ctx)
    if not matters.any():
        return NAN
    values, group = np.unique(-np.abs(est), return_inverse=True)  # tie groups, largest |est| first
    g = np.bincount(group, minlength=len(values)).astype(float)
    p = np.bincount(group, weights=matters, minlength=len(values))
    above, above_pos = np.cumsum(g) - g, np.cumsum(p) - p
    total = 0.0
    for gi, pi, a, a_pos in zip(g, p, above, above_pos):
        if pi:
            s = np.arange(1, gi + 1)
            total += pi * ((a_pos + 1 + (s - 1) * (pi - 1) / max(gi - 1, 1)) / (a + s)).mean()
    return float(total / matters.sum())


@register_metric("target_error", higher_is_better=False, reference=ref.target_error,
                 chance=lambda truth, ctx: abs(truth[ctx.target]) / _scale(ctx),
                 description="|estimate - truth| / |LD| on the target (chance: the zero estimate's)")
def target_error(est: Vec, truth: Vec, ctx: Context) -> float:
    return float(abs(est[ctx.target] - truth[ctx.target]) / _scale(ctx))


@register_metric("false_alarm", higher_is_better=False, reference=ref.false_alarm, chance=None,
                 description="the method calls the target, which does not matter (where it does not)")
def false_alarm(est: Vec, truth: Vec, ctx: Context) -> float:
    return NAN if _says(truth, ctx)[ctx.target] else float(_says(est, ctx)[ctx.target])


@register_metric("miss", higher_is_better=False, reference=ref.miss, chance=None,
                 description="the method does not call the target, which matters (where it does)")
def miss(est: Vec, truth: Vec, ctx: Context) -> float:
    return float(not _says(est, ctx)[ctx.target]) if _says(truth, ctx)[ctx.target] else NAN


@register_metric("rank_full", higher_is_better=True, reference=ref.rank_full, correlation=True,
                 chance=_zero_if_defined(lambda truth, ctx: _constant(truth)),
                 description="Spearman over the whole panel")
def rank_full(est: Vec, truth: Vec, ctx: Context) -> float:
    return _spearman(est, truth)


@register_metric("rank_late", higher_is_better=True, reference=ref.rank_late, correlation=True,
                 chance=_zero_if_defined(lambda truth, ctx: _constant(truth[ctx.late])),
                 description="Spearman over the late panel (layers from 3 before the target's)")
def rank_late(est: Vec, truth: Vec, ctx: Context) -> float:
    return _spearman(est[ctx.late], truth[ctx.late])


@register_metric("rank_flagged", higher_is_better=True, reference=ref.rank_flagged, correlation=True,
                 chance=_zero_if_defined(lambda truth, ctx: min(len(truth), ctx.k_flag) < 3),
                 description="Spearman over the method's own top k_flag by |estimate|")
def rank_flagged(est: Vec, truth: Vec, ctx: Context) -> float:
    flagged = _top(est, ctx.k_flag)
    return _spearman(est[flagged], truth[flagged])


@register_metric("topk_recall", higher_is_better=True, reference=ref.topk_recall,
                 chance=lambda truth, ctx: min(ctx.k, len(truth)) / len(truth) if _true_top(truth, ctx) else NAN,
                 description="share of the true top-k (|truth| >= floor |LD|) in the method's top-k")
def topk_recall(est: Vec, truth: Vec, ctx: Context) -> float:
    true = _true_top(truth, ctx)
    return len({int(i) for i in _top(est, ctx.k)} & true) / len(true) if true else NAN


def _weighted_pearson(x: Vec, y: Vec, w: Vec) -> float:
    mx, my = (w * x).sum(), (w * y).sum()
    cov = (w * (x - mx) * (y - my)).sum()
    var = (w * (x - mx) ** 2).sum() * (w * (y - my) ** 2).sum()
    return float(cov / np.sqrt(var)) if var > 0 else NAN


@register_metric("spearman_w", higher_is_better=True, reference=ref.spearman_w, correlation=True,
                 chance=_zero_if_defined(lambda truth, ctx: _constant(truth)),
                 description="Spearman weighted by |truth|: the order of the components that matter")
def spearman_w(est: Vec, truth: Vec, ctx: Context) -> float:
    w = np.abs(truth)
    if w.sum() == 0 or _constant(est) or _constant(truth):
        return NAN
    return _weighted_pearson(stats.rankdata(est), stats.rankdata(truth), w / w.sum())


@register_metric("auroc", higher_is_better=True, reference=ref.auroc,
                 chance=lambda truth, ctx: 0.5 if not _one_label(truth, ctx) else NAN,
                 description="AUROC of |estimate| for 'matters' (|truth| >= tau |LD|)")
def auroc(est: Vec, truth: Vec, ctx: Context) -> float:
    matters = _says(truth, ctx)
    pos, neg = np.abs(est)[matters], np.abs(est)[~matters]
    if len(pos) == 0 or len(neg) == 0:
        return NAN
    return float((pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean())


@register_metric("sign_agreement", higher_is_better=True, reference=ref.sign_agreement,
                 chance=lambda truth, ctx: 0.5 if np.abs(truth).sum() > 0 else NAN,
                 description="share of sum |truth| on components whose sign the method gets right (0: half)")
def sign_agreement(est: Vec, truth: Vec, ctx: Context) -> float:
    weight = np.abs(truth)
    if weight.sum() == 0:
        return NAN
    credit = np.where(np.sign(est) == np.sign(truth), 1.0, np.where(est == 0, 0.5, 0.0))
    return float((weight * credit).sum() / weight.sum())


@register_metric("mae_norm", higher_is_better=False, reference=ref.mae_norm,
                 chance=lambda truth, ctx: float(np.abs(truth).mean() / _scale(ctx)),
                 description="mean |estimate - truth| over the panel, over |LD| (chance: the zero estimate's)")
def mae_norm(est: Vec, truth: Vec, ctx: Context) -> float:
    return float(np.abs(est - truth).mean() / _scale(ctx))


# ------------------------------------------------------------------------------------------- one example

_LAYER = re.compile(r"^(?:L(\d+)H\d+|MLP(\d+))$")


def _layer(name: str, cfg_layers: Mapping[str, int] | None) -> int:
    """A component's layer from its name (``L{l}H{h}``, ``MLP{l}``); embed, pos_embed, bias: -1."""
    if cfg_layers and name in cfg_layers:
        return int(cfg_layers[name])
    match = _LAYER.match(name)
    return int(match.group(1) or match.group(2)) if match else -1


def example_context(example: Example, *, cfg_layers: Mapping[str, int] | None = None, k: int = 3,
                    floor: float = 0.05, tau: float = 0.1) -> Context:
    """The :class:`Context` of one example: its target's index, LD, and the late panel (layers >= target's - 3).

    ``cfg_layers`` (name -> layer) overrides the layer read from a component's name."""
    panel = example.truth.panel
    if example.target not in panel:
        raise AdvdlaError(f"example {example.example_id}: target {example.target} is not in its panel; "
                          f"rebuild the suite")
    start = _layer(example.target, cfg_layers) - 3
    late = np.array([_layer(c, cfg_layers) >= start for c in panel], dtype=bool)
    return Context(target=panel.index(example.target), ld=float(example.truth.ld), late=late, k=k, floor=floor,
                   tau=tau)


def _truth_of(example: Example, against: str) -> Vec:
    if against not in _TRUTH_COLUMN:
        raise AdvdlaError(f"unknown truth {against!r} to score against: use one of {', '.join(_TRUTH_COLUMN)}")
    return getattr(example.truth, _TRUTH_COLUMN[against]).numpy().astype(np.float64)


def example_metrics(est: Iterable[float], example: Example, *, against: str = "te", k: int = 3, floor: float = 0.05,
                    tau: float = 0.1) -> dict[str, float]:
    """Every registered metric for one example: ``est`` in panel order against its TE (or ``against="de"``)."""
    ctx, truth = example_context(example, k=k, floor=floor, tau=tau), _truth_of(example, against)
    e = np.asarray(list(est), dtype=np.float64)
    if e.shape != truth.shape:
        raise AdvdlaError(f"example {example.example_id}: {e.size} estimates for a panel of {truth.size}")
    return {m.name: float(m.fn(e, truth, ctx)) for m in METRICS.values()}


def example_chance(example: Example, *, against: str = "te", k: int = 3, floor: float = 0.05,
                   tau: float = 0.1) -> dict[str, float]:
    """Each metric's chance value on one example's truth (NaN where a metric has none or it is undefined)."""
    ctx, truth = example_context(example, k=k, floor=floor, tau=tau), _truth_of(example, against)
    return {m.name: NAN if m.chance is None else float(m.chance(truth, ctx)) for m in METRICS.values()}


# ------------------------------------------------------------------------------------------- aggregation


def cluster_of(example: Example) -> str:
    """The bootstrap cluster of an example: its base document, or itself when the document is unknown."""
    return f"doc{example.source_doc}" if example.source_doc >= 0 else example.example_id


def per_example_frame(method: str, estimates: Mapping[str, Iterable[float]], examples: list[Example], *,
                      estimand: str = "total", clusters: Mapping[str, str] | None = None, k: int = 3,
                      tau: float = 0.1, floor: float = 0.05) -> pd.DataFrame:
    """One row per (example, metric, against): method, example_id, split, kind, mechanism, cluster, metric, against,
    value, chance. ``chance`` is NaN where ``value`` is, so a group's mean chance covers the same examples."""
    if estimand not in AGAINST:
        raise AdvdlaError(f"unknown estimand {estimand!r}: use one of {', '.join(AGAINST)}")
    out = []
    for ex in examples:
        base = {"method": method, "example_id": ex.example_id, "split": ex.split, "kind": ex.kind,
                "mechanism": ex.mechanism, "cluster": clusters[ex.example_id] if clusters else cluster_of(ex)}
        for against in AGAINST[estimand]:
            values = example_metrics(estimates[ex.example_id], ex, against=against, k=k, floor=floor, tau=tau)
            chance = example_chance(ex, against=against, k=k, floor=floor, tau=tau)
            out += [{**base, "metric": m, "against": against, "value": v, "chance": NAN if np.isnan(v) else chance[m]}
                    for m, v in values.items()]
    return pd.DataFrame(out)


def aggregate(per_example: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Mean per (method, split, group, metric, against) with cluster-bootstrap 95% intervals (``FRAME_COLUMNS``).

    The groups (column ``kind``): 'adversarial', 'natural', 'all' (both), and each mechanism of the
    adversarial examples ('compensation', 'baseline', 'mixed'). ``n`` counts the examples whose metric is
    defined (not NaN); ``chance`` is the mean of their per-example chance values (NaN where none has one).
    """
    if per_example.empty:
        return pd.DataFrame(columns=FRAME_COLUMNS)
    rows = per_example.to_dict("records")
    grouped = pd.DataFrame([{**r, "kind": g} for r in rows for g in _groups(r)], columns=list(per_example.columns))
    out = []
    for key, g in grouped.groupby(["method", "split", "kind", "metric", "against"], sort=False):
        vals, chance = g["value"].to_numpy(dtype=float), g["chance"].to_numpy(dtype=float)
        lo, hi = bootstrap_ci(vals, clusters=g["cluster"].to_numpy(), n_boot=n_boot, seed=seed)
        out.append(dict(zip(FRAME_COLUMNS[:5], key)) | {"value": _nanmean(vals), "lo": lo, "hi": hi,
                                                         "n": int((~np.isnan(vals)).sum()), "chance": _nanmean(chance)})
    return pd.DataFrame(out, columns=FRAME_COLUMNS)


def _nanmean(x: Float[ndarray, " n"]) -> float:
    return float(np.nanmean(x)) if (~np.isnan(x)).any() else NAN


def _groups(row: Mapping[str, Any]) -> list[str]:
    return [row["kind"], "all"] + ([row["mechanism"]] if row["kind"] == "adversarial" else [])


def score_estimates(method: str, estimates: Mapping[str, Iterable[float]], examples: list[Example], *,
                    estimand: str = "total", clusters: Mapping[str, str] | None = None, k: int = 3, tau: float = 0.1,
                    floor: float = 0.05, n_boot: int = 1000, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The tidy aggregated frame (``FRAME_COLUMNS``) and the per-example frame of one method's estimates."""
    per = per_example_frame(method, estimates, examples, estimand=estimand, clusters=clusters, k=k, tau=tau,
                            floor=floor)
    return aggregate(per, n_boot=n_boot, seed=seed), per
