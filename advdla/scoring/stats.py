"""Intervals for benchmark numbers: a seeded cluster bootstrap of a mean, of a paired difference between two methods,
and of a difference between two groups of examples.

Context: a suite's examples are not independent. Several adversarial prompts (and the natural windows beside them)
are cut from one base document, so they share whatever made that document easy or hard. Every interval here
resamples *clusters* (the base documents, :func:`advdla.scoring.cluster_of`) with replacement, never single
examples, so near-duplicates count once. All draws come from ``numpy.random.default_rng(seed)``: the same values
and seed give the same interval on any machine, which keeps records byte-for-byte reproducible.

Intuition: two methods scored on the same examples share the between-example variance (some examples are hard for
everyone), so their difference is far better determined than either mean: :func:`paired_interval` bootstraps the
difference itself. :func:`group_difference` compares one method on two kinds of examples (adversarial against
natural) while keeping each document whole across both kinds.
"""

from __future__ import annotations

import numpy as np
from jaxtyping import Bool, Float
from numpy import ndarray

__all__ = ["bootstrap_ci", "paired_interval", "group_difference", "group_difference_reference", "one_sided_p",
           "paired_p", "group_p", "holm", "holm_reference", "signflip_p", "signflip_min_p", "SIDES"]

SIDES = ("two-sided", "greater", "less")  # the alternatives of signflip_p: mean != null, mean > null, mean < null

Interval = tuple[float, float, float]  # point estimate, lower bound, upper bound


def _cluster_stats(values: Float[ndarray, " n"], clusters: ndarray
                   ) -> tuple[Float[ndarray, " cluster"], Float[ndarray, " cluster"]]:
    """Per cluster: the sum of its defined (non-NaN) values and how many there are."""
    ok = ~np.isnan(values)
    ids, inverse = np.unique(clusters, return_inverse=True)
    sums = np.bincount(inverse[ok], weights=values[ok], minlength=len(ids))
    counts = np.bincount(inverse[ok], minlength=len(ids)).astype(float)
    return sums, counts


def _quantiles(draws: ndarray, level: float) -> tuple[float, float]:
    """The percentile interval of bootstrap draws at ``level`` (0.95: the 2.5% and 97.5% quantiles)."""
    alpha = (1 - level) / 2
    return float(np.quantile(draws, alpha)), float(np.quantile(draws, 1 - alpha))


def bootstrap_ci(values: Float[ndarray, " n"], *, clusters: ndarray | None = None, n_boot: int = 1000, seed: int = 0,
                 level: float = 0.95) -> tuple[float, float]:
    """Seeded percentile bootstrap interval of the mean over examples (NaNs dropped).

    With ``clusters`` (one label per value: the base document an example was built on) whole clusters are
    resampled, so near-duplicate prompts from one document count once, not as independent evidence. Fewer than
    two clusters give no interval, (nan, nan): resampling a single document always draws the same mean, and a
    zero-width interval would claim a precision the data cannot show.
    """
    values = np.asarray(values, dtype=float)
    clusters = np.arange(len(values)) if clusters is None else np.asarray(clusters)
    sums, counts = _cluster_stats(values, clusters)
    keep = counts > 0
    sums, counts = sums[keep], counts[keep]
    if len(sums) < 2:
        return float("nan"), float("nan")
    idx = np.random.default_rng(seed).integers(0, len(sums), size=(n_boot, len(sums)))
    return _quantiles(sums[idx].sum(1) / counts[idx].sum(1), level)


def paired_interval(a: Float[ndarray, " n"], b: Float[ndarray, " n"], clusters: ndarray, *, n_boot: int = 1000,
                    seed: int = 0, level: float = 0.95) -> Interval:
    """Mean of a - b over the examples where both are defined, with a paired cluster-bootstrap interval.

    ``a`` and ``b`` are two methods' values of one metric on the same examples (aligned), ``clusters`` the
    examples' base documents. Pairing removes the between-example variance both methods share, so a real
    difference shows even where the two methods' own intervals overlap.
    """
    diff = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    ok = ~np.isnan(diff)
    if not ok.any():
        return float("nan"), float("nan"), float("nan")
    lo, hi = bootstrap_ci(diff[ok], clusters=np.asarray(clusters)[ok], n_boot=n_boot, seed=seed, level=level)
    return float(diff[ok].mean()), lo, hi


