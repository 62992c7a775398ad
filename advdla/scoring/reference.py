"""Slow, obvious references for every metric in :mod:`advdla.scoring.metrics`: plain Python loops over lists.

Context: each metric's fast version (numpy, scipy, a stable argsort) is registered together with the reference
here, and the tests check the two agree to 1e-12 on hundreds of random inputs, ties included. A reference counts
what the metric's definition says, one component at a time, so that reading it is checking the definition:
``tp`` is "called and matters", a rank is "1 + how many are larger", a Pearson correlation is a covariance over two
standard deviations. Each takes ``(est, truth, ctx)``: two lists in panel order and the example's
:class:`advdla.scoring.metrics.Context`, and returns a float (NaN where the metric is undefined).

The one rule of "the method's top k" is :func:`advdla.attribution.magnitude_rank` (by |value|, ties to the
earlier panel component); the references call it, the fast versions reimplement it with a stable sort.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from advdla.attribution import magnitude_rank

if TYPE_CHECKING:
    from advdla.scoring.metrics import Context

__all__ = ["mcc", "precision", "recall", "auprc", "target_error", "false_alarm", "miss", "rank_full", "rank_late",
           "rank_flagged", "topk_recall", "spearman_w", "auroc", "sign_agreement", "mae_norm"]

NAN = float("nan")


def _says(xs: list[float], ctx: Context) -> list[bool]:
    """|x| >= tau |LD|: a method's call on each component (est) or whether it matters (truth)."""
    return [abs(x) >= ctx.tau * abs(ctx.ld) for x in xs]


def _confusion(est: list[float], truth: list[float], ctx: Context) -> tuple[int, int, int, int]:
    tp = fp = fn = tn = 0
    for call, real in zip(_says(est, ctx), _says(truth, ctx)):
        tp, fp = tp + (call and real), fp + (call and not real)
        fn, tn = fn + (real and not call), tn + (not real and not call)
    return tp, fp, fn, tn


def mcc(est: list[float], truth: list[float], ctx: Context) -> float:
    matters, calls = _says(truth, ctx), _says(est, ctx)
    if len(set(matters)) == 1:
        return NAN
    if len(set(calls)) == 1:
        return 0.0
    tp, fp, fn, tn = _confusion(est, truth, ctx)
    return (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))


def precision(est: list[float], truth: list[float], ctx: Context) -> float:
    tp, fp, _, _ = _confusion(est, truth, ctx)
    return tp / (tp + fp) if tp + fp else NAN


def recall(est: list[float], truth: list[float], ctx: Context) -> float:
    tp, _, fn, _ = _confusion(est, truth, ctx)
    return tp / (tp + fn) if tp + fn else NAN


def auprc(est: list[float], truth: list[float], ctx: Context) -> float:
    """Average precision, each tie among |est| broken uniformly at random, in expectation.

    For a positive j whose |est| ties with g components (j included, p of them positive), a stricly above it
    (a_pos of them positive): j lands at place s = 1..g of its tie with probability 1/g, and then on average
    (s - 1)(p - 1)/(g - 1) of the tie's other positives stand above it."""
    matters, mag = _says(truth, ctx), [abs(x) for x in est]
    if not any(matters):
        return NAN
    total = 0.0
    for j in range(len(est)):
        if not matters[j]:
            continue
        above = [i for i in range(len(est)) if mag[i] > mag[j]]
        tie = [i for i in range(len(est)) if mag[i] == mag[j]]
        a, a_pos, g, p = len(above), sum(matters[i] for i in above), len(tie), sum(matters[i] for i in tie)
        total += sum((a_pos + 1 + (s - 1) * (p - 1) / max(g - 1, 1)) / (a + s) for s in range(1, g + 1)) / g
    return total / sum(matters)


def target_error(est: list[float], truth: list[float], ctx: Context) -> float:
    return abs(est[ctx.target] - truth[ctx.target]) / max(abs(ctx.ld), 1e-6)


