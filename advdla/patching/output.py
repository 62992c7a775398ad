"""Fast output patching: each component's output (or zero) spliced in, one batch row per (prompt, resample, component).

Context: a variant that patches a component at layer l is one row of a batched forward resumed at l
(:func:`advdla.patching.forward.forward_from`). Rows are sorted by layer and cut into chunks spanning a few nearby
layers (:func:`_chunks`), so a sparse panel pays a few forwards, not one per layer, and no row recomputes more
than two clean layers. A head's output is spliced at its ``hook_z`` (per head), an MLP's at ``hook_mlp_out``.

Intuition: the total effect TE of a head equals its output effect OE (its output is a function of its q, k, v
inputs alone), so :func:`total_effects` is :func:`output_effects`; :func:`zero_effects` is the same splice with
zeros, DLA's implicit baseline.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from advdla.attribution import check_tokens
from advdla.components import Component, attn_z_hook, mlp_out_hook, resid_hook
from advdla.models.bridge import lean
from advdla.patching.forward import (
    Effects,
    Hook,
    Run,
    _check_lengths,
    _check_patchable,
    _resamples_3d,
    forward_from,
    ld_of_final,
    run_cached,
)

__all__ = ["output_effects", "zero_effects", "total_effects"]


def output_effects(bridge: Any, tokens: Int[Tensor, "batch pos"], resamples: Tensor, components: list[Component], *,
                   t1: Tensor | None = None, t2: Tensor | None = None, batch_size: int = 64) -> Effects:
    """OE of heads and MLPs: each component's output from each resample, a batch row per (prompt, resample, component).

    ``resamples``: [R, pos] shared by all prompts, or [batch, R, pos].
    """
    _check_patchable(components)
    tokens = check_tokens(bridge, tokens)
    _check_lengths(tokens, resamples)
    res = _resamples_3d(resamples.to(tokens.device), tokens.shape[0])
    batch, n_res, _ = res.shape
    sites = {c.site for c in components}
    with torch.inference_mode(), lean(bridge):
        clean = run_cached(bridge, tokens, {resid_hook(c.layer) for c in components}, t1, t2)
        sources = bridge.run_with_cache(res.reshape(batch * n_res, -1), names_filter=lambda n: n in sites)[1]
        return _spliced_effects(bridge, clean, sources, components, n_res, batch_size)


def zero_effects(bridge: Any, tokens: Int[Tensor, "batch pos"], components: list[Component], *,
                 t1: Tensor | None = None, t2: Tensor | None = None, batch_size: int = 64) -> Effects:
    """TE under zero ablation: LD_clean - LD with the component's output set to zero at every position.

    Zero is DLA's implicit baseline, so DLA(c) - te_zero(c) is exactly what later components do with c's output
    (its indirect effect against that baseline). ``per_resample`` has one column (there are no resamples).
    """
    _check_patchable(components)
    tokens = check_tokens(bridge, tokens)
    sites = {c.site for c in components}
    with torch.inference_mode(), lean(bridge):
        clean = run_cached(bridge, tokens, {resid_hook(c.layer) for c in components} | sites, t1, t2)
        zeros = {name: torch.zeros_like(clean.cache[name]) for name in sites}
        return _spliced_effects(bridge, clean, zeros, components, 1, batch_size)


def _spliced_effects(bridge: Any, clean: Run, sources: Any, components: list[Component], n_res: int,
                     batch_size: int) -> Effects:
    """Effects of splicing each component's site activation from ``sources`` (row b * n_res + r) into prompt b."""
    batch = clean.ld.shape[0]
    out = torch.empty(batch, n_res, len(components), device=clean.ld.device)
    rows = sorted(((b, r, i) for b in range(batch) for r in range(n_res) for i in range(len(components))),
                  key=lambda row: components[row[2]].layer)
    for chunk in _chunks(rows, components, batch_size):
        out[_rows_index(chunk)] = _patched_ld(bridge, clean, sources, components, chunk, n_res)
    return Effects(components, clean.ld[:, None, None] - out, clean.ld, clean.t1, clean.t2)


