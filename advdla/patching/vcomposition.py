"""V-composition patching: remove a writer's output from what later heads read as values (and MLPs as input).

Context: an eraser head cancels a writer by reading the writer's direction through its value input. Taking the
writer's output out of that input alone, the rest of the forward unchanged, shows whether the erasure runs through
V-composition: if it does, the eraser's cancelling output vanishes (:mod:`advdla.analysis` asks this of every
eraser candidate).
"""

from __future__ import annotations

from typing import Any

from jaxtyping import Float
from torch import Tensor

from advdla.components import Component, attn_v_hook, mlp_normalized_hook
from advdla.patching.forward import Hook, _n_kv

__all__ = ["v_composition_hooks"]


def v_composition_hooks(bridge: Any, writer_out: Float[Tensor, "batch pos d_model"], receivers: list[Component],
                        norm_scales: dict[int, Tensor]) -> list[Hook]:
    """Hooks that remove ``writer_out`` from the value input of receiver heads (from the input of receiver MLPs).

    The receiving block's norm scale is frozen at its clean value (``norm_scales[layer]``: ln1's scale for
    heads, ln2's for MLPs, [batch, pos, 1]), as in the paper, so only the writer's direction is removed:
    v -= (writer_out / scale) @ W_V for the head's key/value group. On grouped-query models the value input is
    shared by the group, so the group's sibling heads lose the writer too; read only the receiver's output.
    """
    hooks: list[Hook] = []
    for c in receivers:
        if c.kind == "head":
            hooks.append(_remove_from_v(bridge, writer_out, c, norm_scales[c.layer]))
        elif c.kind == "mlp":
            hooks.append(_remove_from_mlp_in(bridge, writer_out, c, norm_scales[c.layer]))
    return hooks


def _normalised(bridge: Any, x: Tensor, scale: Tensor) -> Tensor:
    """x as the norm would see it with a frozen scale: centred for LayerNorm, as is for RMSNorm."""
    if str(getattr(bridge.cfg, "normalization_type", "LN")).startswith("LN"):
        x = x - x.mean(-1, keepdim=True)
    return x / scale


def _remove_from_v(bridge: Any, writer_out: Tensor, c: Component, scale: Tensor) -> Hook:
    group = c.head // (bridge.cfg.n_heads // _n_kv(bridge))
    w_v = bridge.blocks[c.layer].attn.W_V[group]

    def hook(v: Tensor, hook: Any) -> Tensor:
        v[:, :, group] -= _normalised(bridge, writer_out, scale) @ w_v
        return v

    return (attn_v_hook(c.layer), hook)


def _remove_from_mlp_in(bridge: Any, writer_out: Tensor, c: Component, scale: Tensor) -> Hook:
    def hook(x: Tensor, hook: Any) -> Tensor:
        return x - _normalised(bridge, writer_out, scale)

    return (mlp_normalized_hook(c.layer), hook)
