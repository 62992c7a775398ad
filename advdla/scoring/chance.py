"""Is an uninformed method at chance? One test per cell, Holm over all of them, and the count beside its expectation.

Context: every metric carries a chance level (:mod:`advdla.scoring.metrics`), the value an estimator that knows
nothing scores; ``random`` and ``constant`` are such estimators. Reading their 95% intervals one by one does not
say whether they are at chance: over 180 cells about 9 intervals miss chance when everything is as it should be,
and an interval from two source files is too narrow to mean anything. So this module tests each cell (one method,
suite, split, group of examples, metric) with a cluster sign-flip test (:func:`advdla.scoring.stats.signflip_p`,
exact with few source files) against its chance level and corrects over all cells with Holm
(:func:`advdla.scoring.stats.holm`): a cell is *beyond chance* only when its adjusted p is below ``alpha``, which
keeps the chance of any false alarm over the whole family at ``alpha``.

Which way a cell is tested:

- two-sided for the metrics whose chance is what a guess gets (MCC, precision, AUPRC, ranks, top-k recall, AUROC,
  sign agreement): a method below chance is as suspicious as one above;
- one-sided, "better than chance" only, for the errors whose chance is the *zero estimate's* (target error,
  normalised MAE): any estimate that is not zero adds error, so ``random`` is worse than that "chance" by
  construction and only beating it would mean the method knows something;
- not at all for the metrics without a chance level (recall, false alarm, miss: they depend on how often the
  estimator calls, not on what it knows).

The summary also gives the raw count of cells with p < alpha against its expectation under the null (at most
alpha per cell; the cells share examples, so the binomial tail beside it is a guide, not a test) and how many cells
have enough source files to be rejected at all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from jaxtyping import Float
from numpy import ndarray
from scipy import stats

from advdla.scoring.metrics import METRICS
from advdla.scoring.stats import holm, signflip_min_p, signflip_p

__all__ = ["ZERO_ESTIMATE_CHANCE", "ChanceCell", "CellResult", "ChanceCheck", "chance_side", "chance_check"]

ZERO_ESTIMATE_CHANCE = ("target_error", "mae_norm")  # chance is the zero estimate's: tested for beating it only


def chance_side(metric: str) -> str | None:
    """How ``metric`` (``name`` or ``name@against``) is tested against its chance level: ``two-sided``, ``less``
    (an error whose chance is the zero estimate's: only beating it counts) or None (no chance level: not tested)."""
    name = metric.split("@")[0]
    if name not in METRICS or METRICS[name].chance is None:
        return None
    return "less" if name in ZERO_ESTIMATE_CHANCE else "two-sided"


@dataclass(frozen=True)
class ChanceCell:
    """One cell: a method's per-example ``values`` of ``metric`` (NaN: undefined) with their source files, and the
    chance level, one number (the record's) or one per example. ``labels`` say where the cell comes from (suite,
    split, group, method: whatever the caller names)."""

    labels: dict[str, str]
    metric: str
    values: Float[ndarray, " n"]
    clusters: ndarray
    chance: float | Float[ndarray, " n"]


@dataclass(frozen=True)
class CellResult:
    """A tested cell: its mean and chance, the test's side and p (raw and Holm-adjusted over all cells), the number
    of source files and the smallest p that many allow."""

    labels: dict[str, str]
    metric: str
    n: int
    sources: int
    mean: float
    chance: float
    side: str
    p: float
    p_holm: float
    min_p: float

    def beyond(self, alpha: float) -> bool:
        """Beyond chance after the correction (adjusted p < alpha)."""
        return not math.isnan(self.p_holm) and self.p_holm < alpha


@dataclass
class ChanceCheck:
    """The outcome over every cell. ``passes``: no cell is beyond chance after Holm."""

    results: list[CellResult]
    alpha: float
    skipped: list[str] = field(default_factory=list)  # cells not tested, with the reason

    @property
    def tested(self) -> list[CellResult]:
        return [r for r in self.results if not math.isnan(r.p)]

    @property
    def beyond(self) -> list[CellResult]:
        return [r for r in self.results if r.beyond(self.alpha)]

    @property
    def raw_beyond(self) -> int:
        return sum(r.p < self.alpha for r in self.tested)

    @property
    def expected(self) -> float:
        """At most this many raw p < alpha are expected when every cell is at chance (alpha per tested cell)."""
        return self.alpha * len(self.tested)

    @property
    def binomial_tail(self) -> float:
        """P(at least :attr:`raw_beyond` of the tested cells at p < alpha) were they independent tests at chance."""
        return float(stats.binom.sf(self.raw_beyond - 1, len(self.tested), self.alpha)) if self.tested else math.nan

    @property
    def rejectable(self) -> int:
        """Cells with enough source files that even the strictest Holm step (alpha / m) could reject them."""
        m = len(self.tested)
        return sum(r.min_p < self.alpha / m for r in self.tested) if m else 0

    @property
    def passes(self) -> bool:
        return not self.beyond


def _test(cell: ChanceCell, side: str, n_perm: int, seed: int) -> tuple[CellResult, float]:
    values = np.asarray(cell.values, dtype=float)
    chance = np.broadcast_to(np.asarray(cell.chance, dtype=float), values.shape)
    ok = ~np.isnan(values) & ~np.isnan(chance)
    clusters = np.asarray(cell.clusters)[ok]
    sources = len(set(clusters.tolist()))
    p = signflip_p(values[ok] - chance[ok], clusters, null=0.0, side=side, n_perm=n_perm, seed=seed)
    mean = float(values[ok].mean()) if ok.any() else math.nan
    level = float(chance[ok].mean()) if ok.any() else math.nan
    return CellResult(cell.labels, cell.metric, int(ok.sum()), sources, mean, level, side, p, math.nan,
                      signflip_min_p(sources, side=side, n_perm=n_perm)), p


def chance_check(cells: list[ChanceCell], *, alpha: float = 0.05, n_perm: int = 20000, seed: int = 0) -> ChanceCheck:
    """Test every cell against its chance level (the side :func:`chance_side` gives), Holm over all tested cells.

    A cell of a metric without a chance level, or with fewer than two source files, is listed in ``skipped``."""
    results, pvalues, skipped = [], [], []
    for cell in cells:
        side = chance_side(cell.metric)
        if side is None:
            skipped.append(f"{_where(cell.labels, cell.metric)}: the metric has no chance level")
            continue
        result, p = _test(cell, side, n_perm, seed)
        if math.isnan(p):
            skipped.append(f"{_where(cell.labels, cell.metric)}: {result.sources} source file(s), a test needs 2")
        results.append(result)
        pvalues.append(p)
    adjusted = holm(pvalues)
    results = [CellResult(**{**vars(r), "p_holm": a}) for r, a in zip(results, adjusted)]
    return ChanceCheck(results, alpha, skipped)


def _where(labels: dict[str, str], metric: str) -> str:
    return " ".join([*labels.values(), metric])
