"""What counts as adversarial, and why DLA misleads: the one definition that analysis, search, suites and scoring share.

Context: an adversarial example for DLA is a prompt on which a target component ranks among the top components by
|DLA| and carries a real share of the logit difference LD by DLA, while its total effect TE is a small share of
it (:func:`is_adversarial`). The gap has two parts, DLA - TE = (DLA - DE) + (DE - TE): a *baseline offset* (DLA's
zero baseline: the output hardly depends on the context) and the *indirect effect* (later components undo a real
direct effect: compensation, the paper's phenomenon). :func:`mechanism` names which one an example shows. Every
cut-off lives in :class:`Thresholds`, which every search output and suite manifest records.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from torch import Tensor

__all__ = ["Thresholds", "MECHANISMS", "mechanism", "is_adversarial"]


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


def is_adversarial(s: Any, thr: Thresholds) -> Tensor | bool:
    """All four conditions of :class:`Thresholds` hold: the one definition of an adversarial example.

    ``s`` is a batch of :class:`advdla.search.evaluate.Scores` (a boolean tensor per candidate comes back), or
    anything else with ``rank``, ``ld``, ``dla_share`` and ``te_share`` attributes, such as one example re-scored on
    the slow path with plain floats (a bool comes back).
    """
    return ((s.rank <= thr.top_k) & (s.ld > thr.margin) & (s.dla_share >= thr.min_dla_share)
            & (s.te_share <= thr.max_te_share))
