"""Ranking: the role of each record's row, paired comparisons between two records, and the ranked rows of a table.

Context: one table is every current record of one (suite, suite version, split) (:func:`groups`). Its rows are not
all contestants. The *noise ceiling* (``output-patching`` run on the method resamples) is exact and differs from
the truth only because the truth averages over other resamples, so no method can be expected to beat it: it is
shown on top, not ranked. A *sanity* row reads the truth (``oracle``): shown below, not ranked. Which is which is
the method's registered metadata (:attr:`advdla.methods.MethodSpec.role`), not its name.

Intuition: two methods' intervals on the same examples overlap even where one is better on nearly every example,
because both share the examples' own variance. A *paired* comparison (:func:`paired`) bootstraps the per-example
differences instead, over whole base documents (:func:`advdla.scoring.paired_interval`): that is what tells a real
improvement from noise, and what :func:`beats` and the ``vs_dla_*`` values of a row report.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from jaxtyping import Float

from advdla.errors import AdvdlaError, did_you_mean
from advdla.leaderboard.columns import compared_pairs
from advdla.leaderboard.records import GROUPS, Entry, as_float, higher_is_better
from advdla.methods import METHODS, method_spec
from advdla.scoring import group_difference, paired_interval

__all__ = ["BASELINE", "ROLES", "role", "groups", "per_example", "n_documents", "paired", "beats", "adv_vs_natural",
           "sort_key", "ranked_rows"]

BASELINE = "dla"  # what every method is compared with, pairwise
ROLES = ("ceiling", "method", "sanity")  # a table's row order: the noise ceiling on top, sanity rows at the bottom
HIDDEN_PARAMS = {"seed", "batch_size"}  # knobs that do not change a method's numbers: not shown with its name


def role(entry: Entry) -> str:
    """``ceiling`` (the noise ceiling: shown on top, not ranked), ``sanity`` (a row that reads the truth, like
    ``oracle``: shown below, not ranked) or ``method``: the entry's method's registered ``MethodSpec.role``; a method
    not registered here (a plug-in that is not installed) is ranked as a method."""
    if entry.method in METHODS:  # the common case, without method_spec's entry-point scan (~10 ms a call)
        return METHODS[entry.method].role
    try:  # perhaps a plug-in that is installed but not loaded yet: method_spec loads the plug-ins
        return method_spec(entry.method).role
    except AdvdlaError:
        return "method"


def groups(entries: list[Entry]) -> dict[tuple[str, int, str], list[Entry]]:
    """Entries by (suite, suite version, split): each group is one ranked table."""
    out: dict[tuple[str, int, str], list[Entry]] = {}
    for e in entries:
        out.setdefault((e.suite, e.suite_version, e.split), []).append(e)
    return dict(sorted(out.items()))


# ------------------------------------------------------------------------------------- paired comparisons


def per_example(entry: Entry) -> dict[str, dict[str, Any]]:
    """The record's per-example rows (example_id -> {kind, mechanism, cluster, metric: value...})."""
    return {row["example_id"]: row for row in entry.record.get("per_example") or []}


def _in_group(row: dict[str, Any], group: str) -> bool:
    if group == "all":
        return True
    if group in ("adversarial", "natural"):
        return row.get("kind") == group
    return row.get("kind") == "adversarial" and row.get("mechanism") == group


def n_documents(entry: Entry, group: str, metric: str) -> int:
    """How many base documents the ``group`` examples with a defined ``metric`` come from: an interval needs two
    (records scored before intervals followed that rule may hold a zero-width one; the board drops it)."""
    rows = [r for r in per_example(entry).values() if _in_group(r, group) and not math.isnan(as_float(r.get(metric)))]
    return len({str(r.get("cluster", i)) for i, r in enumerate(rows)})


def paired(entry: Entry, base: Entry, metric: str, group: str) -> tuple[float, float, float, int]:
    """Mean of (entry - base) for ``metric`` over the ``group`` examples both were scored on, with the paired
    cluster-bootstrap 95% interval (:func:`advdla.scoring.paired_interval`) and the number of examples used."""
    mine, theirs = per_example(entry), per_example(base)
    ids = [i for i, row in theirs.items() if i in mine and _in_group(row, group)]
    a: Float[np.ndarray, " n"] = np.array([as_float(mine[i].get(metric)) for i in ids], dtype=float)
    b: Float[np.ndarray, " n"] = np.array([as_float(theirs[i].get(metric)) for i in ids], dtype=float)
    clusters = np.array([str(theirs[i].get("cluster", i)) for i in ids])
    n = int((~np.isnan(a - b)).sum()) if ids else 0
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    mean, lo, hi = paired_interval(a, b, clusters, seed=0)
    return mean, lo, hi, n


def beats(entry: Entry, base: Entry, metric: str, group: str) -> bool | None:
    """True when ``entry`` is better than ``base`` with a paired interval that excludes 0, False when it is
    not, None when there is nothing to compare (no shared examples in the group)."""
    mean, lo, hi, n = paired(entry, base, metric, group)
    if n == 0 or math.isnan(lo):
        return None
    return lo > 0 if higher_is_better(metric) else hi < 0