def _chunks(rows: list[tuple[int, int, int]], components: list[Component], batch_size: int,
            max_span: int = 2) -> Iterator[list[tuple[int, int, int]]]:
    """Cut layer-sorted rows into forwards of at most ``batch_size`` rows spanning at most ``max_span + 1`` layers.

    A chunk resumes at its lowest layer, so rows of a few nearby layers (a sparse panel) share one forward
    instead of paying one small forward each, while no row recomputes more than ``max_span`` clean layers.
    """
    chunk: list[tuple[int, int, int]] = []
    for row in rows:
        if chunk and (len(chunk) == batch_size or components[row[2]].layer - components[chunk[0][2]].layer > max_span):
            yield chunk
            chunk = []
        chunk.append(row)
    if chunk:
        yield chunk


def _rows_index(chunk: list[tuple[int, int, int]]) -> tuple[Tensor, Tensor, Tensor]:
    return tuple(torch.tensor(col) for col in zip(*chunk))  # type: ignore[return-value]


def _patched_ld(bridge: Any, clean: Run, sources: Any, components: list[Component],
                chunk: list[tuple[int, int, int]], n_res: int) -> Float[Tensor, " rows"]:
    """LD of one chunk of variants, resumed from the clean residual at the chunk's lowest patched layer."""
    b_idx, r_idx, c_idx = _rows_index(chunk)
    src_rows = b_idx * n_res + r_idx
    layer_of = torch.tensor([components[i].layer for i in c_idx.tolist()])
    start = int(layer_of.min())
    hooks = [hook for layer in layer_of.unique().tolist()
             for hook in _splice_hooks(components, layer, (layer_of == layer).nonzero()[:, 0], c_idx, src_rows,
                                       sources)]
    final, scale = forward_from(bridge, clean.cache[resid_hook(start)][b_idx], start, hooks)
    return ld_of_final(bridge, final, scale, clean.t1[b_idx], clean.t2[b_idx])


def _splice_hooks(components: list[Component], layer: int, at: Tensor, c_idx: Tensor, src_rows: Tensor,
                  sources: Any) -> list[Hook]:
    """Hooks at ``layer`` that write, in each chunk row i of ``at``, component c_idx[i]'s activation (its site) from
    source row src_rows[i]."""
    is_head = torch.tensor([components[i].kind == "head" for i in c_idx[at].tolist()], dtype=torch.bool)
    heads = torch.tensor([max(components[i].head, 0) for i in c_idx[at].tolist()], dtype=torch.long)
    rows, src = at, src_rows[at]
    hooks: list[Hook] = []
    if is_head.any():
        rows_h, hs, src_h = rows[is_head], heads[is_head], src[is_head]
        z_src = sources[attn_z_hook(layer)]

        def splice_z(z: Tensor, hook: Any) -> Tensor:
            z[rows_h, :, hs] = z_src[src_h, :, hs]
            return z

        hooks.append((attn_z_hook(layer), splice_z))
    if (~is_head).any():
        rows_m, src_m = rows[~is_head], src[~is_head]
        m_src = sources[mlp_out_hook(layer)]

        def splice_mlp(m: Tensor, hook: Any) -> Tensor:
            m[rows_m] = m_src[src_m]
            return m

        hooks.append((mlp_out_hook(layer), splice_mlp))
    return hooks


def total_effects(bridge: Any, tokens: Tensor, resamples: Tensor, components: list[Component], **kw: Any) -> Effects:
    """TE of heads and MLPs (their q/k/v or MLP inputs from each resample). Computed on the output path, which is
    exactly equivalent (see :mod:`advdla.patching`); :func:`advdla.patching.input_effects_reference` is the literal
    check."""
    return output_effects(bridge, tokens, resamples, components, **kw)
