"""Slow references: one plain hooked forward per (prompt, resample, component), the obvious implementations.

Context: every fast path in :mod:`advdla.patching` has one here, and a test that the two agree within 1e-5.
:func:`input_effects_reference` is the literal definition of the total effect (the head's q, k, v inputs, or the
MLP's input, from the resample), the check that the cheaper output path computes the same number.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from advdla.attribution import check_tokens
from advdla.components import (
    LN_FINAL_IN,
    LN_FINAL_SCALE,
    Component,
    attn_out_hook,
    mlp_out_hook,
    mlp_raw_hook,
    post_scale_hook,
)
from advdla.models.bridge import post_norms
from advdla.patching.forward import Effects, Hook, _check_patchable, _n_kv, _resamples_3d, run_cached

__all__ = ["output_effects_reference", "zero_effects_reference", "input_effects_reference",
           "direct_effects_reference"]


def _reference_loop(bridge: Any, tokens: Tensor, resamples: Tensor, components: list[Component], t1: Tensor | None,
                    t2: Tensor | None, ld_one: Callable[[Tensor, Tensor, Component, Tensor, Tensor], Tensor]
                    ) -> Effects:
    """One plain forward per (prompt, resample, component): the obvious implementation the fast paths are tested
    against."""
    tokens = check_tokens(bridge, tokens)
    res = _resamples_3d(resamples.to(tokens.device), tokens.shape[0])
    with torch.inference_mode():
        clean = run_cached(bridge, tokens, set(), t1, t2)
        per = torch.empty(tokens.shape[0], res.shape[1], len(components))
        for b in range(tokens.shape[0]):
            for r in range(res.shape[1]):
                for i, c in enumerate(components):
                    one = ld_one(tokens[b:b + 1], res[b, r:r + 1], c, clean.t1[b:b + 1], clean.t2[b:b + 1])
                    per[b, r, i] = clean.ld[b] - one
    return Effects(components, per, clean.ld, clean.t1, clean.t2)


def _logit_diff(logits: Tensor, t1: Tensor, t2: Tensor) -> Tensor:
    return logits[0, -1, t1[0]] - logits[0, -1, t2[0]]


def _replace_hook(name: str, value: Tensor, index: Callable[[Tensor], Any]) -> Hook:
    def hook(act: Tensor, hook: Any) -> Tensor:
        act[index(act)] = value[index(value)]
        return act

    return (name, hook)


def output_effects_reference(bridge: Any, tokens: Tensor, resamples: Tensor, components: list[Component], *,
                             t1: Tensor | None = None, t2: Tensor | None = None) -> Effects:
    """Slow OE: a full forward per patch, the component's output (hook_result / hook_mlp_out) replaced."""

    def ld_one(tok: Tensor, res: Tensor, c: Component, a: Tensor, b: Tensor) -> Tensor:
        name = c.output_hook
        src = bridge.run_with_cache(res, names_filter=lambda n: n == name)[1][name]
        sel = (lambda t: (slice(None), slice(None), c.head)) if c.kind == "head" else (lambda t: (slice(None),))
        return _logit_diff(bridge.run_with_hooks(tok, fwd_hooks=[_replace_hook(name, src, sel)]), a, b)

    return _reference_loop(bridge, tokens, resamples, components, t1, t2, ld_one)


def zero_effects_reference(bridge: Any, tokens: Tensor, components: list[Component], *,
                           t1: Tensor | None = None, t2: Tensor | None = None) -> Effects:
    """Slow zero ablation: a full forward per component with its output (hook_result / hook_mlp_out) zeroed."""

    def ld_one(tok: Tensor, res: Tensor, c: Component, a: Tensor, b: Tensor) -> Tensor:
        def zero(act: Tensor, hook: Any) -> Tensor:
            if c.kind == "head":
                act[:, :, c.head] = 0.0
            else:
                act[:] = 0.0
            return act

        return _logit_diff(bridge.run_with_hooks(tok, fwd_hooks=[(c.output_hook, zero)]), a, b)

    one = tokens.reshape(-1, tokens.shape[-1])[:, None, :1]  # a dummy "resample" per prompt: one column of effects
    return _reference_loop(bridge, tokens, one.expand(-1, 1, tokens.shape[-1]), components, t1, t2, ld_one)


