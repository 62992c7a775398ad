"""The direct effect DE: a component's output swapped on the direct path to the logits only, final-norm scale frozen.

Context: DLA reads c's clean output along the logit direction; DE(c) is the causal counterpart, the change in LD
when only the direct path sees c's resample output: (out_clean - out_res) / scale . (W_U[:, t1] - W_U[:, t2]).
It needs no patched forward at all, only the clean run's and the resamples' cached outputs.
"""

from __future__ import annotations

from typing import Any

import torch
from jaxtyping import Int
from torch import Tensor

from advdla.attribution import component_outputs, logit_direction
from advdla.components import LN_FINAL_SCALE, Component, post_scale_hook
from advdla.models.bridge import lean, post_norms
from advdla.patching.forward import Effects, Run, _prepared, run_cached

__all__ = ["direct_effects"]


def direct_effects(bridge: Any, tokens: Int[Tensor, "batch pos"], resamples: Tensor, components: list[Component], *,
                   t1: Tensor | None = None, t2: Tensor | None = None) -> Effects:
    """DE: the output swapped on the direct path only, final-norm scale frozen: (out_clean - out_res) / scale . dir."""
    tokens, res, names = _prepared(bridge, tokens, resamples, components)
    with torch.inference_mode(), lean(bridge):
        clean = run_cached(bridge, tokens, names, t1, t2)
        src = bridge.run_with_cache(res.reshape(-1, res.shape[-1]), names_filter=lambda n: n in names)[1]
        return _direct(bridge, clean, src, components, res.shape[1])


def _direct(bridge: Any, clean: Run, src: Any, components: list[Component], n_res: int) -> Effects:
    """DE from the clean run's cache and the resamples' (row b * n_res + r): no forward of its own."""
    batch = clean.ld.shape[0]
    frozen = _repeated_scales(bridge, clean.cache, components, n_res)
    src_out = component_outputs(bridge, src, components, scales=frozen).reshape(batch, n_res, len(components), -1)
    delta = component_outputs(bridge, clean.cache, components)[:, None] - src_out
    direction = logit_direction(bridge, clean.t1, clean.t2)
    scale = clean.cache[LN_FINAL_SCALE][:, -1, 0]
    per = torch.einsum("brcd,bd->brc", delta, direction) / scale[:, None, None]
    return Effects(components, per, clean.ld, clean.t1, clean.t2)


def _repeated_scales(bridge: Any, cache: Any, components: list[Component], n_res: int) -> dict[str, Tensor] | None:
    """The clean run's post-norm scales, each prompt's row repeated for its ``n_res`` resamples (row b * n_res + r),
    so that a resample's output is read through the clean scale; None on a model without post-norms."""
    if post_norms(bridge) is None:
        return None
    names = {post_scale_hook(c.layer, c.kind) for c in components if c.kind in ("head", "mlp")}
    return {n: cache[n].repeat_interleave(n_res, dim=0) for n in names}