def group_difference(values: Float[ndarray, " n"], in_a: Bool[ndarray, " n"], clusters: ndarray, *,
                     n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> Interval:
    """Mean over group A minus mean over group B (one method, two kinds of examples), with a cluster-bootstrap
    interval that keeps documents whole across both groups.

    ``values``: one metric per example (NaNs dropped); ``in_a``: True for A (e.g. adversarial), False for B
    (natural); ``clusters``: the examples' base documents. Each draw resamples documents with replacement and
    takes both groups' means over the drawn documents, so an adversarial prompt and a natural window cut from
    the same document move together (paired through their document) and near-duplicates never count twice.
    Draws that miss a group are dropped. :func:`group_difference_reference` is the literal loop.
    """
    point, diffs = _group_draws(values, in_a, clusters, n_boot, seed)
    if diffs is None:
        return float("nan"), float("nan"), float("nan")
    return (point, *_quantiles(diffs, level))


def _group_draws(values: Float[ndarray, " n"], in_a: Bool[ndarray, " n"], clusters: ndarray, n_boot: int, seed: int
                 ) -> tuple[float, Float[ndarray, " b"] | None]:
    """The point difference of :func:`group_difference` and its finite bootstrap draws (None: a group is empty)."""
    values, in_a = np.asarray(values, dtype=float), np.asarray(in_a, dtype=bool)
    ok = ~np.isnan(values)
    if not (ok & in_a).any() or not (ok & ~in_a).any():
        return float("nan"), None
    clusters, v, a = np.asarray(clusters)[ok], values[ok], in_a[ok]
    n_docs = len(np.unique(clusters))
    sa, ca = _cluster_stats(np.where(a, v, np.nan), clusters)  # per document: group A's sum and count
    sb, cb = _cluster_stats(np.where(a, np.nan, v), clusters)  # ... and group B's
    idx = np.random.default_rng(seed).integers(0, n_docs, size=(n_boot, n_docs))
    with np.errstate(invalid="ignore", divide="ignore"):  # a draw without one group divides by zero: dropped below
        diffs = sa[idx].sum(1) / ca[idx].sum(1) - sb[idx].sum(1) / cb[idx].sum(1)
    return float(v[a].mean() - v[~a].mean()), diffs[np.isfinite(diffs)]


def group_p(values: Float[ndarray, " n"], in_a: Bool[ndarray, " n"], clusters: ndarray, *, n_boot: int = 1000,
            seed: int = 0) -> float:
    """One-sided p-value of "group A's mean exceeds group B's" from the draws of :func:`group_difference`."""
    _, diffs = _group_draws(values, in_a, clusters, n_boot, seed)
    return float("nan") if diffs is None or len(np.unique(clusters)) < 2 else one_sided_p(diffs)


def group_difference_reference(values: Float[ndarray, " n"], in_a: Bool[ndarray, " n"], clusters: ndarray, *,
                               n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> Interval:
    """:func:`group_difference` the slow, obvious way: per draw, collect the examples of the drawn documents."""
    keep = [i for i, x in enumerate(values) if not np.isnan(x)]
    docs = sorted({clusters[i] for i in keep})
    idx = np.random.default_rng(seed).integers(0, len(docs), size=(n_boot, len(docs)))
    diffs = []
    for draw in idx:
        a = [values[i] for d in draw for i in keep if clusters[i] == docs[d] and in_a[i]]
        b = [values[i] for d in draw for i in keep if clusters[i] == docs[d] and not in_a[i]]
        if a and b:
            diffs.append(sum(a) / len(a) - sum(b) / len(b))
    point = np.mean([values[i] for i in keep if in_a[i]]) - np.mean([values[i] for i in keep if not in_a[i]])
    return (float(point), *_quantiles(np.asarray(diffs), level))


# ------------------------------------------------------------------------------------------ hypothesis tests


def _draws_of_mean(values: Float[ndarray, " n"], clusters: ndarray, n_boot: int, seed: int) -> Float[ndarray, " b"]:
    """Cluster-bootstrap draws of the mean of ``values`` (NaNs dropped), as :func:`bootstrap_ci` takes them."""
    sums, counts = _cluster_stats(np.asarray(values, dtype=float), np.asarray(clusters))
    keep = counts > 0
    sums, counts = sums[keep], counts[keep]
    idx = np.random.default_rng(seed).integers(0, len(sums), size=(n_boot, len(sums)))
    return sums[idx].sum(1) / counts[idx].sum(1)


def one_sided_p(draws: Float[ndarray, " b"]) -> float:
    """The bootstrap p-value of "the difference is above 0": the share of draws at or below 0, with the +1
    correction that keeps it above 0 ((1 + #{draw <= 0}) / (1 + #draws))."""
    draws = np.asarray(draws, dtype=float)
    draws = draws[np.isfinite(draws)]
    return float((1 + (draws <= 0).sum()) / (1 + len(draws))) if len(draws) else float("nan")


def paired_p(a: Float[ndarray, " n"], b: Float[ndarray, " n"], clusters: ndarray, *, n_boot: int = 1000,
             seed: int = 0) -> float:
    """One-sided p-value of "mean(a - b) > 0" from the paired cluster bootstrap of :func:`paired_interval`
    (NaN with fewer than two clusters: no test)."""
    diff = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    ok = ~np.isnan(diff)
    if len(np.unique(np.asarray(clusters)[ok])) < 2:
        return float("nan")
    return one_sided_p(_draws_of_mean(diff[ok], np.asarray(clusters)[ok], n_boot, seed))


def holm(pvalues: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (NaN stays NaN and is not counted): the i-th smallest of m p-values is
    multiplied by m - i, then made monotone. Rejecting where the adjusted p < alpha controls the family-wise error
    at alpha over all m tests."""
    order = sorted((p, i) for i, p in enumerate(pvalues) if not np.isnan(p))
    m, out, running = len(order), [float("nan")] * len(pvalues), 0.0
    for rank, (p, i) in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out


def holm_reference(pvalues: list[float]) -> list[float]:
    """:func:`holm` the slow, obvious way: adjusted p_i = max over j ranked at or before i of min(1, (m - j) p_j)."""
    valid = [(p, i) for i, p in enumerate(pvalues) if not np.isnan(p)]
    ranked = sorted(valid)
    m = len(ranked)
    out = [float("nan")] * len(pvalues)
    for pos, (_, i) in enumerate(ranked):
        out[i] = max(min(1.0, (m - j) * ranked[j][0]) for j in range(pos + 1))
    return out


def _sign_patterns(n_clusters: int, n_perm: int, seed: int) -> tuple[Float[ndarray, "perm cluster"], bool]:
    """Every +-1 pattern over the clusters where there are at most ``n_perm`` (exact), else ``n_perm`` seeded draws."""
    if 2 ** n_clusters <= n_perm:
        bits = (np.arange(2 ** n_clusters)[:, None] >> np.arange(n_clusters)) & 1
        return 2.0 * bits - 1.0, True
    return np.random.default_rng(seed).choice([-1.0, 1.0], size=(n_perm, n_clusters)), False


def signflip_p(values: Float[ndarray, " n"], clusters: ndarray, *, null: float, side: str = "two-sided",
               n_perm: int = 20000, seed: int = 0) -> float:
    """p-value of "the mean of ``values`` is ``null``" by a cluster sign-flip (randomisation) test.

    Context: under the null each cluster's total deviation ``sum(values) - null * count`` is as likely to be
    positive as negative (clusters independent, deviations symmetric), so flipping the signs of whole clusters gives
    the statistic's null distribution: exactly, by enumerating all 2^C patterns where C is small, else by ``n_perm``
    seeded draws with the +1 correction. Unlike a bootstrap, the test is honest with few clusters: two source files
    allow only 4 patterns, so the smallest two-sided p is 0.5 and nothing is ever rejected on them.
    ``side``: ``two-sided`` (mean != null), ``greater`` (mean > null) or ``less`` (mean < null). NaNs are dropped;
    fewer than two clusters: NaN (no test).
    """
    if side not in SIDES:
        raise ValueError(f"side must be one of {SIDES}, got {side!r}")
    sums, counts = _cluster_stats(np.asarray(values, dtype=float), np.asarray(clusters))
    dev = (sums - null * counts)[counts > 0]
    if len(dev) < 2:
        return float("nan")
    signs, exact = _sign_patterns(len(dev), n_perm, seed)
    null_t, observed = signs @ dev, dev.sum()
    tol = 1e-9 * max(1.0, float(np.abs(dev).sum()))  # ties within rounding count as "as extreme"
    extreme = {"two-sided": np.abs(null_t) >= abs(observed) - tol, "greater": null_t >= observed - tol,
               "less": null_t <= observed + tol}[side]
    return float(extreme.mean()) if exact else float((1 + extreme.sum()) / (1 + len(null_t)))


def signflip_min_p(n_clusters: int, *, side: str = "two-sided", n_perm: int = 20000) -> float:
    """The smallest p-value :func:`signflip_p` can return with ``n_clusters`` clusters: what a test on that many source
    files can show at best (a cell whose smallest p is above the Holm threshold cannot be rejected at all)."""
    if n_clusters < 2:
        return float("nan")
    if 2 ** n_clusters <= n_perm:
        return (2.0 if side == "two-sided" else 1.0) / 2 ** n_clusters
    return 1.0 / (1 + n_perm)
