"""The uninformed methods (``random``, ``constant``) against chance, over every cell of a leaderboard's records.

Context: a board shows each metric's chance level beside the methods, and an uninformed method should sit on it
everywhere. :func:`chance_cells` cuts the records of those methods into cells, one per (suite version, split,
group, method, metric@against), with the per-example values and source files the record holds and the record's
chance level; :func:`advdla.scoring.chance.chance_check` tests them all at once (sign-flip tests, Holm over the
cells). The groups are the two disjoint kinds of example, adversarial and natural: the mechanisms and "all" are
unions of them and would test the same examples twice. :func:`chance_lines` states the outcome in sentences, for
``advdla leaderboard chance`` and for ``LEADERBOARD.md``.
"""

from __future__ import annotations

import math

import numpy as np

from advdla.leaderboard.ranking import in_group, per_example
from advdla.leaderboard.records import Entry, as_float
from advdla.scoring.chance import ZERO_ESTIMATE_CHANCE, CellResult, ChanceCell, ChanceCheck, chance_check

__all__ = ["UNINFORMED", "TESTED_GROUPS", "chance_cells", "check_board", "chance_lines"]

UNINFORMED = ("random", "constant")  # the methods that know nothing: every metric should score them at chance
TESTED_GROUPS = ("adversarial", "natural")  # disjoint: each example is tested once per metric


def _cell(entry: Entry, group: str, metric: str) -> ChanceCell:
    rows = [r for r in per_example(entry).values() if in_group(r, group)]
    labels = {"suite": f"{entry.suite} v{entry.suite_version}", "split": entry.split, "group": group,
              "method": entry.method}
    return ChanceCell(labels, metric, np.array([as_float(r.get(metric)) for r in rows], dtype=float),
                      np.array([str(r.get("cluster", r.get("example_id"))) for r in rows]),
                      entry.chance[group][metric])


def chance_cells(entries: list[Entry], *, methods: tuple[str, ...] = UNINFORMED) -> list[ChanceCell]:
    """One cell per (entry of ``methods``, tested group, metric with a chance level in the record)."""
    cells = []
    for e in sorted(entries, key=lambda e: e.key):
        if e.method not in methods:
            continue
        for group in TESTED_GROUPS:
            cells += [_cell(e, group, m) for m, c in e.chance.get(group, {}).items() if not math.isnan(c)]
    return cells


def check_board(entries: list[Entry], *, methods: tuple[str, ...] = UNINFORMED, alpha: float = 0.05,
                n_perm: int = 20000, seed: int = 0) -> ChanceCheck:
    """:func:`~advdla.scoring.chance.chance_check` over the cells of ``methods`` in ``entries``."""
    return chance_check(chance_cells(entries, methods=methods), alpha=alpha, n_perm=n_perm, seed=seed)


def _cell_text(r: CellResult) -> str:
    where = " ".join(r.labels.values())
    direction = "above" if r.mean > r.chance else "below"
    return (f"{where} {r.metric}: {r.mean:.3f} against chance {r.chance:.3f} ({direction}; {r.n} examples, "
            f"{r.sources} files; p={r.p:.2g}, Holm {r.p_holm:.2g})")


def chance_lines(check: ChanceCheck, *, methods: tuple[str, ...] = UNINFORMED) -> list[str]:
    """The check in sentences: what was tested, how many cells are beyond chance after Holm (each named), the raw
    count against its expectation, and how many cells could have been rejected at all."""
    tested, m = check.tested, len(check.tested)
    if not m:
        return [f"No cell of {', '.join(methods)} could be tested against chance ({len(check.skipped)} skipped)."]
    present = sorted({r.labels.get("method", "") for r in tested})
    lines = [f"{', '.join(present)} against chance: {m} cells (suite version, split, adversarial or natural, metric), "
             f"one cluster sign-flip test each, two-sided except {' and '.join(ZERO_ESTIMATE_CHANCE)} (chance is "
             f"the zero estimate's: tested for beating it only), Holm over all {m} at alpha {check.alpha}."]
    beyond = check.beyond
    lines.append(f"Beyond chance after Holm: {len(beyond)} of {m}" + (":" if beyond else "."))
    lines += [f"  {_cell_text(r)}" for r in beyond]
    lines.append(f"Before correction {check.raw_beyond} of {m} have p < {check.alpha}, against at most "
                 f"{check.expected:.1f} expected at chance (binomial tail {check.binomial_tail:.2g}, were the cells "
                 f"independent; they share examples). {check.rejectable} of {m} cells have enough source files to be "
                 f"rejected at the strictest Holm step; {len(check.skipped)} cell(s) not tested.")
    return lines