def false_alarm(est: list[float], truth: list[float], ctx: Context) -> float:
    if _says(truth, ctx)[ctx.target]:
        return NAN
    return 1.0 if _says(est, ctx)[ctx.target] else 0.0


def miss(est: list[float], truth: list[float], ctx: Context) -> float:
    if not _says(truth, ctx)[ctx.target]:
        return NAN
    return 0.0 if _says(est, ctx)[ctx.target] else 1.0


def _ranks(xs: list[float]) -> list[float]:
    """Average ranks (1-based): 1 + how many are smaller + half of the others equal."""
    return [1 + sum(y < x for y in xs) + (sum(y == x for y in xs) - 1) / 2 for x in xs]


def _pearson(xs: list[float], ys: list[float], ws: list[float] | None = None) -> float:
    ws = [1.0 / len(xs)] * len(xs) if ws is None else ws
    mx, my = sum(w * x for w, x in zip(ws, xs)), sum(w * y for w, y in zip(ws, ys))
    cov = sum(w * (x - mx) * (y - my) for w, x, y in zip(ws, xs, ys))
    vx, vy = sum(w * (x - mx) ** 2 for w, x in zip(ws, xs)), sum(w * (y - my) ** 2 for w, y in zip(ws, ys))
    return cov / math.sqrt(vx * vy) if vx * vy > 0 else NAN


def _spearman(est: list[float], truth: list[float]) -> float:
    if len(est) < 3 or len(set(est)) == 1 or len(set(truth)) == 1:
        return NAN
    return _pearson(_ranks(est), _ranks(truth))


def rank_full(est: list[float], truth: list[float], ctx: Context) -> float:
    return _spearman(est, truth)


def rank_late(est: list[float], truth: list[float], ctx: Context) -> float:
    late = [i for i in range(len(est)) if ctx.late[i]]
    return _spearman([est[i] for i in late], [truth[i] for i in late])


def _top(xs: list[float], k: int) -> list[int]:
    values = torch.tensor(xs, dtype=torch.float64)
    return [i for i in range(len(xs)) if int(magnitude_rank(values, i)) <= k]


def rank_flagged(est: list[float], truth: list[float], ctx: Context) -> float:
    flagged = _top(est, ctx.k_flag)
    return _spearman([est[i] for i in flagged], [truth[i] for i in flagged])


def topk_recall(est: list[float], truth: list[float], ctx: Context) -> float:
    true = [i for i in _top(truth, ctx.k) if abs(truth[i]) >= ctx.floor * abs(ctx.ld)]
    mine = _top(est, ctx.k)
    return sum(i in mine for i in true) / len(true) if true else NAN


def spearman_w(est: list[float], truth: list[float], ctx: Context) -> float:
    weight = [abs(t) for t in truth]
    if sum(weight) == 0 or len(set(est)) == 1 or len(set(truth)) == 1:
        return NAN
    return _pearson(_ranks(est), _ranks(truth), [w / sum(weight) for w in weight])


def auroc(est: list[float], truth: list[float], ctx: Context) -> float:
    matters = _says(truth, ctx)
    pos = [abs(e) for e, m in zip(est, matters) if m]
    neg = [abs(e) for e, m in zip(est, matters) if not m]
    if not pos or not neg:
        return NAN
    return sum(1.0 if p > q else 0.5 if p == q else 0.0 for p in pos for q in neg) / (len(pos) * len(neg))


def _sign(x: float) -> int:
    return int(x > 0) - int(x < 0)


def sign_agreement(est: list[float], truth: list[float], ctx: Context) -> float:
    """A zero estimate claims no sign: half credit, like a coin."""
    weight = sum(abs(t) for t in truth)
    if weight == 0:
        return NAN
    credit = [1.0 if _sign(e) == _sign(t) else 0.5 if e == 0 else 0.0 for e, t in zip(est, truth)]
    return sum(c * abs(t) for c, t in zip(credit, truth)) / weight


def mae_norm(est: list[float], truth: list[float], ctx: Context) -> float:
    return sum(abs(e - t) for e, t in zip(est, truth)) / len(est) / max(abs(ctx.ld), 1e-6)
