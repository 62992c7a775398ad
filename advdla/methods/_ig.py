"""``ig``: integrated gradients on component activations, from the clean to each resample's activations.

For each resample r, all panel components' activations move together along the straight line from clean
(alpha = 0) to resampled (alpha = 1); the other activations are recomputed by the model as usual. With the
midpoint rule over ``steps`` points (alpha = (k + 1/2) / steps):

    IG(c) = mean_r  (1/steps) sum_k  dLD/da_c(alpha_k) . (a_c,clean - a_c,res_r)

IG is exact for a linear model and, unlike AtP, follows the curvature along the path. Its completeness
property: the IGs of the panel sum to LD_clean - LD(all panel components resampled at once), which is not the
sum of their separate total effects when components interact (an eraser and its writer). Cost: ``steps``
forwards and backwards over batch x resamples rows.
"""

from __future__ import annotations

from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from advdla.errors import AdvdlaError
from advdla.methods._grads import cache_sites, dot_per_component, gradients, panel_masks, resample_acts, site_names
from advdla.methods.base import AttributionMethod, ExampleBatch
from advdla.methods.registry import register_method


@register_method("ig", version="1", needs_grad=True, params={"steps": 16},
                 description="integrated gradients on head/MLP activations along "
                 "clean -> resample, all panel components moved together (steps=16, midpoint rule)")
class IntegratedGradients(AttributionMethod):
    def __init__(self, *, seed: int = 0, steps: int = 16) -> None:
        super().__init__(seed=seed)
        if steps < 1:
            raise AdvdlaError(f"ig needs steps >= 1, got {steps}")
        self.steps = steps

    def attribute(self, model: Any, batch: ExampleBatch) -> Float[Tensor, "batch panel"]:
        comps, index = batch.union()
        names = site_names(comps)
        b, r, pos = batch.resamples.shape
        clean = {n: a.repeat_interleave(r, 0) for n, a in cache_sites(model, batch.tokens, names).items()}
        res = resample_acts(model, batch.resamples, names)
        delta = {n: clean[n] - res[n] for n in names}
        masks = panel_masks(clean, batch.panels, r)
        tokens, t1, t2 = (x.repeat_interleave(r, 0) for x in (batch.tokens, batch.t1, batch.t2))
        total = torch.zeros(b * r, len(comps))
        for k in range(self.steps):
            alpha = (k + 0.5) / self.steps
            point = {n: clean[n] - alpha * delta[n] for n in names}
            grads = gradients(model, tokens, t1, t2, names, values=point, masks=masks)
            total += dot_per_component(grads, delta, comps).float().cpu()
        values = (total / self.steps).reshape(b, r, -1).mean(1)
        return batch.gather(values, index)
