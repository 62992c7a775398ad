"""Ranking: the role of each record's row, paired comparisons between two records, and the ranked rows of a table.

Context: one table is every current record of one (suite, suite version, split) (:func:`groups`). Its rows are not
all contestants. The *noise ceiling* (``split-half``: the truth's own split-half reliability, no method involved) is
shown on top, not ranked. *Reference* rows read the truth (``exact-te``, ``exact-de``: what a perfect estimator of each
estimand scores): shown below, not ranked; a *chance* row (what an uninformed estimator scores on the same examples)
ends the table. Which is which is the role the record states (its method's registered
:attr:`advdla.methods.MethodSpec.role`), not its name.

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

__all__ = ["BASELINE", "ROLES", "role", "groups", "per_example", "in_group", "n_documents", "paired", "beats",
           "adv_vs_natural", "sort_key", "ranked_rows", "chance_row"]

BASELINE = "dla"  # what every method is compared with, pairwise
ROLES = ("ceiling", "method", "reference", "chance")  # a table's row order: the ceiling on top, chance at the bottom
HIDDEN_PARAMS = {"seed", "batch_size"}  # knobs that do not change a method's numbers: not shown with its name


def role(entry: Entry) -> str:
    """``ceiling`` (the noise ceiling: shown on top, not ranked), ``reference`` (a row that reads the truth, like
    ``exact-te``: shown below, not ranked) or ``method``: the role the record states, else the entry's method's
    registered ``MethodSpec.role``; a method not registered here (a plug-in that is not installed) is ranked."""
    stated = (entry.record.get("method") or {}).get("role")
    if stated in ROLES:
        return stated
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


def in_group(row: dict[str, Any], group: str) -> bool:
    if group == "all":
        return True
    if group in ("adversarial", "natural"):
        return row.get("kind") == group
    return row.get("kind") == "adversarial" and row.get("mechanism") == group


def n_documents(entry: Entry, group: str, metric: str) -> int:
    """How many base documents the ``group`` examples with a defined ``metric`` come from: an interval needs two
    (records scored before intervals followed that rule may hold a zero-width one; the board drops it)."""
    rows = [r for r in per_example(entry).values() if in_group(r, group) and not math.isnan(as_float(r.get(metric)))]
    return len({str(r.get("cluster", i)) for i, r in enumerate(rows)})


def paired(entry: Entry, base: Entry, metric: str, group: str) -> tuple[float, float, float, int]:
    """Mean of (entry - base) for ``metric`` over the ``group`` examples both were scored on, with the paired
    cluster-bootstrap 95% interval (:func:`advdla.scoring.paired_interval`) and the number of examples used."""
    mine, theirs = per_example(entry), per_example(base)
    ids = [i for i, row in theirs.items() if i in mine and in_group(row, group)]
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
    """``mcc`` -> (adversarial, mcc@te); ``compensation.target_error@de`` -> (compensation, target_error@de)."""
    kind, _, metric = sort.rpartition(".")
    return (kind or "adversarial"), metric if "@" in metric else f"{metric}@te"


def ranked_rows(entries: list[Entry], *, sort: str = "mcc@te") -> list[dict[str, Any]]:
    """One row per method: the noise ceiling first (``rank`` 'ceiling'), then the methods best first by ``sort``
    (a ``metric@against`` on adversarial examples, or ``GROUP.METRIC@AGAINST``; ``@te`` when omitted), then the
    reference rows (``rank`` 'reference', e.g. exact-te), then the chance row.

    Each row: rank, method, version, role, estimand, params, wall_time_s, seconds_per_example, every metric per group
    as ``{metric@against}_{abbr}`` plus ``..._ci`` [low, high] (abbreviations in :data:`GROUPS`), the same under
    ``{metric}@own`` for the method's own estimand, and for every method but DLA its paired difference from DLA
    ``vs_dla_{metric@against}_{abbr}`` = [mean, low, high] for each (metric, group) a column asks for
    (:func:`advdla.leaderboard.columns.compared_pairs`; per-example records needed).
    """
    kind, metric = sort_key(sort)
    _check_sort(entries, sort, kind, metric)
    base = next((e for e in entries if e.method == BASELINE), None)
    rows = [_row(e, base) for e in entries] + ([chance_row(entries)] if entries else [])
    col = f"{metric}_{GROUPS[kind]}"
    higher = next((e.higher_is_better[metric] for e in entries if metric in e.higher_is_better), True)
    sign = 1.0 if not higher else -1.0
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
    known = {m for e in entries for k in e.metrics.values() for m in k}
    if entries and metric not in known:
        raise AdvdlaError(
            f"unknown --sort metric {metric!r}: known are {', '.join(sorted(known))}."
            f"{did_you_mean(metric, sorted(known))}"
        )


def _nan0(x: float) -> float:
    return 0.0 if math.isnan(x) else x


def _row(e: Entry, base: Entry | None) -> dict[str, Any]:
    """The entry's row: identity, cost, every metric of every group with its interval, the paired differences."""
    method = e.record.get("method", {})
    params = {k: v for k, v in (method.get("params") or {}).items() if k not in HIDDEN_PARAMS and v is not None}
    n_examples = e.record.get("n_examples") or 0
    wall = as_float(e.record.get("wall_time_s"))
    row: dict[str, Any] = {"method": e.method, "version": e.method_version, "role": role(e), "params": params,
                           "estimand": method.get("estimand", "total"), "wall_time_s": wall,
                           "seconds_per_example": wall / n_examples if n_examples else math.nan}
    own = "de" if row["estimand"] == "direct" else "te"
    for kind, abbr in GROUPS.items():
        row[f"n_{abbr}"] = e.n.get(kind)
        for metric, (v, lo, hi) in sorted(e.metrics.get(kind, {}).items()):
            one_doc = per_example(e) and n_documents(e, kind, metric) < 2  # one source file has no spread to show
            cells = {f"{metric}_{abbr}": v, f"{metric}_{abbr}_ci": [math.nan, math.nan] if one_doc else [lo, hi]}
            row.update(cells)
            name, _, against = metric.partition("@")
            if against == own:
                row.update({k.replace(metric, f"{name}@own", 1): c for k, c in cells.items()})
    if base is not None and e is not base and row["role"] == "method":
        for metric, kind in compared_pairs():
            mean, lo, hi, n = paired(e, base, metric, kind)
            if n:
                row[f"vs_dla_{metric}_{GROUPS[kind]}"] = [mean, lo, hi]
    return row


def chance_row(entries: list[Entry]) -> dict[str, Any]:
    """What an uninformed estimator scores on the table's examples, metric by metric (from the records' ``chance``;
    NaN where a metric has none): the row every method must clear."""
    row: dict[str, Any] = {"method": "chance", "version": "", "role": "chance", "params": {}, "estimand": ""}
    for e in entries:
        for kind, abbr in GROUPS.items():
            for metric, value in e.chance.get(kind, {}).items():
                if math.isnan(value):
                    continue
                row.setdefault(f"{metric}_{abbr}", value)
                if metric.endswith("@te"):  # an uninformed estimator of either estimand, scored against the TE
                    row.setdefault(f"{metric[:-3]}@own_{abbr}", value)
    return row
