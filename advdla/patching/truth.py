"""TE, DE and zero-ablation TE in one pass: what a suite's ground truth stores for every panel component.

Context: the three share a clean run and the resamples' run; computed together only the patched forwards remain.
The numbers are those of :func:`advdla.patching.total_effects`, :func:`advdla.patching.direct_effects` and
:func:`advdla.patching.zero_effects` (a test checks it).
"""

from __future__ import annotations

from typing import Any

import torch
from jaxtyping import Int
from torch import Tensor

from advdla.components import Component, resid_hook
from advdla.models.bridge import lean
from advdla.patching.direct import _direct
from advdla.patching.forward import Effects, _prepared, run_cached
from advdla.patching.output import _spliced_effects

__all__ = ["truth_effects"]


def truth_effects(bridge: Any, tokens: Int[Tensor, "batch pos"], resamples: Tensor, components: list[Component], *,
                  t1: Tensor | None = None, t2: Tensor | None = None, batch_size: int = 64
                  ) -> tuple[Effects, Effects, Effects]:
    """TE, DE and zero-ablation TE together, as ground truth needs them: the same numbers as
    :func:`total_effects`, :func:`direct_effects` and :func:`zero_effects`, from one clean run and one run of the
    resamples shared by the three (instead of three and two), so only the patched forwards remain."""
    tokens, res, names = _prepared(bridge, tokens, resamples, components)
    with torch.inference_mode(), lean(bridge):
        clean = run_cached(bridge, tokens, names | {resid_hook(c.layer) for c in components}, t1, t2)
        src = bridge.run_with_cache(res.reshape(-1, res.shape[-1]), names_filter=lambda n: n in names)[1]
        te = _spliced_effects(bridge, clean, src, components, res.shape[1], batch_size)
        de = _direct(bridge, clean, src, components, res.shape[1])
        zeros = {c.site: torch.zeros_like(clean.cache[c.site]) for c in components}
        return te, de, _spliced_effects(bridge, clean, zeros, components, 1, batch_size)
