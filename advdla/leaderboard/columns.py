"""The leaderboard's columns: one list, each entry saying what it shows, how it is written, where, and what it means.

Context: a ranked row (:func:`advdla.leaderboard.ranking.ranked_rows`) is a dict with every metric of every group
of examples, plus the paired differences from DLA. A table shows a chosen few of those values, each in its own way
(a mean with its interval, a difference starred where its interval excludes 0, seconds), and the terminal shows
fewer still. The markdown page explains the columns in its opening prose.

Intuition: all of that is one fact per column, so it lives in one :class:`Column` entry of the :data:`COLUMNS`
registry (:class:`advdla.registry.Registry`), in table order: its title, the row key it reads, how its cell is
written, whether the narrow terminal table shows it (and under which title), which paired difference from DLA the
rows carry for it, and the sentence of the page's prose that explains it. Adding a column is adding one entry.

    >>> [c.title for c in COLUMNS.values() if c.compact_title][:3]
    ['#', 'method', 'MCC vs TE adv']
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from advdla.leaderboard.records import GROUPS
from advdla.registry import Registry

__all__ = ["Column", "COLUMNS", "PRIMARY", "register_column", "compared_pairs", "estimate_cell", "difference_cell"]

# (row, row key, compact) -> the cell's text; ``compact``: the terminal's narrow table (intervals on a second line)
Cell = Callable[[Mapping[str, Any], str, bool], str]


@dataclass(frozen=True)
class Column:
    """One column of the leaderboard tables.

    ``key``: the ranked row's key the cell reads (a column no row has is left out of the table). ``compact_title``:
    the header in the terminal table, None for a column only the markdown shows. ``metric`` and ``group``: what a
    metric column shows; with ``compared`` the rows carry that metric's paired difference from DLA on that group
    (``vs_dla_{metric}_{abbr}``, in the JSON output) whether or not a column shows it. ``note``: the sentence of the
    markdown page's opening prose that explains the column, placed by ``note_rank`` (lower first).
    """

    title: str
    key: str
    cell: Cell
    compact_title: str | None = None
    metric: str | None = None
    group: str | None = None
    compared: bool = False
    note: str = ""
    note_rank: int = 0


COLUMNS: Registry[Column] = Registry("leaderboard column")


def register_column(column: Column) -> Column:
    """Append ``column`` to the tables (after the registered ones); titles are unique, since a cell is found by it."""
    return COLUMNS.add(column.title, column)


def compared_pairs() -> list[tuple[str, str]]:
    """The (metric, group) pairs whose paired difference from DLA every ranked row carries, group by group (the
    order of the rows' ``vs_dla_*`` keys)."""
    pairs = [(c.metric, c.group) for c in COLUMNS.values() if c.compared and c.metric and c.group]
    order = list(GROUPS)
    return sorted(dict.fromkeys(pairs), key=lambda pair: order.index(pair[1]))  # stable: column order in a group


# ------------------------------------------------------------------------------------------------- cells


def _rank_cell(r: Mapping[str, Any], key: str, compact: bool) -> str:
    return "" if r["role"] != "method" else str(r[key])  # the ceiling, reference and chance rows are not ranked


def _method_cell(r: Mapping[str, Any], key: str, compact: bool) -> str:
    name = r[key] if compact or not r["version"] else f"{r[key]} v{r['version']}"
    if not compact and r["params"]:
        name += " (" + ", ".join(f"{k}={v}" for k, v in sorted(r["params"].items())) + ")"
    tag = {"ceiling": "noise ceiling", "reference": "reads the truth"}.get(r["role"])
    return f"{name} [{tag}]" if tag else name


def estimate_cell(r: Mapping[str, Any], key: str, compact: bool) -> str:
    """``0.52 [0.41, 0.63]``: a mean with its interval (row key ``{key}_ci``), ``-`` where it is undefined."""
    v, ci, sep = r.get(key, math.nan), r.get(f"{key}_ci"), "\n" if compact else " "
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    s = f"{v:+.2f}" if v < 0 else f"{v:.2f}"
    if ci and not any(x is None or math.isnan(x) for x in ci):  # one document: no interval (see ranking._row)
        s += f"{sep}[{ci[0]:.2f},{ci[1]:.2f}]" if compact else f"{sep}[{ci[0]:.2f}, {ci[1]:.2f}]"
    return s


def difference_cell(r: Mapping[str, Any], key: str, compact: bool) -> str:
    """``+0.26* [+0.10, +0.41]``: a paired difference [mean, low, high], starred where its interval excludes 0."""
    v = r.get(key, math.nan)
    if not isinstance(v, list) or any(x is None or math.isnan(x) for x in v):
        return "-"
    (mean, lo, hi), sep = v, "\n" if compact else " "
    star = "*" if lo > 0 or hi < 0 else ""
    interval = f"[{lo:+.2f},{hi:+.2f}]" if compact else f"[{lo:+.2f}, {hi:+.2f}]"
    return f"{mean:+.2f}{star}{sep}{interval}"


def _seconds_cell(r: Mapping[str, Any], key: str, compact: bool) -> str:
    v = r.get(key, math.nan)
    if v is None or math.isnan(v):
        return "-"
    return f"{v:.2f}" if v < 10 else f"{v:.0f}"


def _counts_cell(r: Mapping[str, Any], key: str, compact: bool) -> str:
    return "/".join(str(r.get(f"n_{a}") or 0) for a in ("comp", "base", "nat"))


# ----------------------------------------------------------------------------------------------- entries


def _estimate(title: str, metric: str, group: str, *, compact: bool = False, **fields: Any) -> Column:
    """A metric's mean on a group of examples, with its interval (``spearman`` on ``compensation``: spearman_comp)."""
    return Column(title, f"{metric}_{GROUPS[group]}", estimate_cell, title if compact else None, metric, group,
                  **fields)


def _vs_dla(title: str, metric: str, group: str, *, compact: bool = False, **fields: Any) -> Column:
    """A metric's paired difference from DLA on a group of examples (the rows carry it: ``compared``)."""
    return Column(title, f"vs_dla_{metric}_{GROUPS[group]}", difference_cell, title if compact else None, metric,
                  group, compared=True, **fields)


_ROWS_NOTE = ("Rows: ranked methods; `split-half` (the truth's own split-half reliability, no method involved) is the "
              "noise ceiling, on top and not ranked; `exact-te` and `exact-de` return the truth's own total and direct "
              "effects (what a perfect estimator of each estimand scores), not ranked; *chance* is what an uninformed "
              "estimator scores on these examples.")
_MCC_NOTE = ("*MCC* (the primary metric) = Matthews correlation between the method's call \"this component matters\" "
             "(|estimate| >= tau |LD|) and the truth's (|TE| >= tau |LD|, tau = 0.1) over the panel: 1 for a perfect "
             "call, 0 for any constant or random one. *vs TE* scores every method against the total effect; *vs own* "
             "against the method's own estimand (the direct effect DE for DLA and its variants, the TE otherwise).")
_TARGET_NOTE = ("*target error* = |estimate - TE| / |LD| on the example's target (chance: the zero estimate's error); "
                "*false alarm* = share of examples whose target does not matter (|TE| < tau |LD|) but is called.")
_RANK_NOTE = ("*rank late* = Spearman over the components from 3 layers before the target on; *top-k* = share of the "
              "true top 3 (|TE| >= 0.05 |LD|) among the method's top 3; *AUPRC* = average precision of |estimate| for "
              "\"matters\" (chance: the base rate).")
_VS_DLA_NOTE = ("*vs DLA* = the paired difference from DLA on the same examples with its paired cluster-bootstrap "
                "interval over source files (`*`: the interval excludes 0; the verdict's tests are Holm-corrected, "
                "these cells are not). A group from a single source file has no interval.")

PRIMARY = "mcc@te"  # the primary metric: importance MCC against the total effect

for _column in (
    Column("#", "rank", _rank_cell, "#"),
    Column("method", "method", _method_cell, "method", note=_ROWS_NOTE, note_rank=5),
    Column("estimand", "estimand", lambda r, key, compact: str(r.get(key) or "")),
    _estimate("MCC vs TE adv", PRIMARY, "adversarial", compact=True, note=_MCC_NOTE, note_rank=1),
    _estimate("MCC vs own adv", "mcc@own", "adversarial"),
    _estimate("MCC vs TE nat", PRIMARY, "natural"),
    _estimate("target error comp", "target_error@te", "compensation", note=_TARGET_NOTE, note_rank=2),
    _estimate("target error base", "target_error@te", "baseline"),
    _estimate("false alarm comp", "false_alarm@te", "compensation"),
    _estimate("false alarm nat", "false_alarm@te", "natural"),
    _estimate("rank late adv", "rank_late@te", "adversarial", note=_RANK_NOTE, note_rank=3),
    _estimate("top-k adv", "topk_recall@te", "adversarial"),
    _estimate("AUPRC adv", "auprc@te", "adversarial"),
    _vs_dla("vs DLA: MCC adv", PRIMARY, "adversarial", compact=True, note=_VS_DLA_NOTE, note_rank=4),
    Column("s/ex", "seconds_per_example", _seconds_cell, "s/ex", note_rank=6,
           note="*s/ex*: the method's wall time per example (its cost; parameters in brackets after its name)."),
    Column("n comp/base/nat", "n_comp", _counts_cell),  # the terminal table says it in its title
):
    register_column(_column)
