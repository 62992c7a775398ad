"""``oracle``: returns the suite's own ground truth (``te_mean``). A sanity row: it marks every metric's ceiling."""

from __future__ import annotations

from typing import Any

from jaxtyping import Float
from torch import Tensor

from advdla.errors import AdvdlaError
from advdla.methods.base import AttributionMethod, ExampleBatch
from advdla.methods.registry import register_method


@register_method("oracle", version="1", uses_truth=True, role="sanity",
                 description="the ground truth itself (te_mean): the sanity row, not a method")
class Oracle(AttributionMethod):
    def attribute(self, model: Any, batch: ExampleBatch) -> Float[Tensor, "batch panel"]:
        if batch.te_mean is None:
            raise AdvdlaError("the oracle needs the suite's te_mean column: build the batch with with_truth=True")
        return batch.te_mean.clone()
