"""``dla`` and ``dla-relative``: direct logit attribution read as an estimate of the total effect.

``dla`` is the method suites are built to fool: DLA(c) = c's output at the last position, over the clean
final-norm scale, on W_U[t1] - W_U[t2]. Its implicit baseline is a zero output.

``dla-relative`` moves the baseline to the method resamples: DLA of c's clean output minus its mean output
over the resamples (both through the clean final-norm scale), which is c's direct effect measured on those
resamples (:func:`advdla.patching.direct_effects`). It removes the *baseline offset* (a component that writes
much the same on any text has a large DLA and a small effect) but not *compensation*: a later component that
erases or counters c's write is still invisible to it.
"""

from __future__ import annotations

from typing import Any

from jaxtyping import Float
from torch import Tensor

from advdla.attribution import dla
from advdla.methods.base import AttributionMethod, ExampleBatch
from advdla.methods.registry import register_method
from advdla.patching import direct_effects


@register_method("dla", version="1", estimand="direct",
                 description="direct logit attribution: the component's output at the last position "
                 "on W_U[t1] - W_U[t2], over the final-norm scale")
class DLA(AttributionMethod):
    """DLA(c) read as TE(c): right when nothing downstream reads c's output, wrong when something erases it."""

    def attribute(self, model: Any, batch: ExampleBatch) -> Float[Tensor, "batch panel"]:
        comps, index = batch.union()
        result = dla(model, batch.tokens, components=comps, t1=batch.t1, t2=batch.t2)
        return batch.gather(result.values.float().cpu(), index)


@register_method("dla-relative", version="1", estimand="direct",
                 description="DLA of the component's clean output minus its mean output over the method "
                 "resamples (clean final-norm scale): its direct effect; removes the baseline offset, "
                 "not compensation")
class RelativeDLA(AttributionMethod):
    """DLA against the resamples' mean output instead of a zero output: the direct effect, not the total one."""

    def attribute(self, model: Any, batch: ExampleBatch) -> Float[Tensor, "batch panel"]:
        comps, index = batch.union()
        effects = direct_effects(model, batch.tokens, batch.resamples, comps, t1=batch.t1, t2=batch.t2)
        return batch.gather(effects.mean.float().cpu(), index)
