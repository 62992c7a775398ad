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

Intuition: the conditions every objective shares (rank, margin, DLA share, TE share) live in the functions below;
what one objective adds (its mechanism's hit conditions, its gain and loss, its extra slack columns) is one
:class:`Objective` in :data:`OBJECTIVES`, so a new objective is one entry here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from advdla.criteria import Thresholds, is_adversarial
from advdla.errors import AdvdlaError, did_you_mean
from advdla.registry import Registry
from advdla.search.evaluate import Scores

__all__ = ["Objective", "OBJECTIVES", "check_objective", "is_hit", "slacks", "scalar_objective", "multi_objectives",
           "constraints", "DIRECTIONS", "SHARE_CLIP"]

SHARE_CLIP = 3.0  # |share| beyond this only means LD is near zero: clip, so no candidate wins by a tiny denominator
DIRECTIONS = {"scalar": ["maximize"], "multi": ["maximize", "minimize", "maximize"]}


@dataclass(frozen=True)
class Objective:
    """One objective: the gap it opens and what it adds to the shared adversarial conditions.

    ``hit``: its mechanism's conditions, each ANDed onto :func:`is_adversarial` in order (floats or tensors);
    ``gain_loss``: (what it raises, what it keeps small), shares of LD, clipped, for the multi-objective mode;
    ``slacks``: its extra columns of :func:`slacks`, each >= 0 where its condition holds.
    """

    name: str
    description: str
    hit: Callable[[Any, Thresholds], list[Any]]
    gain_loss: Callable[[Scores], tuple[Tensor, Tensor]]
    slacks: Callable[[Scores, Thresholds], list[Tensor]]


def _te_loss(s: Scores) -> Tensor:
    return s.te_share.clamp(max=SHARE_CLIP)


def _carried(s: Scores) -> Tensor:
    """|DE| / |DLA|: how much of the DLA the direct path carries."""
    return s.de_mean.abs() / s.dla.abs().clamp(min=1e-6)


def _indirect(s: Scores) -> Tensor:
    """|DE - TE| / |DLA|: the indirect effect, relative to the DLA."""
    return (s.de_mean - s.te_mean).abs() / s.dla.abs().clamp(min=1e-6)


def _relative(value: Tensor, threshold: float) -> Tensor:
    """``value`` in units of its threshold (guarded: a threshold of 0 must not divide by zero)."""
    return value / max(threshold, 1e-6)


OBJECTIVES: Registry[Objective] = Registry("objective")
# Registration order is the order every message lists them in (compensation is the default).
OBJECTIVES.add("compensation", Objective(
    "compensation", "DE - TE, with DE real: later components undo a direct effect",
    hit=lambda s, thr: [abs(s.de_mean) >= thr.de_share * abs(s.dla), s.de_share >= thr.min_de_share],
    gain_loss=lambda s: (s.de_share.clamp(-SHARE_CLIP, SHARE_CLIP), _te_loss(s)),
    slacks=lambda s, thr: [_relative(s.de_share - thr.min_de_share, thr.min_de_share),
                           _relative(_carried(s) - thr.de_share, thr.de_share)]))
OBJECTIVES.add("dla", Objective(
    "dla", "DLA - TE, the paper's gap, whatever its cause",
    hit=lambda s, thr: [],
    gain_loss=lambda s: (s.dla_share.clamp(-SHARE_CLIP, SHARE_CLIP), _te_loss(s)),
    slacks=lambda s, thr: []))
OBJECTIVES.add("baseline", Objective(
    "baseline", "DLA - DE: the output hardly depends on the context",
    hit=lambda s, thr: [abs(s.de_mean) < thr.de_share * abs(s.dla),
                        abs(s.de_mean - s.te_mean) < thr.ie_share * abs(s.dla)],
    gain_loss=lambda s: (s.dla_share.clamp(-SHARE_CLIP, SHARE_CLIP),
                         _te_loss(s) + 0.5 * s.de_share.abs().clamp(max=SHARE_CLIP)),
    slacks=lambda s, thr: [_relative(thr.de_share - _carried(s), thr.de_share),
                           _relative(thr.ie_share - _indirect(s), thr.ie_share)]))


def check_objective(name: str) -> str:
    """``name`` if it is an objective, else one line with the choices (and a did-you-mean)."""
    if name not in OBJECTIVES:
        raise AdvdlaError(f"unknown objective {name!r}: use one of {', '.join(OBJECTIVES)}."
                          f"{did_you_mean(name, OBJECTIVES.names())}")
    return name


def is_hit(s: Scores | Any, thr: Thresholds, objective: str) -> Tensor | bool:
    """Adversarial (:func:`is_adversarial`) AND of the objective's mechanism, by :func:`mechanism`'s rules:

    ``compensation``: |DE| >= de_share |DLA| and DE >= min_de_share LD; ``baseline``: |DE| < de_share |DLA| and
    |DE - TE| < ie_share |DLA|; ``dla``: any adversarial example. Reads ``rank``, ``ld``, ``dla``, ``dla_share``,
    ``te_share``, ``te_mean``, ``de_mean`` and ``de_share``: a batch of :class:`Scores` (a boolean tensor comes
    back) or plain floats (a bool).
    """
    hit = is_adversarial(s, thr)
    for condition in OBJECTIVES.get(objective).hit(s, thr):
        hit = hit & condition
    return hit


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
            _relative(s.ld - thr.margin, thr.margin),
            _relative(s.dla_share - thr.min_dla_share, thr.min_dla_share),
            _relative(thr.max_te_share - s.te_share, thr.max_te_share)]
    cols += OBJECTIVES.get(objective).slacks(s, thr)
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
    gain, loss = OBJECTIVES.get(objective).gain_loss(s)
    return torch.stack([gain, loss, s.naturalness], 1)
