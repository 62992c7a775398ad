"""What the erasure analysis reads from a forward: outputs, residual points, V-composition patched runs, DLA per
position.

Context: the proof that a later head erases *by reading* the writer is V-composition patching: remove the writer's
output from the eraser's value input (an MLP's input, for an MLP eraser), the norm scale frozen at its clean value,
and see its projection ratio onto the writer go to 0. Everything here is one forward (clean or patched) that caches
only the hook points an analysis needs, and the per-position views of its cache.

Intuition: the analysis treats every (prompt, position) as a prompt of its own. Each position's clean top-2 tokens
give it a logit direction, and a component's DLA there is its output over the clean final-norm scale dotted with
that direction: thousands of points per sample, enough for the paper's Figure-4 line fits.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from advdla.components import (
    LN_FINAL_SCALE,
    RESID_POINTS,
    Component,
    all_components,
    heads_and_mlps,
    is_downstream,
    post_scale_hook,
    resid_hook,
)
from advdla.models.bridge import PostNorms
from advdla.patching import v_composition_hooks

__all__ = ["component_output", "output_hooks", "scale_hooks", "downstream_of", "residual_points", "after_writer_hook",
           "clean_run", "patched_run", "Directions", "logit_directions", "position_dla"]


def component_output(cache: Any, c: Component, post: PostNorms | None = None) -> Float[Tensor, "batch pos d_model"]:
    """A head's or an MLP's output in a cache (a head's from the per-head ``hook_result``), as it reaches the residual.

    ``post``: the model's sandwich norms (:func:`advdla.models.bridge.post_norms`), through which a head's output
    passes with its attention block's scale from the same run; an MLP's ``hook_mlp_out`` is already past its norm.
    """
    if c.kind != "head":
        return cache[c.output_hook]
    out = cache[c.output_hook][:, :, c.head]
    if post is None:
        return out
    return out * post.attn[c.layer].to(out.dtype) / cache[post_scale_hook(c.layer, "head")].to(out.dtype)


def output_hooks(comps: list[Component]) -> set[str]:
    """The hook names that hold these components' outputs (and, on sandwich-norm models, their heads' post-norm
    scales: the names exist only there)."""
    return {c.output_hook for c in comps} | {post_scale_hook(c.layer, "head") for c in comps if c.kind == "head"}


def scale_hooks(comps: list[Component]) -> set[str]:
    """The norm-scale hook names that V-composition patching freezes for these components."""
    return {c.norm_scale_hook for c in comps}


def downstream_of(cfg: Any, writer: Component) -> list[Component]:
    """Every head and MLP that can read what ``writer`` wrote, in residual order."""
    return [c for c in all_components(cfg) if is_downstream(c, writer)]


def residual_points(cfg: Any, writer: Component) -> list[tuple[str, str]]:
    """(hook name, label) of resid_pre / resid_mid / resid_post for the writer's layer and every later one."""
    return [(resid_hook(l, p), f"{p}{l}") for l in range(writer.layer, cfg.n_layers) for p in RESID_POINTS]


def after_writer_hook(writer: Component) -> str:
    """The first residual hook point that holds the writer's output."""
    return resid_hook(writer.layer, "mid" if writer.kind == "head" else "post")


def clean_run(bridge: Any, tokens: Int[Tensor, "batch pos"], writers: list[Component]) -> tuple[Tensor, Any]:
    """One clean forward caching what every writer's analysis reads (outputs, residuals and norm scales downstream)."""
    first = min(w.layer for w in writers)
    later = [c for c in heads_and_mlps(bridge.cfg) if c.layer >= first]
    names = output_hooks(later) | scale_hooks(later) | {LN_FINAL_SCALE}
    names |= {h for w in writers for h, _ in residual_points(bridge.cfg, w)}
    with torch.inference_mode():
        return bridge.run_with_cache(tokens, names_filter=lambda n: n in names)


def _vcomp_hooks(bridge: Any, writer_out: Tensor, receivers: list[Component], cache: Any) -> list:
    """V-composition hooks: writer removed from receiver heads' values (ln1 scale frozen) and MLPs' inputs (ln2)."""
    heads = [c for c in receivers if c.kind == "head"]
    mlps = [c for c in receivers if c.kind == "mlp"]
    ln1 = {c.layer: cache[c.norm_scale_hook] for c in heads}
    ln2 = {c.layer: cache[c.norm_scale_hook] for c in mlps}
    return v_composition_hooks(bridge, writer_out, heads, ln1) + v_composition_hooks(bridge, writer_out, mlps, ln2)


def patched_run(bridge: Any, tokens: Int[Tensor, "batch pos"], writer_out: Float[Tensor, "batch pos d_model"],
                receivers: list[Component], clean: Any, extra: set[str]) -> Any:
    """A forward with the writer removed from the receivers' inputs, caching residuals and ``extra``.

    ``clean``: the clean run's cache, which holds the norm scales the patch freezes. Returns the patched cache.
    """
    names = extra | {n for n in clean.keys() if "hook_resid" in n}
    hooks = _vcomp_hooks(bridge, writer_out, receivers, clean)
    with bridge.hooks(fwd_hooks=hooks), warnings.catch_warnings():
        # editing ln2.hook_normalized is the point of MLP V-comp patching; the bridge warns that it noticed
        warnings.filterwarnings("ignore", message="A forward hook edited hook_scale/hook_normalized")
        return bridge.run_with_cache(tokens, names_filter=lambda n: n in names)[1]


@dataclass
class Directions:
    """Per (prompt, position) logit directions and clean final-norm scales, positions first_pos.. only."""

    direction: Float[Tensor, "batch pos d_model"]
    scale: Float[Tensor, "batch pos"]
    first_pos: int


def logit_directions(bridge: Any, logits: Float[Tensor, "batch pos vocab"], cache: Any, first_pos: int) -> Directions:
    """Each position is a prompt of its own: its clean top-2 tokens give its logit direction."""
    top = logits[:, first_pos:].topk(2, dim=-1).indices  # [batch, pos, 2]
    w_u = bridge.W_U
    direction = (w_u[:, top[..., 0]] - w_u[:, top[..., 1]]).permute(1, 2, 0)
    return Directions(direction, cache[LN_FINAL_SCALE][:, first_pos:, 0], first_pos)


def position_dla(cache: Any, comps: list[Component], d: Directions, post: PostNorms | None = None
                 ) -> Float[Tensor, "n comp"]:
    """DLA of each component at every (prompt, position >= first_pos), flattened to rows."""
    cols = [torch.einsum("bpd,bpd->bp", component_output(cache, c, post)[:, d.first_pos:], d.direction) / d.scale
            for c in comps]
    return torch.stack(cols, -1).reshape(-1, len(comps))
