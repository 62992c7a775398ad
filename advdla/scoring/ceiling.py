"""The noise ceiling: the truth's own split-half reliability, which involves no method.

Context: a suite's truth is a mean over R_truth resamples, so it carries resampling noise, and no estimator can agree
with it better than the truth agrees with itself. Split the truth's resamples in two halves (even and odd), compute
the total effect on each half, and score one half as an "estimate" of the other with every metric: that is how well a
perfect total-effect estimator measured on R/2 other resamples would do. Correlation metrics are then corrected to
the full R with the Spearman-Brown formula 2r / (1 + r) (the reliability of a mean of two halves); the others are
reported at R/2 resamples, a conservative ceiling.

Intuition: ``exact-patching`` measures the same quantity on the *method* resamples (R_method = R_truth / 2 in the
shipped suites), so its scores against the TE should sit near the uncorrected half-vs-half values; ``ig`` integrates
along that same patching path, so its distance from ``exact-patching`` is quadrature error, not a better method.

The re-derivation is also a check: the halves' mean must equal the stored ``te_mean`` (to 1e-4 of |LD|), or the
suite's truth is not what this model computes and the ceiling stops with one line.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor

from advdla.components import parse_components
from advdla.errors import AdvdlaError
from advdla.patching import total_effects
from advdla.progress import Progress, Step, silent
from advdla.scoring.harness import MethodRun
from advdla.scoring.metrics import METRICS, aggregate, per_example_frame
from advdla.scoring.records import ResultRecord, make_record
from advdla.suites import Example, source_files_of

__all__ = ["CEILING", "truth_halves", "spearman_brown", "ceiling_frames", "ceiling_record"]

CEILING = "split-half"  # the ceiling's row name on the leaderboard (MethodSpec-free: it is no method)
TOLERANCE = 1e-4


def truth_halves(bridge: Any, examples: list[Example], *, batch_size: int = 64, progress: Progress = silent
                 ) -> dict[str, tuple[Float[Tensor, " panel"], Float[Tensor, " panel"]]]:
    """Per example id: the TE on the even and on the odd truth resamples (float64), re-derived on ``bridge``."""
    out = {}
    for i, ex in enumerate(examples):
        comps = parse_components(ex.truth.panel, bridge.cfg)
        effects = total_effects(bridge, ex.tokens[None], ex.resamples[None], comps, t1=torch.tensor([ex.truth.t1]),
                                t2=torch.tensor([ex.truth.t2]), batch_size=batch_size)
        per = effects.per_resample[0].double().cpu()  # [resample, comp]
        _check_mean(ex, per.mean(0))
        out[ex.example_id] = (per[0::2].mean(0), per[1::2].mean(0))
        progress(Step("split-half ceiling", done=i + 1, total=len(examples)))
    return out


def _check_mean(ex: Example, te: Tensor) -> None:
    worst = float((te - ex.truth.te_mean.double()).abs().max())
    if worst > TOLERANCE * max(abs(ex.truth.ld), 1.0):
        raise AdvdlaError(f"example {ex.example_id}: the re-derived TE differs from the stored te_mean by {worst:.2g}: "
                          f"the suite's truth is not this model's (run `advdla suite verify`)")


def spearman_brown(r: float) -> float:
    """The reliability of a mean of two halves whose correlation is ``r``: 2r / (1 + r)."""
    return 2 * r / (1 + r) if r > -1 else float("nan")


def _with_te(ex: Example, te: Tensor) -> Example:
    return dataclasses.replace(ex, truth=dataclasses.replace(ex.truth, te_mean=te))


def ceiling_frames(examples: list[Example], halves: Mapping[str, tuple[Tensor, Tensor]], *,
                   clusters: Mapping[str, str] | None = None, k: int = 3, tau: float = 0.1, n_boot: int = 1000,
                   seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ceiling's aggregated and per-example frames: each half scored against the other, averaged over the two
    directions, correlation metrics Spearman-Brown corrected (per example)."""
    ab = per_example_frame(CEILING, {i: a.tolist() for i, (a, _) in halves.items()},
                           [_with_te(e, halves[e.example_id][1]) for e in examples], clusters=clusters, k=k, tau=tau)
    ba = per_example_frame(CEILING, {i: b.tolist() for i, (_, b) in halves.items()},
                           [_with_te(e, halves[e.example_id][0]) for e in examples], clusters=clusters, k=k, tau=tau)
    per = ab.copy()
    with warnings.catch_warnings():  # a metric undefined in both directions stays NaN, without a warning
        warnings.simplefilter("ignore", RuntimeWarning)
        per["value"] = np.nanmean(np.stack([ab["value"].to_numpy(float), ba["value"].to_numpy(float)]), axis=0)
    corr = per["metric"].map(lambda m: METRICS[m].correlation)
    per.loc[corr, "value"] = per.loc[corr, "value"].map(spearman_brown)
    return aggregate(per, n_boot=n_boot, seed=seed), per


def ceiling_record(model: Any, manifest: Mapping[str, Any], examples: list[Example], *, split: str, k: int = 3,
                   seed: int = 0, device: str = "cpu", halves: Mapping[str, tuple[Tensor, Tensor]] | None = None,
                   progress: Progress = silent) -> ResultRecord:
    """The split-half ceiling of ``examples`` as a result record (role ``ceiling``), re-deriving the halves on
    ``model`` unless ``halves`` are given; intervals over the examples' source files, as every record's."""
    start = time.perf_counter()
    halves = halves if halves is not None else truth_halves(model, examples, progress=progress)
    clusters, why = source_files_of(manifest, examples)
    tau = float(manifest.get("tau", 0.1))
    frame, per = ceiling_frames(examples, halves, clusters=clusters, k=k, tau=tau, seed=seed)
    run = MethodRun(CEILING, "1", {"halves": "even/odd truth resamples"}, per_example=per,
                    wall_time_s=time.perf_counter() - start)
    return make_record(run, frame, manifest, split=split, k=k, n_examples=len(examples), device=device,
                       role="ceiling", tau=tau, clusters="document" if why else "source file")
