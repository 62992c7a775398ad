"""``atp-star`` (AtP*, Kramar et al. 2024) and ``atp-graddrop`` (its GradDrop step alone), at component granularity.

What AtP* adds to AtP (:mod:`advdla.methods._atp`), and what advdla does with each:

- QK fix. AtP linearises the attention softmax that a *query or key node* feeds; AtP* recomputes that
  softmax exactly. Here a node is a whole head whose q, k and v inputs are all resampled, so its patched
  output is exactly its resample output ``z_res``, and AtP already uses that exact ``z_res - z_clean``: the QK
  fix holds exactly at this granularity, at no extra cost. MLPs have no softmax. As in the paper, the
  softmaxes of *later* heads that read the node stay linearised.
- GradDrop. A writer and its eraser can cancel in the gradient while each matters. For each layer l the
  gradient is recomputed with layer l's residual contributions (``hook_attn_out``, ``hook_mlp_out``)
  detached, giving AtP estimates c_l; AtP* scores sum over all L layers of |c_l| / (L - 1). Dropping a
  layer before the node's own leaves its gradient as is (c_l = AtP) and dropping its own layer cuts it
  (c_l = 0), so only the later layers need a backward each. advdla returns sign(AtP) times that score:
  scoring compares signed effects, and the paper's score is a magnitude (for ranking only).
- Verification. AtP* is a prefilter: its top candidates are then checked by activation patching. Per
  example, the ``budget`` panel components with the largest |GradDrop score| (``magnitude_rank <= budget``,
  the one top-k rule of :func:`advdla.attribution.magnitude_rank`) get their exact resample-patching effect
  over the method resamples instead. Cost: ``budget`` x R patched forwards per example on top of AtP + GradDrop.

``atp-graddrop`` is the same without verification (``budget`` = 0): GradDrop flags an erased writer by design
(its eraser's layer dropped, the writer's full direct effect shows), so it shows what verification buys.
Cost of GradDrop: AtP plus one forward and backward per layer after the earliest panel component's.
"""

from __future__ import annotations

from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from advdla.attribution import magnitude_rank
from advdla.components import attn_out_hook, mlp_out_hook
from advdla.errors import AdvdlaError
from advdla.methods._atp import activation_deltas
from advdla.methods._grads import dot_per_component, gradients
from advdla.methods.base import AttributionMethod, ExampleBatch
from advdla.methods.registry import register_method
from advdla.patching import total_effects

__all__ = ["AtPStar", "AtPGradDrop", "graddrop", "verify_top"]


def _detach(act: Tensor, hook: Any) -> Tensor:
    return act.detach()


def _drop_layer(layer: int) -> list:
    return [(attn_out_hook(layer), _detach), (mlp_out_hook(layer), _detach)]


def graddrop(model: Any, batch: ExampleBatch) -> Float[Tensor, "batch panel"]:
    """sign(AtP) * sum over layers l of |AtP with layer l's gradient dropped| / (L - 1), per panel component."""
    comps, index, names, delta = activation_deltas(model, batch)
    plain = dot_per_component(gradients(model, batch.tokens, batch.t1, batch.t2, names), delta, comps)
    n_layers = model.cfg.n_layers
    if n_layers < 2:
        return batch.gather(plain.float().cpu(), index)
    layers = torch.tensor([c.layer for c in comps], device=plain.device)
    total = plain.abs() * layers  # the layers before each component's own: c_l = AtP there
    for layer in range(int(layers.min()) + 1, n_layers):
        later = layers < layer  # components whose gradient can flow through this layer
        grads = gradients(model, batch.tokens, batch.t1, batch.t2, names, hooks=_drop_layer(layer))
        total[:, later] += dot_per_component(grads, delta, comps)[:, later].abs()
    return batch.gather((plain.sign() * total / (n_layers - 1)).float().cpu(), index)


def verify_top(model: Any, batch: ExampleBatch, scores: Float[Tensor, "batch panel"], budget: int
               ) -> Float[Tensor, "batch panel"]:
    """``scores`` with each example's ``budget`` top components (by magnitude_rank) replaced by their exact TE
    over ``batch.resamples``."""
    out = scores.clone()
    for b in range(len(batch)):
        ranks = torch.stack([magnitude_rank(scores[b], j) for j in range(scores.shape[1])])
        top = (ranks <= budget).nonzero()[:, 0].tolist()
        if not top:
            continue
        exact = total_effects(model, batch.tokens[b:b + 1], batch.resamples[b:b + 1], [batch.panels[b][j] for j in top],
                              t1=batch.t1[b:b + 1], t2=batch.t2[b:b + 1])
        out[b, top] = exact.mean[0].float().cpu()
    return out


@register_method("atp-graddrop", version="1", needs_grad=True,
                 description="AtP + GradDrop (the AtP* step without verification): sign(AtP) x sum over layers l "
                 "of |AtP with layer l's gradient dropped| / (L-1), per head/MLP, averaged over resamples")
class AtPGradDrop(AttributionMethod):
    def attribute(self, model: Any, batch: ExampleBatch) -> Float[Tensor, "batch panel"]:
        return graddrop(model, batch)


@register_method("atp-star", version="2", needs_grad=True, params={"budget": 5},
                 description="AtP* (Kramar et al. 2024) per head/MLP: exact head outputs (the QK fix, exact at this "
                 "granularity), GradDrop, then each example's top `budget` (5) by |score| replaced by their exact "
                 "resample-patching effect (budget x R extra forwards per example)")
class AtPStar(AttributionMethod):
    def __init__(self, *, seed: int = 0, budget: int = 5) -> None:
        super().__init__(seed=seed)
        if budget < 0:
            raise AdvdlaError(f"atp-star needs budget >= 0, got {budget}")
        self.budget = budget

    def attribute(self, model: Any, batch: ExampleBatch) -> Float[Tensor, "batch panel"]:
        return verify_top(model, batch, graddrop(model, batch), self.budget)
