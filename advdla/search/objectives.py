"""What the search optimises: how far a target's DLA overstates its causal effect, under constraints.

Context: an adversarial example for DLA is a prompt where the target component c carries a large share of
the logit difference by DLA, ranks among the top heads by DLA (so an analyst would look at it), while its
total effect TE(c) (its input resampled, averaged over R resamples) is a small share of LD. All cut-offs
live in :class:`Thresholds`, which is recorded in every output.

Two modes:
- scalar (default): ``min(dla_share, 1) - 2 |te_share|`` minus penalties for a violated rank or margin
  constraint (:func:`scalar_objective` says why this shape). Maximised.
- multi-objective: (dla_share up, |te_share| down, naturalness up), with the rank and margin constraints
  handed to NSGA-II as constraint values (<= 0 means satisfied). Its Pareto front is kept.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor

from advdla.search.evaluate import Scores

__all__ = ["Thresholds", "mechanism", "MECHANISMS", "scalar_objective", "multi_objectives", "constraints",
           "is_adversarial", "DIRECTIONS",
           "SHARE_CLIP"]

SHARE_CLIP = 3.0  # |share| beyond this only means LD is near zero: clip, so no candidate wins by a tiny denominator
DIRECTIONS = {"scalar": ["maximize"], "multi": ["maximize", "minimize", "maximize"]}


@dataclass(frozen=True)
class Thresholds:
    """When a scored candidate counts as adversarial. A share is relative to LD = logit[t1] - logit[t2].

    ``margin`` is 1 logit: below that the top-2 are nearly tied and shares of LD are mostly noise.
    """

    top_k: int = 3  # the target ranks in the top k components (heads and MLPs) by |DLA| (attribution.magnitude_rank)
    margin: float = 1.0  # LD > margin
    min_dla_share: float = 0.3  # DLA(target) / LD >= this
    max_te_share: float = 0.1  # |mean TE(target)| / LD <= this
    min_de_share: float = 0.3  # objective compensation: mean DE(target) / LD >= this (a real direct effect)
    de_share: float = 0.5  # mechanism: compensation when |DE| >= de_share |DLA| (DE carries the DLA) ...
    ie_share: float = 0.25  # ... baseline when |DE| is below that and |DE - TE| < ie_share |DLA| (hardly any IE)

    def as_dict(self) -> dict:
        return asdict(self)


MECHANISMS = ("compensation", "baseline", "mixed", "none")


def mechanism(dla: float, de: float, te: float, ld: float, thr: Thresholds, *, rank: int | None = None) -> str:
    """Why DLA misleads on one example: ``compensation`` | ``baseline`` | ``mixed`` | ``none``.

    ``dla``, ``de``, ``te`` (means over resamples) are the target's, ``ld`` the clean logit difference, all in
    logits (floats or 0-d tensors); ``rank`` is the target's :func:`advdla.attribution.magnitude_rank` among
    the model's heads and MLPs (``None``: the caller has already checked it). DLA - TE = (DLA - DE) + (DE - TE):

    - ``none``: not adversarial: rank > top_k, or LD <= margin, or DLA < min_dla_share LD, or |TE| > max_te_share LD;
    - ``compensation``: |DE| >= de_share |DLA|: the direct effect is real and later components undo it (the IE);
    - ``baseline``: |DE| < de_share |DLA| and |DE - TE| < ie_share |DLA|: the output hardly depends on the
      context (DLA's zero baseline is the gap), and hardly anything downstream reacts;
    - ``mixed``: the rest (a small DE and a sizeable indirect effect together).
    """
    dla, de, te, ld = float(dla), float(de), float(te), float(ld)
    if ((rank is not None and int(rank) > thr.top_k) or not ld > thr.margin or dla < thr.min_dla_share * ld
            or abs(te) > thr.max_te_share * ld):
        return "none"
    if abs(de) >= thr.de_share * abs(dla):
        return "compensation"
    if abs(de - te) < thr.ie_share * abs(dla):
        return "baseline"
    return "mixed"


def is_adversarial(s: Scores | Any, thr: Thresholds) -> Tensor | bool:
    """All four conditions of :class:`Thresholds` hold: the one definition of an adversarial example.

    ``s`` is a batch of :class:`Scores` (a boolean tensor per candidate comes back), or anything else with
    ``rank``, ``ld``, ``dla_share`` and ``te_share`` attributes, such as one example re-scored on the slow
    path with plain floats (a bool comes back).
    """
    return ((s.rank <= thr.top_k) & (s.ld > thr.margin) & (s.dla_share >= thr.min_dla_share)
            & (s.te_share <= thr.max_te_share))


def constraints(s: Scores, thr: Thresholds) -> Tensor:
    """[batch, 2] constraint values, <= 0 when satisfied: rank within top k, LD above the margin (in logits)."""
    return torch.stack([(s.rank - thr.top_k).clamp(min=0).float(), (thr.margin - s.ld).clamp(min=0)], 1)


def scalar_objective(s: Scores, thr: Thresholds) -> Tensor:
    """min(dla_share, 1) - 2 |te_share|, minus ln(rank / k) / 2 beyond the top k and 1 per logit below the margin.

    Why this shape: the DLA share is capped at 1 because a larger one does not make an example more
    adversarial (without the cap the sampler chases huge DLA shares whose TE share is just as huge), and
    the TE share weighs double because a small TE is the hard part. The rank penalty is logarithmic so
    that it keeps a slope over the whole range (rank 200 vs 20 still differs): a flat penalty would leave
    most candidates tied and give the sampler nothing to learn from.
    """
    gap = s.dla_share.clamp(-SHARE_CLIP, 1.0) - 2 * s.te_share.clamp(max=SHARE_CLIP)
    rank_pen = (s.rank.float() / thr.top_k).clamp(min=1.0).log() / 2
    return gap - rank_pen - (thr.margin - s.ld).clamp(min=0, max=SHARE_CLIP)


def multi_objectives(s: Scores) -> Tensor:
    """[batch, 3]: (dla_share, |te_share|, naturalness), shares clipped; directions in ``DIRECTIONS['multi']``."""
    return torch.stack([s.dla_share.clamp(-SHARE_CLIP, SHARE_CLIP), s.te_share.clamp(max=SHARE_CLIP), s.naturalness], 1)
