"""``dla``: direct logit attribution as an estimate of the total effect (the method suites are built to fool)."""

from __future__ import annotations

from typing import Any

from jaxtyping import Float
from torch import Tensor

from advdla.attribution import dla
from advdla.methods.base import AttributionMethod, ExampleBatch
from advdla.methods.registry import register_method


@register_method("dla", version="1",
                 description="direct logit attribution: the component's output at the last position "
                 "on W_U[t1] - W_U[t2], over the final-norm scale")
class DLA(AttributionMethod):
    """DLA(c) read as TE(c): right when nothing downstream reads c's output, wrong when something erases it."""

    def attribute(self, model: Any, batch: ExampleBatch) -> Float[Tensor, "batch panel"]:
        comps, index = batch.union()
        result = dla(model, batch.tokens, components=comps, t1=batch.t1, t2=batch.t2)
        return batch.gather(result.values.float().cpu(), index)
