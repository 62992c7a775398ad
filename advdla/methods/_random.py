"""The uninformed baselines every real method must beat: ``random`` (seeded N(0, 1) numbers) and ``constant`` (one
value for every component).

``random``: each example's numbers come from a generator seeded by the method's seed and a hash of the example (its
tokens and panel), so they do not depend on which other examples share its batch.

``constant``: the same number (``value``, default 1.0) for every component of every example. It knows nothing
about which component matters, so every metric should score it at its chance level; it differs from ``random`` in
being deterministic without a seed and in claiming one sign (positive by default) for everything, which is what
tests whether a metric's chance level assumes a symmetric guess (``advdla leaderboard chance`` checks both).
"""

from __future__ import annotations

import hashlib
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from advdla.methods.base import AttributionMethod, ExampleBatch
from advdla.methods.registry import register_method


def _example_seed(seed: int, tokens: Tensor, panel: list) -> int:
    h = hashlib.sha256(f"{seed}|{tokens.tolist()}|{[c.name for c in panel]}".encode()).digest()
    return int.from_bytes(h[:8], "little")


@register_method("random", version="1", description="seeded N(0,1) estimates per example: the chance baseline")
class RandomBaseline(AttributionMethod):
    def attribute(self, model: Any, batch: ExampleBatch) -> Float[Tensor, "batch panel"]:
        rows = []
        for b in range(len(batch)):
            g = torch.Generator().manual_seed(_example_seed(self.seed, batch.tokens[b], batch.panels[b]))
            rows.append(torch.randn(batch.n_panel, generator=g))
        return torch.stack(rows)


@register_method("constant", version="1", params={"value": 1.0},
                 description="the same estimate (value, default 1.0) for every component: an uninformed baseline")
class ConstantBaseline(AttributionMethod):
    def __init__(self, *, seed: int = 0, value: float = 1.0) -> None:
        super().__init__(seed=seed)
        self.value = float(value)

    def attribute(self, model: Any, batch: ExampleBatch) -> Float[Tensor, "batch panel"]:
        return torch.full((len(batch), batch.n_panel), self.value)
