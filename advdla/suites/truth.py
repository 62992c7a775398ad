"""Causal ground truth for one prompt: per panel component, DLA and the patching effects over R resamples.

Context: a benchmark example is a prompt plus what really happens inside the model on it. For each
component of the example's *panel* advdla records its DLA and its total, output and direct effects on the
logit difference (mean and spread over the example's R same-length resamples, see :mod:`advdla.patching`).
Attribution methods are scored against ``te_mean``: the causal effect of replacing the component's input.

The panel: every head where the model is small (at most ``max_full`` heads: GELU-4L has 32), otherwise the
target, the top heads by |DLA|, the top heads by |AtP| (when an AtP estimate is given), and a seeded random
sample of the rest. It is stored with the example, so every method is scored on the same components.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from advdla.attribution import dla
from advdla.components import Component, head_components
from advdla.patching import direct_effects, total_effects
from advdla.suites.config import PanelPolicy

__all__ = ["Truth", "VALUE_COLUMNS", "choose_panel", "ground_truth"]


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
    oe_mean: Float[Tensor, " panel"]
    oe_std: Float[Tensor, " panel"]
    de_mean: Float[Tensor, " panel"]
    de_std: Float[Tensor, " panel"]

    def value(self, column: str, component: str) -> float:
        return float(getattr(self, column)[self.panel.index(component)])


# Per-panel-component columns (lists aligned with ``panel`` in the suite); verify compares them within a tolerance.
VALUE_COLUMNS = tuple(f.name for f in dataclasses.fields(Truth) if f.name not in ("t1", "t2", "ld", "panel"))


def choose_panel(bridge: Any, target: Component, dla_heads: Float[Tensor, " head"], *, policy: PanelPolicy, seed: int,
                 atp_heads: Float[Tensor, " head"] | None = None) -> list[Component]:
    """The example's panel (layer-major order), from its head DLAs (and AtP estimates) in head_components order."""
    heads = head_components(bridge.cfg)
    if len(heads) <= policy.max_full:
        return heads
    chosen = {target} | {heads[i] for i in dla_heads.abs().topk(policy.top_dla).indices.tolist()}
    if atp_heads is not None:
        chosen |= {heads[i] for i in atp_heads.abs().topk(policy.top_atp).indices.tolist()}
    # The random sample tops the panel up to one fixed size (overlaps between the lists would shrink it), so
    # every example of a suite has the same panel size and methods can run them in one batch.
    size = 1 + policy.top_dla + (policy.top_atp if atp_heads is not None else 0) + policy.n_random
    rest = [h for h in heads if h not in chosen]
    chosen |= set(random.Random(seed).sample(rest, min(size - len(chosen), len(rest))))
    return sorted(chosen, key=heads.index)


def ground_truth(bridge: Any, tokens: Int[Tensor, " pos"], resamples: Int[Tensor, "r pos"], panel: list[Component], *,
                 t1: int | None = None, t2: int | None = None, batch_size: int = 64) -> Truth:
    """DLA, TE, OE and DE of every panel component on one prompt (TE and OE coincide for heads: see patching)."""
    tt1 = None if t1 is None else torch.tensor([t1])
    tt2 = None if t2 is None else torch.tensor([t2])
    d = dla(bridge, tokens[None], components=panel, t1=tt1, t2=tt2)
    te = total_effects(bridge, tokens[None], resamples, panel, t1=d.t1, t2=d.t2, batch_size=batch_size)
    de = direct_effects(bridge, tokens[None], resamples, panel, t1=d.t1, t2=d.t2)
    return Truth(
        t1=int(d.t1[0]), t2=int(d.t2[0]), ld=float(d.ld[0]), panel=[c.name for c in panel], dla=_row(d.values),
        te_mean=_row(te.mean), te_std=_row(te.std), oe_mean=_row(te.mean), oe_std=_row(te.std),
        de_mean=_row(de.mean), de_std=_row(de.std),
    )


def _row(x: Float[Tensor, "1 panel"]) -> Float[Tensor, " panel"]:
    return x[0].detach().to(torch.float64).cpu()
