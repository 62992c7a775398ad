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
objective's mechanism by the rules of :func:`advdla.criteria.mechanism`) and a scalar shape
(:func:`scalar_objective`). All cut-offs live in :class:`advdla.criteria.Thresholds`, which is recorded in every
output.

Two modes:
- scalar (default): the summed violations of the objective's conditions, each relative to its threshold
  (:func:`slacks`), positive exactly on hits (:func:`scalar_objective` says why this shape). Maximised.
- multi-objective: (gain up, loss down, naturalness up), with the rank, margin and DLA-share constraints
  handed to NSGA-II as constraint values (<= 0 means satisfied). Its Pareto front is kept.
"""

from __future__ import annotations

from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from advdla.criteria import Thresholds, is_adversarial
from advdla.search.evaluate import Scores

__all__ = ["OBJECTIVES", "check_objective", "is_hit", "slacks", "scalar_objective", "multi_objectives", "constraints",
           "DIRECTIONS", "SHARE_CLIP"]

SHARE_CLIP = 3.0  # |share| beyond this only means LD is near zero: clip, so no candidate wins by a tiny denominator
DIRECTIONS = {"scalar": ["maximize"], "multi": ["maximize", "minimize", "maximize"]}
OBJECTIVES = ("compensation", "dla", "baseline")


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


def slacks(s: Scores, thr: Thresholds, objective: str) -> Float[Tensor, "batch condition"]:
    """How far each condition of :func:`is_hit` holds, relative to its threshold: >= 0 where it holds, up to 1.

    rank: (k + 1 - rank) / k if within the top k, else -ln(rank / k) / 2; margin: (LD - margin) / margin; DLA share:
    (share - min) / min; TE share: (max - |share|) / max; ``compensation`` adds the DE share, (share - min) / min,
    and DE carrying the DLA, (|DE| / |DLA| - de_share) / de_share; ``baseline`` adds DE not carrying it,
    (de_share - |DE| / |DLA|) / de_share, and a small indirect effect, (ie_share - |DE - TE| / |DLA|) / ie_share.
    Each is clipped to [-SHARE_CLIP, 1].
    """
    k = float(thr.top_k)
    rank = s.rank.float()
    cols = [torch.where(rank <= k, (k + 1 - rank) / k, -(rank / k).log() / 2),
            (s.ld - thr.margin) / max(thr.margin, 1e-6),
            (s.dla_share - thr.min_dla_share) / max(thr.min_dla_share, 1e-6),
            (thr.max_te_share - s.te_share) / max(thr.max_te_share, 1e-6)]
    carried = s.de_mean.abs() / s.dla.abs().clamp(min=1e-6)
    if objective == "compensation":
        cols += [(s.de_share - thr.min_de_share) / max(thr.min_de_share, 1e-6),
                 (carried - thr.de_share) / max(thr.de_share, 1e-6)]
    elif objective == "baseline":
        ie = (s.de_mean - s.te_mean).abs() / s.dla.abs().clamp(min=1e-6)
        cols += [(thr.de_share - carried) / max(thr.de_share, 1e-6), (thr.ie_share - ie) / max(thr.ie_share, 1e-6)]
    return torch.stack(cols, 1).clamp(-SHARE_CLIP, 1.0)


def scalar_objective(s: Scores, thr: Thresholds, objective: str) -> Tensor:
    """The sum of the violated :func:`slacks` (each <= 0), plus 0.2 x the smallest slack where none is violated.

    Positive exactly where :func:`is_hit` holds (up to ties at a threshold), so the sampler's "good" trials are the
    hits and the near-misses, ranked by how far they miss. Why not a gain minus a loss (such as DE share - 2 TE
    share): where later components undo a fixed fraction of a direct effect (about 60-90% for SmolLM2's late
    heads), a larger DE share means a larger TE share too, and such an objective chases large shares that can
    never pass ``max_te_share``; the hits lie in a band of moderate shares that the slacks point to. Violations
    are summed so that every condition keeps a slope; the rank slack is logarithmic so that rank 200 vs 20
    still differs.
    """
    sl = slacks(s, thr, objective)
    return sl.clamp(max=0).sum(1) + 0.2 * sl.min(1).values.clamp(min=0)


def multi_objectives(s: Scores, objective: str) -> Tensor:
    """[batch, 3]: (gain, loss, naturalness); ``DIRECTIONS['multi']``. gain and loss (shares of LD): ``dla``: DLA
    share and |TE| share; ``compensation``: DE share and |TE| share; ``baseline``: DLA share and |TE| share + |DE|
    share / 2."""
    gain, loss = _gain_loss(s, objective)
    return torch.stack([gain, loss, s.naturalness], 1)
