"""``atp-star``: AtP with GradDrop (Kramar et al. 2024, "AtP*"), adapted to whole-head input patching.

What AtP* adds to AtP, and what advdla does with each:

- QK fix. AtP linearises a head's output through its own attention softmax when the node is the head's
  query or key; AtP* recomputes the attention pattern exactly instead. Here a node is a *whole head* whose
  q, k and v inputs are all resampled, so its patched output is exactly its resample output ``z_res``; like
  :mod:`advdla.methods._atp`, this method uses that exact ``z_res - z_clean`` and never linearises the
  head's own softmax. So the QK fix is exact here by construction. What is NOT fixed: the softmaxes of
  *downstream* heads stay linearised (full AtP* does not fix those either).
- GradDrop. Cancelling paths (a writer and its eraser) can make a gradient small while the effect is not.
  For every layer l after the component's own layer, the gradient is recomputed with layer l's residual
  contributions (``hook_attn_out`` and ``hook_mlp_out``) detached, giving estimates c_l; AtP* ranks by
  mean_l |c_l|. advdla returns sign(AtP) * mean over those layers of |c_l| (the sign restored from plain AtP,
  since scoring compares signed effects); a component in the last layer gets plain AtP. Simplification:
  AtP* averages over all L layers with 1/(L-1); layers at or before the component's own leave its gradient
  unchanged (or cut it entirely), so they are left out here.

Cost: AtP plus one forward and backward per layer.
"""

from __future__ import annotations

from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from advdla.components import attn_out_hook, mlp_out_hook
from advdla.methods._atp import activation_deltas
from advdla.methods._grads import dot_per_component, gradients
from advdla.methods.base import AttributionMethod, ExampleBatch
from advdla.methods.registry import register_method


def _detach(act: Tensor, hook: Any) -> Tensor:
    return act.detach()


def _drop_layer(layer: int) -> list:
    return [(attn_out_hook(layer), _detach), (mlp_out_hook(layer), _detach)]


@register_method("atp-star", version="1", needs_grad=True,
                 description="AtP* (Kramar et al. 2024): AtP with exact head outputs (QK fix) and GradDrop: "
                 "sign(AtP) * mean over later layers of |AtP with that layer's gradient dropped|")
class AtPStar(AttributionMethod):
    def attribute(self, model: Any, batch: ExampleBatch) -> Float[Tensor, "batch panel"]:
        comps, index, names, delta = activation_deltas(model, batch)
        plain = dot_per_component(gradients(model, batch.tokens, batch.t1, batch.t2, names), delta, comps)
        layers = torch.tensor([c.layer for c in comps])
        total, count = torch.zeros_like(plain), torch.zeros(len(comps))
        for layer in range(1, model.cfg.n_layers):
            later = layers < layer  # components whose gradient can flow through this layer
            if not later.any():
                continue
            grads = gradients(model, batch.tokens, batch.t1, batch.t2, names, hooks=_drop_layer(layer))
            dropped = dot_per_component(grads, delta, comps)
            total[:, later] += dropped[:, later].abs()
            count[later] += 1
        robust = torch.where(count > 0, plain.sign() * total / count.clamp(min=1), plain)
        return batch.gather(robust.float().cpu(), index)
