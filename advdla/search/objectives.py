"""What the search optimises: the gap between a target's DLA and its causal effect, named by its cause.

Context: an adversarial example for DLA is a prompt where the target component c carries a large share of
the logit difference by DLA, ranks among the top components by |DLA| (so an analyst would look at it), while
its total effect TE(c) (its output resampled, averaged over R resamples) is a small share of LD. That gap
has two causes, DLA - TE = (DLA - DE) + (DE - TE), and each objective aims at one of them
(:data:`OBJECTIVES`):

- ``compensation`` (default): DE - TE, with DE carrying at least ``min_de_share`` of LD: the direct effect is
  real and later components undo it (the paper's phenomenon);
- ``dla``: DLA - TE, the paper's gap, whatever its cause;
- ``baseline``: DLA - DE: the output hardly depends on the context (DLA's zero baseline is the gap).

An objective has a hit predicate (:func:`is_hit`: adversarial by :func:`is_adversarial`, and of the
objective's mechanism by the rules of :func:`mechanism`) and a scalar shape (:func:`scalar_objective`). All
cut-offs live in :class:`Thresholds`, which is recorded in every output.

Two modes:
- scalar (default): ``min(gain, 1) - 2 |loss|`` minus penalties for a violated rank, margin or DLA-share
  constraint (:func:`scalar_objective` says why this shape). Maximised.
- multi-objective: (gain up, loss down, naturalness up), with the rank, margin and DLA-share constraints
  handed to NSGA-II as constraint values (<= 0 means satisfied). Its Pareto front is kept.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor

from advdla.search.evaluate import Scores

__all__ = ["Thresholds", "mechanism", "MECHANISMS", "OBJECTIVES", "check_objective", "is_hit", "scalar_objective",
           "multi_objectives", "constraints", "is_adversarial", "DIRECTIONS", "SHARE_CLIP"]

SHARE_CLIP = 3.0  # |share| beyond this only means LD is near zero: clip, so no candidate wins by a tiny denominator
DIRECTIONS = {"scalar": ["maximize"], "multi": ["maximize", "minimize", "maximize"]}
OBJECTIVES = ("compensation", "dla", "baseline")


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


def check_objective(name: str) -> str:
    """``name`` if it is an objective, else one line with the choices (and a did-you-mean)."""
    from advdla.errors import AdvdlaError, did_you_mean

    if name not in OBJECTIVES:
        raise AdvdlaError(f"unknown objective {name!r}: use one of {', '.join(OBJECTIVES)}."
                          f"{did_you_mean(name, OBJECTIVES)}")
    return name


def is_hit(s: Scores | Any, thr: Thresholds, objective: str) -> Tensor | bool:
    """Adversarial (:func:`is_adversarial`) AND of the objective's mechanism, by :func:`mechanism`'s rules:

    ``compensation``: |DE| >= de_share |DLA| and DE >= min_de_share LD; ``baseline``: |DE| < de_share |DLA| and
    |DE - TE| < ie_share |DLA|; ``dla``: any adversarial example. Reads ``rank``, ``ld``, ``dla``, ``dla_share``,
    ``te_share``, ``te_mean``, ``de_mean`` and ``de_share``: a batch of :class:`Scores` (a boolean tensor comes
    back) or plain floats (a bool).
    """
    adv = is_adversarial(s, thr)
    if objective == "dla":
        return adv
    dla, de, te = s.dla, s.de_mean, s.te_mean
    if objective == "compensation":
        return adv & (abs(de) >= thr.de_share * abs(dla)) & (s.de_share >= thr.min_de_share)
    return adv & (abs(de) < thr.de_share * abs(dla)) & (abs(de - te) < thr.ie_share * abs(dla))


def _gain_loss(s: Scores, objective: str) -> tuple[Tensor, Tensor]:
    """(gain, loss) as shares of LD, clipped: what the objective raises and what it keeps small."""
    te = s.te_share.clamp(max=SHARE_CLIP)
    if objective == "compensation":
        return s.de_share.clamp(-SHARE_CLIP, SHARE_CLIP), te
    if objective == "baseline":
        return s.dla_share.clamp(-SHARE_CLIP, SHARE_CLIP), te + 0.5 * s.de_share.abs().clamp(max=SHARE_CLIP)
    return s.dla_share.clamp(-SHARE_CLIP, SHARE_CLIP), te


def constraints(s: Scores, thr: Thresholds) -> Tensor:
    """[batch, 3] constraint values, <= 0 when satisfied: rank within top k, LD above the margin (in logits), DLA
    share at least min_dla_share."""
    return torch.stack([(s.rank - thr.top_k).clamp(min=0).float(), (thr.margin - s.ld).clamp(min=0),
                        (thr.min_dla_share - s.dla_share).clamp(min=0)], 1)


def scalar_objective(s: Scores, thr: Thresholds, objective: str) -> Tensor:
    """min(gain, 1) - 2 loss, minus ln(rank / k) / 2 beyond the top k, 1 per logit below the margin, and the DLA
    share's shortfall below min_dla_share (``compensation`` and ``baseline``, whose gain is not the DLA share).

    gain and loss (shares of LD): ``dla``: DLA share and |TE| share; ``compensation``: DE share and |TE| share;
    ``baseline``: DLA share and |TE| share + |DE| share / 2.

    Why this shape: the gain is capped at 1 because a larger one does not make an example more adversarial
    (without the cap the sampler chases huge shares whose TE share is just as huge), and the loss weighs
    double because a small TE is the hard part. The rank penalty is logarithmic so that it keeps a slope over
    the whole range (rank 200 vs 20 still differs): a flat penalty would leave most candidates tied and give
    the sampler nothing to learn from.
    """
    gain, loss = _gain_loss(s, objective)
    value = gain.clamp(max=1.0) - 2 * loss
    rank_pen = (s.rank.float() / thr.top_k).clamp(min=1.0).log() / 2
    value = value - rank_pen - (thr.margin - s.ld).clamp(min=0, max=SHARE_CLIP)
    if objective != "dla":
        value = value - (thr.min_dla_share - s.dla_share.clamp(-SHARE_CLIP, SHARE_CLIP)).clamp(min=0)
    return value


def multi_objectives(s: Scores, objective: str) -> Tensor:
    """[batch, 3]: (gain, loss, naturalness) as :func:`scalar_objective` defines them; ``DIRECTIONS['multi']``."""
    gain, loss = _gain_loss(s, objective)
    return torch.stack([gain, loss, s.naturalness], 1)
