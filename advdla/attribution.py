"""Direct logit attribution (DLA): each component's direct contribution to the logit difference.

Context: with norms folded into the weights (compatibility mode), the final residual stream at the last
position is a sum of component outputs (embeddings, every head, every MLP, biases), and the final norm only
divides it by one scale per position. The logits are linear in that scaled residual, so the logit difference
LD = logit[t1] - logit[t2] splits exactly into one term per component:

    DLA(c) = out_c[-1] / scale[-1] . (W_U[:, t1] - W_U[:, t2])        (plus b_U[t1] - b_U[t2] for ``bias``)

Intuition: DLA says what a component *writes* in the direction of the answer. It says nothing about whether a
later component erases that write; :mod:`advdla.patching` measures what actually happens when it changes.
The decomposition check (:func:`decomposition_error`) is the test that the split is exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from advdla.components import LN_FINAL_SCALE, Component, all_components, mlp_raw_hook, post_scale_hook
from advdla.errors import AdvdlaError
from advdla.models.bridge import head_output, lean, post_norms


@dataclass
class DLAResult:
    """DLAs of ``components`` for each prompt of a batch, with the logit difference they decompose."""

    components: list[Component]
    values: Float[Tensor, "batch comp"]
    ld: Float[Tensor, " batch"]
    t1: Int[Tensor, " batch"]
    t2: Int[Tensor, " batch"]

    def index(self, comp: Component) -> int:
        return self.components.index(comp)

    def share(self) -> Float[Tensor, "batch comp"]:
        """DLA as a share of the logit difference (1.0: the component alone accounts for LD)."""
        return self.values / self.ld[:, None]


def top2(logits_last: Float[Tensor, "batch vocab"]) -> tuple[Int[Tensor, " batch"], Int[Tensor, " batch"]]:
    """The clean run's top-1 and top-2 tokens: the metric's t1 and t2."""
    top = logits_last.topk(2, dim=-1).indices
    return top[:, 0], top[:, 1]


def logit_direction(
    bridge: Any, t1: Int[Tensor, " batch"], t2: Int[Tensor, " batch"]
) -> Float[Tensor, "batch d_model"]:
    """W_U[:, t1] - W_U[:, t2], one row per prompt (the unembedding is centred in compatibility mode)."""
    return (bridge.W_U[:, t1] - bridge.W_U[:, t2]).T


def unembed_bias_diff(bridge: Any, t1: Tensor, t2: Tensor) -> Float[Tensor, " batch"]:
    b_u = getattr(bridge, "b_U", None)
    return (b_u[t1] - b_u[t2]) if b_u is not None else torch.zeros(t1.shape, device=t1.device)


def hook_names(components: list[Component]) -> set[str]:
    """The hooks whose activations the given components' outputs are read from (plus the final-norm scale).

    Heads are read at their ``site`` (hook_z, W_O applied here), which needs no per-head results; ``bias``
    is computed from the weights and needs only the scale. On sandwich-norm models the post-norms' scales and the
    MLPs' outputs before their post-norm are read too (the names exist only there: elsewhere nothing is cached).
    """
    names = {LN_FINAL_SCALE} | {c.site for c in components if c.kind != "bias"}
    names |= {post_scale_hook(c.layer, c.kind) for c in components if c.kind in ("head", "mlp")}
    return names | {mlp_raw_hook(c.layer) for c in components if c.kind == "mlp"}


def component_outputs(
    bridge: Any, cache: Any, components: list[Component], pos: int = -1, *, scales: Any = None
) -> Float[Tensor, "batch comp d_model"]:
    """Each component's output at position ``pos`` as it reaches the residual stream, read from a cache holding
    :func:`hook_names` (heads: hook_z).

    On sandwich-norm models (:class:`~advdla.models.bridge.PostNorms`) that is the raw output through its block's
    post-norm, the norm's scale taken from ``scales`` (a cache of the same rows; default ``cache`` itself). DE
    passes the clean run's scales for a resample's outputs: the scale frozen, as the final norm's is.
    """
    outs = [_output(bridge, cache, c, pos, cache if scales is None else scales) for c in components]
    return torch.stack(outs, dim=1)


def _output(bridge: Any, cache: Any, c: Component, pos: int, scales: Any) -> Float[Tensor, "batch d_model"]:
    post = post_norms(bridge)
    if c.kind == "head":
        out = head_output(bridge, cache[c.z_hook][:, pos, c.head], c.layer, c.head)
    elif c.kind == "mlp" and post is not None:
        out = cache[mlp_raw_hook(c.layer)][:, pos]
    elif c.kind != "bias":
        return cache[c.site][:, pos]
    else:
        return attention_bias_sum(bridge).expand(cache[LN_FINAL_SCALE].shape[0], -1)
    if post is None:
        return out
    weight = (post.attn[c.layer] if c.kind == "head" else post.mlp[c.layer]).to(out.dtype)  # bf16 screens too
    return out * weight / scales[post_scale_hook(c.layer, c.kind)][:, pos].to(out.dtype)


def attention_bias_sum(bridge: Any) -> Float[Tensor, " d_model"]:
    """Sum over layers of the attention output bias b_O: written by no single head, so it is ``bias``'s."""
    total = torch.zeros(bridge.cfg.d_model, device=bridge.W_U.device, dtype=bridge.W_U.dtype)
    for block in bridge.blocks:
        b_o = getattr(block.attn, "b_O", None)
        if b_o is not None:
            total = total + b_o
    return total


