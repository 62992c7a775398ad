"""``random``: seeded N(0, 1) numbers, the chance baseline every real method must beat.

Each example's numbers come from a generator seeded by the method's seed and a hash of the example (its
tokens and panel), so they do not depend on which other examples share its batch.
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
