"""``exact-patching``: each component's output replaced by its resample output, exactly, on the method resamples.

For an attention head this IS the total effect: a head's output is a function of its q, k, v inputs alone,
so resampling all of them (the ground truth's definition) makes it emit exactly its resample output
(:mod:`advdla.patching`). For MLPs too the output is a function of the MLP's input only, so the same holds.

It runs on the resamples a method is given (a suite's method resamples, disjoint from the truth's), so it
differs from the truth only by resampling noise: it is the total-effect estimator every cheaper method approximates,
and a ranked entrant (it was the "noise ceiling" until scoring v3, whose ceiling involves no method: the truth's
own split-half reliability, :mod:`advdla.scoring.ceiling`). Integrated gradients (``ig``) integrates along this same
patching path, so its error against this row is its quadrature error. Cost: one forward per component and resample.
"""

from __future__ import annotations

from typing import Any

from jaxtyping import Float
from torch import Tensor

from advdla.methods.base import AttributionMethod, ExampleBatch
from advdla.methods.registry import register_method
from advdla.patching import output_effects


@register_method("exact-patching", version="1", exact=True,
                 description="exact activation patching of each component's output on the method resamples: the "
                 "total effect measured on other resamples than the truth's")
class ExactPatching(AttributionMethod):
    def __init__(self, *, seed: int = 0, batch_size: int = 64) -> None:
        super().__init__(seed=seed)
        self.batch_size = batch_size

    def attribute(self, model: Any, batch: ExampleBatch) -> Float[Tensor, "batch panel"]:
        comps, index = batch.union()
        effects = output_effects(model, batch.tokens, batch.resamples, comps, t1=batch.t1, t2=batch.t2,
                                 batch_size=self.batch_size)
        return batch.gather(effects.mean.float().cpu(), index)
