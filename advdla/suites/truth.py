"""Causal ground truth for one prompt: per panel component, DLA and what patching says it really does.

Context: a benchmark example is a prompt plus what really happens inside the model on it. For each
component c of the example's *panel* advdla records (LD = logit[t1] - logit[t2] at the last position):

- ``dla``: c's direct logit attribution (its output read through the clean final-norm scale; baseline: zero);
- ``te_mean``, ``te_std``: the total effect, LD_clean - LD with c's output replaced by its output on a
  resample, over the truth's R resamples (for a head this equals patching all of its q, k, v inputs);
- ``de_mean``, ``de_std``: the direct effect, the same swap on the direct path to the logits only;
- ``ie_mean`` = te_mean - de_mean: the indirect effect, what later components do with c's output;
- ``te_zero``: the total effect of zeroing c's output (DLA's own baseline), so dla - te_zero is purely indirect.

Intuition: DLA - TE = (DLA - DE) + (DE - TE). The first term is a *baseline offset* (c writes much the same
on any text, so replacing it by a resample's output changes little even on the direct path); the second is the
*indirect effect* (later components compensate or erase: the paper's phenomenon). Both are in the suite.

The panel: every attention head and every MLP where the model has at most ``max_full`` of them (SmolLM2-135M:
270 + 30, GELU-4L: 32 + 4); beyond that, the target plus the components with the largest |TE| on a separate
*screen* resample set, an exact measurement that no attribution method under test takes part in. A policy with
``min_layer`` keeps only the components of that layer and later (and the target): the late panel ``advdla run``
uses, where compensation happens, at a fraction of the cost (a patch recomputes only the layers after it).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from advdla.attribution import dla, magnitude_rank
from advdla.components import Component, heads_and_mlps
from advdla.criteria import Thresholds, mechanism
from advdla.patching import total_effects, truth_effects
from advdla.suites.config import PanelPolicy

__all__ = ["Truth", "VALUE_COLUMNS", "panel_candidates", "choose_panel", "ground_truth", "target_mechanism"]


@dataclass(frozen=True)
class Truth:
    """What the model says about one prompt: the top-2 tokens, LD, and per panel component the measurements.

    Every ``Float[Tensor, " panel"]`` field is aligned with ``panel`` (float64, as stored in the suite).
    """

    t1: int
    t2: int
    ld: float
    panel: list[str]
    dla: Float[Tensor, " panel"]
    te_mean: Float[Tensor, " panel"]
    te_std: Float[Tensor, " panel"]
    de_mean: Float[Tensor, " panel"]
    de_std: Float[Tensor, " panel"]
    ie_mean: Float[Tensor, " panel"]
    te_zero: Float[Tensor, " panel"]

    def value(self, column: str, component: str) -> float:
        return float(getattr(self, column)[self.panel.index(component)])


# Per-panel-component columns (lists aligned with ``panel`` in the suite); verify compares them within a tolerance.
VALUE_COLUMNS = tuple(f.name for f in dataclasses.fields(Truth) if f.name not in ("t1", "t2", "ld", "panel"))


def panel_candidates(cfg: Any) -> list[Component]:
    """Every attention head and MLP, in residual-stream order: what a full panel holds."""
    return heads_and_mlps(cfg)


def choose_panel(bridge: Any, tokens: Int[Tensor, " pos"], target: Component, *, policy: PanelPolicy,
                 screen: Int[Tensor, "r pos"] | None = None) -> list[Component]:
    """The example's panel: every head and MLP (of ``policy.min_layer`` and later, and the target) when there are
    at most ``policy.max_full`` of them; otherwise the target and the ``policy.size - 1`` others with the largest
    |TE| on the ``screen`` resamples."""
    comps = [c for c in panel_candidates(bridge.cfg) if c.layer >= policy.min_layer or c == target]
    if len(comps) <= policy.max_full:
        return comps
    if screen is None:
        raise ValueError("a model with more components than panel.max_full needs screen resamples")
    te = total_effects(bridge, tokens[None], screen, comps).mean[0].abs()
    te[comps.index(target)] = float("inf")  # the target is always in
    keep = set(te.topk(min(policy.size, len(comps))).indices.tolist())
    return [c for i, c in enumerate(comps) if i in keep]


def ground_truth(bridge: Any, tokens: Int[Tensor, " pos"], resamples: Int[Tensor, "r pos"], panel: list[Component], *,
                 t1: int | None = None, t2: int | None = None, batch_size: int = 64) -> Truth:
    """DLA, TE, DE, IE and zero-ablation TE of every panel component on one prompt."""
    device = bridge.W_U.device  # the whole computation stays on the model's device; only the result comes back
    tt1 = None if t1 is None else torch.tensor([t1], device=device)
    tt2 = None if t2 is None else torch.tensor([t2], device=device)
    d = dla(bridge, tokens[None], components=panel, t1=tt1, t2=tt2)
    te, de, zero = truth_effects(bridge, tokens[None], resamples, panel, t1=d.t1, t2=d.t2, batch_size=batch_size)
    te_mean, de_mean = _row(te.mean), _row(de.mean)
    return Truth(
        t1=int(d.t1[0]), t2=int(d.t2[0]), ld=float(d.ld[0]), panel=[c.name for c in panel], dla=_row(d.values),
        te_mean=te_mean, te_std=_row(te.std), de_mean=de_mean, de_std=_row(de.std), ie_mean=te_mean - de_mean,
        te_zero=_row(zero.mean),
    )


def target_mechanism(truth: Truth, target: str, thresholds: Thresholds) -> str:
    """Why DLA misleads about ``target`` on this truth (:func:`advdla.criteria.mechanism`), its rank
    by |DLA| taken within the panel (:func:`advdla.attribution.magnitude_rank`); ``none``: not adversarial."""
    t = truth.panel.index(target)
    rank = int(magnitude_rank(truth.dla, t))
    return mechanism(truth.dla[t], truth.de_mean[t], truth.te_mean[t], truth.ld, thresholds, rank=rank)


def _row(x: Float[Tensor, "1 panel"]) -> Float[Tensor, " panel"]:
    return x[0].detach().to(torch.float64).cpu()
