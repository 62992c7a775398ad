"""Exact activation patching on the logit difference, batched, averaged over same-length resamples.

Context: DLA (:mod:`advdla.attribution`) reads what a component writes. Patching measures what it *does*:
run the prompt again with one component's activation taken from a run on an unrelated text of the same
length (a resample) and see how far the logit difference LD = logit[t1] - logit[t2] moves. advdla records,
per component c and resample r (t1, t2 fixed from the clean run):

- total effect TE(c) = LD_clean - LD with c's INPUT (its q, k, v inputs, every position) from the resample:
  the paper's causal test and the benchmark's ground truth;
- output effect OE(c) = LD_clean - LD with c's OUTPUT from the resample;
- direct effect DE(c) = LD_clean - LD with c's output from the resample on the direct path to the logits
  only (the final norm's scale frozen): the causal counterpart of DLA.

Intuition: a head's output is a function of its q, k, v inputs alone, so replacing all of them by the
resample's makes the head emit exactly its resample output. TE and OE of a head are therefore the same
number; advdla computes TE through the cheaper output path and tests it against literal input patching
(:func:`input_effects_reference`), including the grouped-query case where the k/v inputs are shared by
several heads and only the one head's own computation may be patched. If DLA(c) is large and TE(c) small,
something downstream erased what c wrote: that gap is what advdla hunts.

Speed: patch variants run along the batch dimension, and a variant that patches layer l starts from the
clean run's cached residual stream at layer l: blocks before l are skipped, not recomputed. The forward
stops at the final norm, so the unembedding is applied to two token columns at one position only.
Every fast function here has a slow reference (one plain hooked forward per patch) and a test that they
agree within 1e-5.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from advdla.attribution import check_tokens, component_outputs, hook_names, logit_direction, top2, unembed_bias_diff
from advdla.components import (
    LN_FINAL_IN,
    LN_FINAL_SCALE,
    Component,
    attn_v_hook,
    attn_z_hook,
    mlp_normalized_hook,
    mlp_out_hook,
    resid_hook,
)
from advdla.errors import AdvdlaError
from advdla.models.bridge import lean

Hook = tuple[str, Callable]


@dataclass
class Effects:
    """Patching effects LD_clean - LD_patched per prompt, resample and component."""

    components: list[Component]
    per_resample: Float[Tensor, "batch resample comp"]
    ld_clean: Float[Tensor, " batch"]
    t1: Int[Tensor, " batch"]
    t2: Int[Tensor, " batch"]

    @property
    def mean(self) -> Float[Tensor, "batch comp"]:
        return self.per_resample.mean(1)

    @property
    def std(self) -> Float[Tensor, "batch comp"]:
        """Spread over resamples (0 with a single resample)."""
        return self.per_resample.std(1, unbiased=False)


# ---------------------------------------------------------------------------------------------- forwards


class _Stop(Exception):
    """Raised from the final-norm hook once the last position's residual and scale are captured."""


def _identity_block(*args: Any, **kwargs: Any) -> Tensor:
    return args[0] if args else kwargs["hidden_states"]


@contextmanager
def _skipping_blocks(bridge: Any, n: int) -> Iterator[None]:
    """Make blocks 0..n-1 identities for one forward (their output is replaced at block n anyway)."""
    blocks = list(bridge.blocks)[:n]
    for block in blocks:
        object.__setattr__(block, "forward", _identity_block)  # the bridge's __setattr__ would forward it to HF
    try:
        yield
    finally:
        for block in blocks:
            object.__delattr__(block, "forward")


def final_state(bridge: Any, run: Callable[[], Any], hooks: list[Hook]
                ) -> tuple[Float[Tensor, "n d_model"], Float[Tensor, " n"]]:
    """Run ``run()`` under ``hooks``; return the final residual and final-norm scale at the last position.

    The forward is cut at the final norm: nothing after it (the full unembedding) is computed.
    """
    got: dict[str, Tensor] = {}

    def grab_resid(x: Tensor, hook: Any) -> Tensor:
        got["resid"] = x[:, -1].clone()
        return x

    def grab_scale(s: Tensor, hook: Any) -> Tensor:
        got["scale"] = s[:, -1, 0].clone()
        raise _Stop

    with bridge.hooks(fwd_hooks=[*hooks, (LN_FINAL_IN, grab_resid), (LN_FINAL_SCALE, grab_scale)]):
        try:
            run()
        except _Stop:
            pass
    return got["resid"], got["scale"]