def dla_of_outputs(
    bridge: Any, outputs: Float[Tensor, "batch comp d_model"], scale: Float[Tensor, " batch"], t1: Tensor, t2: Tensor
) -> Float[Tensor, "batch comp"]:
    """DLA of arbitrary component outputs given the final-norm scale: (out / scale) . (W_U[:, t1] - W_U[:, t2])."""
    direction = logit_direction(bridge, t1, t2)
    return torch.einsum("bcd,bd->bc", outputs, direction) / scale[:, None]


def dla(
    bridge: Any,
    tokens: Int[Tensor, "batch pos"],
    *,
    components: list[Component] | None = None,
    t1: Tensor | None = None,
    t2: Tensor | None = None,
) -> DLAResult:
    """DLA of every component (default: all, in residual order) on LD = logit[t1] - logit[t2] at the last position.

    t1/t2 default to the clean run's top-1 and top-2 tokens, one pair per prompt.
    """
    comps = components or all_components(bridge.cfg)
    tokens = check_tokens(bridge, tokens)
    with torch.inference_mode(), lean(bridge):
        logits, cache = bridge.run_with_cache(tokens, names_filter=lambda n: n in hook_names(comps))
        last = logits[:, -1].float()
        if t1 is None or t2 is None:
            t1, t2 = top2(last)
        t1, t2 = t1.to(last.device), t2.to(last.device)  # given tokens (a suite's t1, t2) may come from the CPU
        ld = last.gather(1, t1[:, None])[:, 0] - last.gather(1, t2[:, None])[:, 0]
        scale = cache[LN_FINAL_SCALE][:, -1, 0]
        values = dla_of_outputs(bridge, component_outputs(bridge, cache, comps), scale, t1, t2)
        bias = [i for i, c in enumerate(comps) if c.kind == "bias"]
        if bias:
            values[:, bias] += unembed_bias_diff(bridge, t1, t2)[:, None]
    return DLAResult(comps, values, ld, t1, t2)


def decomposition_error(result: DLAResult) -> float:
    """max over prompts of |sum of DLAs - LD| / max(1, |LD|); ~1e-6 when ``result`` holds every component."""
    err = (result.values.sum(1) - result.ld).abs() / result.ld.abs().clamp(min=1.0)
    return float(err.max())


def check_tokens(bridge: Any, tokens: Tensor) -> Tensor:
    """Prompts as [batch, pos] on the model's device; one line (AdvdlaError) if too short or longer than its context."""
    if tokens.ndim == 1:
        tokens = tokens[None]
    if tokens.shape[1] < 2:
        raise AdvdlaError(f"prompts need at least 2 tokens, got {tokens.shape[1]}")
    if tokens.shape[1] > bridge.cfg.n_ctx:
        raise AdvdlaError(f"prompts of {tokens.shape[1]} tokens exceed the model's context of {bridge.cfg.n_ctx}")
    return tokens.to(bridge.W_U.device)


def check_context(bridge: Any, n_tokens: int, what: str, *, per_unit: int = 1) -> None:
    """Refuse, before any forward, a stage that would feed the model more positions than it has.

    ``what`` names the stage's length in the message (e.g. "search --seq-len 24 (pre-screen windows of 2 x 24)");
    ``per_unit`` is how many positions one unit of the user's length costs (2 for windows of 2 x --seq-len), so
    the fix names the largest length that fits.
    """
    n_ctx = int(bridge.cfg.n_ctx)
    if n_tokens > n_ctx:
        raise AdvdlaError(f"{what} needs {n_tokens} positions but the model has a context of {n_ctx}: "
                          f"use a length of at most {n_ctx // per_unit} there")


def fit_length(bridge: Any, length: int, *, per_unit: int = 1) -> int:
    """The largest length up to ``length`` whose positions (``per_unit`` per unit) fit the model's context: what a
    default length becomes on a small-context model (an explicit one is checked with :func:`check_context`)."""
    return min(length, int(bridge.cfg.n_ctx) // per_unit)


def magnitude_rank(values: Float[Tensor, "... comp"], index: int) -> Int[Tensor, "..."]:
    """1-based rank of component ``index`` by |value| among all components (ties: the earlier component first).

    The one definition of "the method puts c in its top k" in advdla: ``magnitude_rank(values, c) <= k``, by
    absolute value (a large negative estimate is a strong claim too), used alike by the search's criterion,
    the suite's thresholds and the fooled metric. Metrics add a floor (|value| >= floor * |LD|) on top.
    """
    mag = values.abs()
    mine = mag[..., index : index + 1]
    earlier = torch.arange(values.shape[-1], device=values.device) < index
    return 1 + (mag > mine).sum(-1) + ((mag == mine) & earlier).sum(-1)