def input_effects_reference(bridge: Any, tokens: Tensor, resamples: Tensor, components: list[Component], *,
                            t1: Tensor | None = None, t2: Tensor | None = None) -> Effects:
    """Slow, literal TE: the head's q, k and v inputs (or the MLP's input) replaced by the resample's.

    On grouped-query models the k/v inputs are shared by a group of heads; patching them would move the
    siblings too. So the literal patch runs once to read the one head's patched output (hook_z), and a
    second forward splices just that head's output into the clean run.
    """
    _check_patchable(components)

    def ld_one(tok: Tensor, res: Tensor, c: Component, a: Tensor, b: Tensor) -> Tensor:
        if c.kind == "mlp":
            (name,) = c.input_hooks  # the MLP's input: the residual at resid_mid, entering ln2
            src = bridge.run_with_cache(res, names_filter=lambda n: n == name)[1][name]
            return _mlp_input_patch(bridge, tok, c, src, a, b)
        return _head_input_patch(bridge, tok, res, c, a, b)

    return _reference_loop(bridge, tokens, resamples, components, t1, t2, ld_one)


def _head_input_patch(bridge: Any, tok: Tensor, res: Tensor, c: Component, a: Tensor, b: Tensor) -> Tensor:
    group = c.head // (bridge.cfg.n_heads // _n_kv(bridge))
    names = c.input_hooks  # q, k, v
    src = bridge.run_with_cache(res, names_filter=lambda n: n in names)[1]
    hooks = [_replace_hook(names[0], src[names[0]], lambda t: (slice(None), slice(None), c.head))]
    hooks += [_replace_hook(n, src[n], lambda t: (slice(None), slice(None), group)) for n in names[1:]]
    z_name = c.z_hook
    with bridge.hooks(fwd_hooks=hooks):
        z_patched = bridge.run_with_cache(tok, names_filter=lambda n: n == z_name)[1][z_name]
    splice = _replace_hook(z_name, z_patched, lambda t: (slice(None), slice(None), c.head))
    return _logit_diff(bridge.run_with_hooks(tok, fwd_hooks=[splice]), a, b)


def _mlp_input_patch(bridge: Any, tok: Tensor, c: Component, src: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """Run the MLP on the resample's resid_mid (through its own norm) and put that output in the clean run."""
    out_name, everything = c.output_hook, (lambda t: (slice(None),))
    with bridge.hooks(fwd_hooks=[_replace_hook(c.input_hooks[0], src, everything)]):
        patched = bridge.run_with_cache(tok, names_filter=lambda n: n == out_name)[1][out_name]
    return _logit_diff(bridge.run_with_hooks(tok, fwd_hooks=[_replace_hook(out_name, patched, everything)]), a, b)


def direct_effects_reference(bridge: Any, tokens: Tensor, resamples: Tensor, components: list[Component], *,
                             t1: Tensor | None = None, t2: Tensor | None = None) -> Effects:
    """Slow DE: what c's block writes to the residual when c's output comes from the resample (one forward, with
    the block's post-norm scale frozen on sandwich-norm models), added to the clean final residual with the
    final-norm scale frozen: no later component sees the change."""

    def ld_one(tok: Tensor, res: Tensor, c: Component, a: Tensor, b: Tensor) -> Tensor:
        clean = bridge.run_with_cache(tok, names_filter=lambda n: n == LN_FINAL_SCALE)[1]
        delta = _block_write_change(bridge, tok, res, c)

        def add(x: Tensor, hook: Any) -> Tensor:
            x[:, -1] += delta
            return x

        def freeze(s: Tensor, hook: Any) -> Tensor:
            return clean[LN_FINAL_SCALE]

        return _logit_diff(bridge.run_with_hooks(tok, fwd_hooks=[(LN_FINAL_IN, add), (LN_FINAL_SCALE, freeze)]), a, b)

    return _reference_loop(bridge, tokens, resamples, components, t1, t2, ld_one)


def _block_write_change(bridge: Any, tok: Tensor, res: Tensor, c: Component) -> Float[Tensor, "1 d_model"]:
    """The change, at the last position, of what c's block adds to the residual (``hook_attn_out`` or
    ``hook_mlp_out``) when c's raw output is the resample's and the block's post-norm scale (if any) the clean one."""
    sandwich = post_norms(bridge) is not None
    raw = mlp_raw_hook(c.layer) if c.kind == "mlp" and sandwich else c.output_hook
    write = attn_out_hook(c.layer) if c.kind == "head" else mlp_out_hook(c.layer)
    scale = post_scale_hook(c.layer, c.kind)
    clean = bridge.run_with_cache(tok, names_filter=lambda n: n in (write, scale))[1]
    src = bridge.run_with_cache(res, names_filter=lambda n: n == raw)[1][raw]
    sel = (lambda t: (slice(None), slice(None), c.head)) if c.kind == "head" else (lambda t: (slice(None),))
    hooks = [_replace_hook(raw, src, sel)]
    if sandwich:
        hooks.append((scale, lambda s, hook: clean[scale]))
    with bridge.hooks(fwd_hooks=hooks):
        patched = bridge.run_with_cache(tok, names_filter=lambda n: n == write)[1][write]
    return patched[:, -1] - clean[write][:, -1]