def adv_vs_natural(entry: Entry, metric: str) -> tuple[float, float, float]:
    """One method's ``metric`` on adversarial minus natural examples, with the document-cluster bootstrap
    interval of :func:`advdla.scoring.group_difference` (NaN where a kind is missing)."""
    rows = [r for r in per_example(entry).values() if r.get("kind") in ("adversarial", "natural")]
    if not rows:
        return math.nan, math.nan, math.nan
    values: Float[np.ndarray, " n"] = np.array([as_float(r.get(metric)) for r in rows], dtype=float)
    in_adv = np.array([r["kind"] == "adversarial" for r in rows])
    clusters = np.array([str(r.get("cluster", i)) for i, r in enumerate(rows)])
    return group_difference(values, in_adv, clusters, seed=0)


# ----------------------------------------------------------------------------------------------- ranking


def sort_key(sort: str) -> tuple[str, str]:
    """``spearman`` -> (adversarial, spearman); ``compensation.fooled`` -> (compensation, fooled); ``drop``."""
    kind, _, metric = sort.rpartition(".")
    return (kind or "adversarial"), metric


def ranked_rows(entries: list[Entry], *, sort: str = "spearman") -> list[dict[str, Any]]:
    """One row per method: the noise ceiling first (``rank`` 'ceiling'), then the methods best first by ``sort``
    (a metric on adversarial examples, or ``GROUP.METRIC``), then sanity rows (``rank`` 'sanity', e.g. oracle).

    Each row: rank, method, version, role, params, wall_time_s, every metric per group as ``{metric}_{abbr}``
    plus ``..._ci`` [low, high] (abbreviations in :data:`GROUPS`), the drops, and for every method but DLA its
    paired difference from DLA ``vs_dla_{metric}_{abbr}`` = [mean, low, high] for each (metric, group) a column
    asks for (:func:`advdla.leaderboard.columns.compared_pairs`; per-example records needed).
    """
    kind, metric = sort_key(sort)
    _check_sort(entries, sort, kind, metric)
    base = next((e for e in entries if e.method == BASELINE), None)
    rows = [_row(e, base) for e in entries]
    col = "drop_spearman" if metric == "drop" else f"{metric}_{GROUPS[kind]}"
    higher = next((e.higher_is_better[metric] for e in entries if metric in e.higher_is_better), True)
    sign = 1.0 if metric == "drop" or not higher else -1.0
    rows.sort(key=lambda r: (ROLES.index(r["role"]), math.isnan(r.get(col, math.nan)),
                             sign * _nan0(r.get(col, math.nan)), r["method"]))
    n = 0
    for r in rows:
        n += r["role"] == "method"
        r["rank"] = n if r["role"] == "method" else r["role"]
    return [{"rank": r.pop("rank"), **r} for r in rows]


def _check_sort(entries: list[Entry], sort: str, kind: str, metric: str) -> None:
    """An unknown group or metric in ``--sort`` stops with the known ones and a did-you-mean."""
    if kind not in GROUPS:
        raise AdvdlaError(f"unknown group {kind!r} in --sort {sort}: use METRIC or GROUP.METRIC with GROUP one of "
                          f"{', '.join(GROUPS)}{did_you_mean(kind, list(GROUPS))}")
    known = {m for e in entries for k in e.metrics.values() for m in k} | {"drop"}
    if entries and metric not in known:
        raise AdvdlaError(
            f"unknown --sort metric {metric!r}: known are {', '.join(sorted(known))}."
            f"{did_you_mean(metric, sorted(known))}"
        )


def _nan0(x: float) -> float:
    return 0.0 if math.isnan(x) else x


def _row(e: Entry, base: Entry | None) -> dict[str, Any]:
    """The entry's row: identity, every metric of every group with its interval, the drops, the paired differences."""
    params = {k: v for k, v in (e.record.get("method", {}).get("params") or {}).items()
              if k not in HIDDEN_PARAMS and v is not None}
    row: dict[str, Any] = {"method": e.method, "version": e.method_version, "role": role(e), "params": params,
                           "wall_time_s": as_float(e.record.get("wall_time_s"))}
    for kind, abbr in GROUPS.items():
        row[f"n_{abbr}"] = e.n.get(kind)
        for metric, (v, lo, hi) in sorted(e.metrics.get(kind, {}).items()):
            row[f"{metric}_{abbr}"] = v
            one_doc = per_example(e) and n_documents(e, kind, metric) < 2  # one document has no spread to show
            row[f"{metric}_{abbr}_ci"] = [math.nan, math.nan] if one_doc else [lo, hi]
    row["drop_spearman"] = e.value("natural", "spearman") - e.value("adversarial", "spearman")
    row["drop_fooled"] = e.value("adversarial", "fooled") - e.value("natural", "fooled")
    for metric in ("spearman", "fooled"):
        row[f"adv_vs_nat_{metric}"] = list(adv_vs_natural(e, metric))
    if base is not None and e is not base and row["role"] == "method":
        for metric, kind in compared_pairs():
            mean, lo, hi, n = paired(e, base, metric, kind)
            if n:
                row[f"vs_dla_{metric}_{GROUPS[kind]}"] = [mean, lo, hi]
    return row