def forward_from(bridge: Any, resid_pre: Float[Tensor, "n pos d_model"], layer: int, hooks: list[Hook]
                 ) -> tuple[Tensor, Tensor]:
    """Resume the forward at block ``layer`` from ``resid_pre`` (blocks before it skipped); final resid + scale."""
    with _skipping_blocks(bridge, layer):
        return final_state(bridge, lambda: bridge(resid_pre, start_at_layer=layer), hooks)


def ld_of_final(bridge: Any, resid: Tensor, scale: Tensor, t1: Tensor, t2: Tensor) -> Float[Tensor, " n"]:
    """LD from the last position's final residual and scale: (resid / scale) . (W_U[:,t1] - W_U[:,t2]) + b_U diff."""
    return (resid * logit_direction(bridge, t1, t2)).sum(-1) / scale + unembed_bias_diff(bridge, t1, t2)


# ------------------------------------------------------------------------------------------- clean runs


@dataclass
class Run:
    """One forward's cached activations (only the hooks asked for) with its t1, t2 and LD."""

    cache: Any
    t1: Tensor
    t2: Tensor
    ld: Tensor


def run_cached(bridge: Any, tokens: Int[Tensor, "batch pos"], names: set[str], t1: Tensor | None = None,
               t2: Tensor | None = None) -> Run:
    """A plain forward caching ``names``; t1/t2 default to the run's own top-2 tokens."""
    logits, cache = bridge.run_with_cache(tokens, names_filter=lambda n: n in names)
    last = logits[:, -1]
    if t1 is None or t2 is None:
        t1, t2 = top2(last)
    t1, t2 = t1.to(last.device), t2.to(last.device)  # given tokens may come from the CPU, the model from a GPU
    ld = last.gather(1, t1[:, None])[:, 0] - last.gather(1, t2[:, None])[:, 0]
    return Run(cache, t1, t2, ld)


def _check_patchable(components: list[Component]) -> None:
    bad = [c.name for c in components if c.kind not in ("head", "mlp")]
    if bad:
        raise AdvdlaError(f"patching applies to heads and MLPs, not {', '.join(bad)}")


def _resamples_3d(resamples: Tensor, batch: int) -> Int[Tensor, "batch r pos"]:
    """Resamples as [batch, R, pos]: a shared [R, pos] set is broadcast to every prompt."""
    if resamples.ndim == 2:
        resamples = resamples[None].expand(batch, -1, -1)
    if resamples.shape[0] != batch:
        raise AdvdlaError(f"got resamples for {resamples.shape[0]} prompts, expected {batch}")
    return resamples


def _check_lengths(tokens: Tensor, resamples: Tensor) -> None:
    if resamples.shape[-1] != tokens.shape[-1]:
        raise AdvdlaError(f"resamples must have exactly as many tokens as the prompt ({tokens.shape[-1]}), "
                          f"got {resamples.shape[-1]}")


