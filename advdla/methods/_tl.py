"""``tl-dla`` and ``tl-atp``: TransformerLens 4.3's own analysis tools, as entrants scored like any method.

Thin adapters: advdla only picks the numbers for each example's panel out of what the library returns.

- ``tl-dla``: :func:`transformer_lens.tools.analysis.direct_logit_attribution` with ``answer_tokens=t1``,
  ``incorrect_tokens=t2`` at the last position; ``unit="head"`` for heads (``L{l}H{h}`` labels, each head's
  ``hook_result``), ``unit="component"`` for MLPs (``{l}_mlp_out`` labels). It applies the final norm's scale
  from the cache, as advdla's ``dla`` does, so the two agree to float error (a test) on models without sandwich
  norms. On Gemma (a norm after attention and after the MLP) the library reads each head's raw ``hook_result``
  and ignores the post-norm the head's output passes through, so its heads' DLAs do not sum to LD there
  (TransformerLens 4.3 on Gemma 3 270M, an IOI prompt: -2.26 against an LD of 2.89): the adapter reports the
  library's numbers as they are, and the board shows how far they fall from advdla's ``dla``.
- ``tl-atp``: :func:`transformer_lens.tools.analysis.attribution_patch` at node granularity, one call per
  example with the clean prompt repeated against each method resample (the library averages node scores over
  the pairs), metric LD = logit[t1] - logit[t2] at the last position. Its nodes are (head or MLP, position);
  a component's score is the sum over positions.

Where ``tl-atp`` and ``atp`` differ (the convention): both are first-order estimates of patching c between
the clean prompt and a resample, (a_clean - a_res) . g. ``atp`` takes the gradient g on the *clean* run:
the noising estimate of LD_clean - LD(clean, c from the resample), which is exactly the suite's TE. The
library takes g on the *corrupt* (resample) run: the denoising estimate of LD(resample, c from the clean run)
- LD_resample. Both have the same sign convention and agree where LD is linear in c's activation; they part
where the path from c to the logits is curved (attention saturation, a norm's scale moving), because the
gradient is read at the other end of the path.

Cost: ``tl-dla`` one forward with a full cache (two when the panel holds MLPs); ``tl-atp`` R x (a clean forward,
a corrupt forward and a backward) per example, one pair at a time as the library runs them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from advdla.attribution import check_tokens
from advdla.components import Component
from advdla.errors import AdvdlaError
from advdla.methods.base import AttributionMethod, ExampleBatch
from advdla.methods.registry import register_method

__all__ = ["TLDirectLogitAttribution", "TLAttributionPatching"]


def _check_panel(batch: ExampleBatch, method: str) -> None:
    bad = sorted({c.name for panel in batch.panels for c in panel if c.kind not in ("head", "mlp")})
    if bad:
        raise AdvdlaError(f"{method} scores heads and MLPs only, not {', '.join(bad)}")


def _mlp_label(layer: int) -> str:
    return f"{layer}_mlp_out"  # TransformerLens's label for an MLP's output in decompose_resid


@register_method("tl-dla", version="1", estimand="direct",
                 description="TransformerLens 4.3 direct_logit_attribution (unit='head' for heads, 'component' "
                 "for MLPs) on t1 - t2 at the last position: DLA computed by the library (on sandwich-norm "
                 "models such as Gemma it ignores the post-attention norm, and differs from advdla's dla)")
class TLDirectLogitAttribution(AttributionMethod):
    def attribute(self, model: Any, batch: ExampleBatch) -> Float[Tensor, "batch panel"]:
        from transformer_lens.tools.analysis import direct_logit_attribution

        _check_panel(batch, self.name)
        tokens = check_tokens(model, batch.tokens)
        t1, t2 = batch.t1.to(tokens.device), batch.t2.to(tokens.device)
        values: dict[str, Tensor] = {}
        units = {"head"} | ({"component"} if any(c.kind == "mlp" for p in batch.panels for c in p) else set())
        with torch.inference_mode():
            for unit in sorted(units):
                result = direct_logit_attribution(model, tokens, answer_tokens=t1, incorrect_tokens=t2, unit=unit)
                values.update(zip(result.labels, result.attribution.float().cpu()))  # each [batch]
        cols = [[values[c.name if c.kind == "head" else _mlp_label(c.layer)][b] for c in panel]
                for b, panel in enumerate(batch.panels)]
        return torch.tensor([[float(v) for v in row] for row in cols])


@contextmanager
def _graph_through(model: Any) -> Iterator[None]:
    """Parameters require grad for the duration: advdla freezes them, and the library differentiates the metric
    with respect to activations, which have no graph unless something upstream requires grad. Its backward is
    driven by ``torch.autograd.grad`` on the activations only, so no parameter ``.grad`` is written."""
    params = [p for p in model.parameters() if not p.requires_grad]
    for p in params:
        p.requires_grad_(True)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(False)


@register_method("tl-atp", version="1", needs_grad=True,
                 description="TransformerLens 4.3 attribution_patch, node granularity, clean vs each method "
                 "resample: (a_clean - a_res) . gradient on the resample run (denoising), summed over positions")
class TLAttributionPatching(AttributionMethod):
    def attribute(self, model: Any, batch: ExampleBatch) -> Float[Tensor, "batch panel"]:
        from transformer_lens.tools.analysis import attribution_patch

        _check_panel(batch, self.name)
        tokens = check_tokens(model, batch.tokens)
        rows = []
        with _graph_through(model), torch.enable_grad():
            for b, panel in enumerate(batch.panels):
                t1, t2 = int(batch.t1[b]), int(batch.t2[b])
                corrupt = batch.resamples[b].to(tokens.device)
                result = attribution_patch(model, tokens[b:b + 1].expand(len(corrupt), -1), corrupt,
                                           lambda logits, t1=t1, t2=t2: logits[0, -1, t1] - logits[0, -1, t2])
                summed = _over_positions(result.node_scores)
                rows.append([summed.get(c.name, 0.0) for c in panel])
        return torch.tensor(rows)


def _over_positions(scores: dict) -> dict[str, float]:
    """The library's (node, position) scores summed over positions, keyed by advdla component name."""
    out: dict[str, float] = {}
    for node, v in scores.items():
        if node.kind in ("attn_head_out", "mlp_out"):
            is_head = node.kind == "attn_head_out"
            comp = Component("head", node.layer, node.head) if is_head else Component("mlp", node.layer)
            out[comp.name] = out.get(comp.name, 0.0) + float(v)
    return out
