"""``atp``: attribution patching (Nanda 2023; Syed et al. 2023) against the suite's resamples.

TE(c) = LD_clean - LD_patched is approximated to first order around the clean run:

    AtP(c) = sum over positions of  dLD/da_c . (a_c,clean - mean_r a_c,res_r)

where a_c is c's activation at its site (a head's ``hook_z`` slice, an MLP's ``hook_mlp_out``). The estimate
is linear in the resample activation, so averaging it over resamples equals using their mean activation.
Cost: one forward with a backward on the prompts, one forward on the resamples, for every component at once.
"""

from __future__ import annotations

from typing import Any

from jaxtyping import Float
from torch import Tensor

from advdla.methods._grads import cache_sites, dot_per_component, gradients, resample_acts, site_names
from advdla.methods.base import AttributionMethod, ExampleBatch
from advdla.methods.registry import register_method


def activation_deltas(model: Any, batch: ExampleBatch, clean: dict[str, Tensor] | None = None
                      ) -> tuple[list, Tensor, list[str], dict[str, Tensor]]:
    """The batch's union of panel components, its index, their sites, and clean minus mean-resample activations there.

    ``clean``: the clean activations at the sites when the caller already has them (else one forward reads them).
    """
    comps, index = batch.union()
    names = site_names(comps)
    b, r, _ = batch.resamples.shape
    clean = clean if clean is not None else cache_sites(model, batch.tokens, names)
    res = resample_acts(model, batch.resamples, names)
    delta = {n: clean[n] - res[n].reshape(b, r, *res[n].shape[1:]).mean(1) for n in names}
    return comps, index, names, delta


@register_method("atp", version="1", needs_grad=True,
                 description="attribution patching: gradient of LD at the clean run dotted with (clean - resample) "
                 "activation, per head/MLP, averaged over resamples")
class AtP(AttributionMethod):
    def attribute(self, model: Any, batch: ExampleBatch) -> Float[Tensor, "batch panel"]:
        names = site_names(batch.union()[0])
        clean: dict[str, Tensor] = {}
        grads = gradients(model, batch.tokens, batch.t1, batch.t2, names, acts=clean)  # one forward+backward gives both
        comps, index, names, delta = activation_deltas(model, batch, clean)
        values = dot_per_component(grads, delta, comps)
        return batch.gather(values.float().cpu(), index)