# --------------------------------------------------------------------------------------- fast patching


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
    exactly equivalent (see the module docstring); :func:`input_effects_reference` is the literal check."""
    return output_effects(bridge, tokens, resamples, components, **kw)


def _prepared(bridge: Any, tokens: Tensor, resamples: Tensor, components: list[Component]
              ) -> tuple[Int[Tensor, "batch pos"], Int[Tensor, "batch r pos"], set[str]]:
    """Checked tokens, the resamples as [batch, R, pos] on their device, and the hooks the components read."""
    _check_patchable(components)
    tokens = check_tokens(bridge, tokens)
    _check_lengths(tokens, resamples)
    return tokens, _resamples_3d(resamples.to(tokens.device), tokens.shape[0]), hook_names(components)


def direct_effects(bridge: Any, tokens: Int[Tensor, "batch pos"], resamples: Tensor, components: list[Component], *,
                   t1: Tensor | None = None, t2: Tensor | None = None) -> Effects:
    """DE: the output swapped on the direct path only, final-norm scale frozen: (out_clean - out_res) / scale . dir."""
    tokens, res, names = _prepared(bridge, tokens, resamples, components)
    with torch.inference_mode(), lean(bridge):
        clean = run_cached(bridge, tokens, names, t1, t2)
        src = bridge.run_with_cache(res.reshape(-1, res.shape[-1]), names_filter=lambda n: n in names)[1]
        return _direct(bridge, clean, src, components, res.shape[1])


def _direct(bridge: Any, clean: Run, src: Any, components: list[Component], n_res: int) -> Effects:
    """DE from the clean run's cache and the resamples' (row b * n_res + r): no forward of its own."""
    batch = clean.ld.shape[0]
    src_out = component_outputs(bridge, src, components).reshape(batch, n_res, len(components), -1)
    delta = component_outputs(bridge, clean.cache, components)[:, None] - src_out
    direction = logit_direction(bridge, clean.t1, clean.t2)
    scale = clean.cache[LN_FINAL_SCALE][:, -1, 0]
    per = torch.einsum("brcd,bd->brc", delta, direction) / scale[:, None, None]
    return Effects(components, per, clean.ld, clean.t1, clean.t2)


def truth_effects(bridge: Any, tokens: Int[Tensor, "batch pos"], resamples: Tensor, components: list[Component], *,
                  t1: Tensor | None = None, t2: Tensor | None = None, batch_size: int = 64
                  ) -> tuple[Effects, Effects, Effects]:
    """TE, DE and zero-ablation TE together, as ground truth needs them: the same numbers as
    :func:`total_effects`, :func:`direct_effects` and :func:`zero_effects`, from one clean run and one run of the
    resamples shared by the three (instead of three and two), so only the patched forwards remain."""
    tokens, res, names = _prepared(bridge, tokens, resamples, components)
    with torch.inference_mode(), lean(bridge):
        clean = run_cached(bridge, tokens, names | {resid_hook(c.layer) for c in components}, t1, t2)
        src = bridge.run_with_cache(res.reshape(-1, res.shape[-1]), names_filter=lambda n: n in names)[1]
        te = _spliced_effects(bridge, clean, src, components, res.shape[1], batch_size)
        de = _direct(bridge, clean, src, components, res.shape[1])
        zeros = {c.site: torch.zeros_like(clean.cache[c.site]) for c in components}
        return te, de, _spliced_effects(bridge, clean, zeros, components, 1, batch_size)


def _last_outputs(cache: Any, components: list[Component]) -> Float[Tensor, "n comp d_model"]:
    outs = [cache[c.output_hook][:, -1, c.head] if c.kind == "head" else cache[c.output_hook][:, -1]
            for c in components]
    return torch.stack(outs, 1)


# ------------------------------------------------------------------------------------ slow references


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
    """Slow DE: a forward whose final residual gets (out_res - out_clean) added, with the final-norm scale frozen."""

    def ld_one(tok: Tensor, res: Tensor, c: Component, a: Tensor, b: Tensor) -> Tensor:
        name = c.output_hook
        names = {name, LN_FINAL_SCALE}
        clean = bridge.run_with_cache(tok, names_filter=lambda n: n in names)[1]
        src = bridge.run_with_cache(res, names_filter=lambda n: n == name)[1]
        delta = _last_outputs(src, [c])[:, 0] - _last_outputs(clean, [c])[:, 0]

        def add(x: Tensor, hook: Any) -> Tensor:
            x[:, -1] += delta
            return x

        def freeze(s: Tensor, hook: Any) -> Tensor:
            return clean[LN_FINAL_SCALE]

        return _logit_diff(bridge.run_with_hooks(tok, fwd_hooks=[(LN_FINAL_IN, add), (LN_FINAL_SCALE, freeze)]), a, b)

    return _reference_loop(bridge, tokens, resamples, components, t1, t2, ld_one)


def _n_kv(bridge: Any) -> int:
    return getattr(bridge.cfg, "n_key_value_heads", None) or bridge.cfg.n_heads


# ----------------------------------------------------------------------------- V-composition patching


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
