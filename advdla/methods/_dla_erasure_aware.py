"""``dla-erasure-aware``: the paper's erasure-aware DLA rebuilt on centred quantities (version 2).

Context (Janiak et al. 2024): DLA credits a component c with all it writes, even when a later component
erases it. The paper scales c's output by the projection ratio PR(final residual, output) = final . out /
|out|^2 before DLA: how much of c's direction the final residual still holds. Version 1 did exactly that and
fell into the trap the erasure analysis centres against: both vectors carry a large context-independent part
(the residual's constant direction, c's usual output), so the uncentred ratio measures that shared offset,
not erasure (values like PR = -15), and it scored below plain DLA on every suite.

Version 2 centres both on the method resamples, so only what depends on the prompt is compared:

    d_c = out_c - mean_r out_c,r           (c's context-dependent write, last position)
    D   = final - mean_r final_r           (the final residual's context-dependent part)
    PR_c = D . d_c / |d_c|^2               (how much of c's write survives to the end; 0 when |d_c| ~ 0)
    estimate(c) = PR_c * DLA-relative(c) = (the part of D along d_c) / scale . (W_U[t1] - W_U[t2])

An erased writer gets about 0 (D holds none of its direction). Known limits: the eraser gets about 0 too (its
write is erased with the writer's direction, yet its total effect is large), and a component is credited with
whatever other components write along its direction. It is a heuristic in the paper's spirit, not an
estimator of the total effect with a guarantee.
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
from advdla.models.bridge import lean

_EPS = 1e-12


@register_method("dla-erasure-aware", version="2", estimand="direct",
                 description="the paper's erasure-aware DLA, centred on the method "
                 "resamples: DLA-relative(c) x PR(final-residual change, c's output change), so an erased write "
                 "counts ~0 (erasers too)")
class ErasureAwareDLA(AttributionMethod):
    def attribute(self, model: Any, batch: ExampleBatch) -> Float[Tensor, "batch panel"]:
        comps, index = batch.union()
        names = hook_names(comps) | {LN_FINAL_IN}
        b, r, pos = batch.resamples.shape
        with torch.inference_mode(), lean(model):
            _, clean = model.run_with_cache(check_tokens(model, batch.tokens), names_filter=lambda n: n in names)
            _, res = model.run_with_cache(check_tokens(model, batch.resamples.reshape(b * r, pos)),
                                          names_filter=lambda n: n in names)
            d = component_outputs(model, clean, comps) - component_outputs(model, res, comps).reshape(b, r, len(comps),
                                                                                                      -1).mean(1)
            final = clean[LN_FINAL_IN][:, -1] - res[LN_FINAL_IN][:, -1].reshape(b, r, -1).mean(1)
            norm = d.pow(2).sum(-1)
            pr = torch.where(norm > _EPS, torch.einsum("bcd,bd->bc", d, final) / norm.clamp(min=_EPS), 0.0)
            t1, t2 = batch.t1.to(final.device), batch.t2.to(final.device)
            values = dla_of_outputs(model, d * pr[..., None], clean[LN_FINAL_SCALE][:, -1, 0], t1, t2)
        return batch.gather(values.float().cpu(), index)
