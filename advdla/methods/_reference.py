"""Reference rows: the suite's own truth returned as estimates, what a perfect estimator of each estimand scores.

``exact-te`` returns the total effect (``te_mean``), ``exact-de`` the direct effect (``de_mean``). They are not
methods: they read the truth (``uses_truth``), so the leaderboard shows them apart from the ranking. ``exact-de`` is
the row that separates DLA's two errors: scored against the TE it shows how far even a *perfect* direct-effect
reader is from the total effect (the indirect effect, compensation); DLA's gap to ``exact-de`` is what its zero
baseline adds (DLA - DE).
"""

from __future__ import annotations

from typing import Any

from jaxtyping import Float
from torch import Tensor

from advdla.errors import AdvdlaError
from advdla.methods.base import AttributionMethod, ExampleBatch
from advdla.methods.registry import register_method


def _truth(batch: ExampleBatch, column: str) -> Float[Tensor, "batch panel"]:
    value = getattr(batch, column)
    if value is None:
        raise AdvdlaError(f"this reference row needs the suite's {column} column: build the batch with with_truth=True")
    return value.clone()


@register_method("exact-te", version="1", uses_truth=True, role="reference",
                 description="the ground truth's total effect itself (te_mean): a perfect TE estimator, not ranked")
class ExactTE(AttributionMethod):
    def attribute(self, model: Any, batch: ExampleBatch) -> Float[Tensor, "batch panel"]:
        return _truth(batch, "te_mean")


@register_method("exact-de", version="1", uses_truth=True, role="reference", estimand="direct",
                 description="the ground truth's direct effect itself (de_mean): a perfect DE estimator, not ranked")
class ExactDE(AttributionMethod):
    def attribute(self, model: Any, batch: ExampleBatch) -> Float[Tensor, "batch panel"]:
        return _truth(batch, "de_mean")
