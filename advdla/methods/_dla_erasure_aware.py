"""``dla-erasure-aware``: the paper's modified DLA, each output scaled by PR(final residual, output) first.

Context (Janiak et al. 2024): DLA credits a head with all it writes, even when a later component erases it.
The final residual stream only holds what survived, so the projection ratio PR(final, out) = final . out /
|out|^2 says how much of the head's direction is still there at the end (1: all of it; 0: erased). Scaling
the output by it before DLA gives PR * DLA(c), which is about 0 for an erased writer.

Note: this also zeroes the *eraser* (its output is erased with the writer's direction), whose total effect is
large: the fix trades one blind spot for another. Components whose output is (near) zero get PR 0.
"""

from __future__ import annotations

from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from advdla.attribution import check_tokens, component_outputs, dla_of_outputs, hook_names
from advdla.components import LN_FINAL_IN, LN_FINAL_SCALE
from advdla.methods.base import AttributionMethod, ExampleBatch
from advdla.methods.registry import register_method

_EPS = 1e-12


@register_method("dla-erasure-aware", version="1", description="the paper's modified DLA: each output scaled by "
                 "PR(final residual, output) before DLA, so erased writes count for little")
class ErasureAwareDLA(AttributionMethod):
    def attribute(self, model: Any, batch: ExampleBatch) -> Float[Tensor, "batch panel"]:
        comps, index = batch.union()
        names = hook_names(comps) | {LN_FINAL_IN}
        with torch.inference_mode():
            _, cache = model.run_with_cache(check_tokens(model, batch.tokens), names_filter=lambda n: n in names)
            outs = component_outputs(model, cache, comps)  # [batch, comp, d_model]
            final = cache[LN_FINAL_IN][:, -1]  # [batch, d_model]
            pr = torch.einsum("bcd,bd->bc", outs, final) / outs.pow(2).sum(-1).clamp(min=_EPS)
            t1, t2 = batch.t1.to(final.device), batch.t2.to(final.device)
            values = dla_of_outputs(model, outs * pr[..., None], cache[LN_FINAL_SCALE][:, -1, 0], t1, t2)
        return batch.gather(values.float().cpu(), index)
