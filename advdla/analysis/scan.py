"""Writer -> eraser pairs found without the logit direction: the centred PR of every later component onto every
earlier head's output, the reliably negative pairs confirmed by V-composition patching.

Context: :func:`~advdla.analysis.writers.analyze_writer` starts from writers that carry DLA. The paper's setting is
wider: an eraser can cancel a writer whose signal never reaches the logits. :func:`scan_erasers` therefore tries
every head before the last layer as a writer, and needs no logit direction at all.

Intuition: a screen, then a proof. The screen (one clean forward) keeps the pairs whose centred PR is reliably
negative; a decoy whose output merely anti-correlates with the writer's passes it. The proof (one patched forward
per writer) removes the writer from the candidates' value inputs: a real eraser's PR moves back toward 0, the
decoy's does not. Both traps of :mod:`advdla.analysis.writers` apply: outputs are centred and position 0 is left
out (``first_pos``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from advdla.analysis.activations import (
    after_writer_hook,
    component_output,
    output_hooks,
    patched_run,
    scale_hooks,
)
from advdla.analysis.stats import Quartiles, centred
from advdla.analysis.writers import Criteria, Note, WriterAnalysis, pr_quartiles, writer_norm_ratio
from advdla.attribution import check_tokens
from advdla.components import Component, head_components, heads_and_mlps, is_downstream, post_scale_hook
from advdla.models.bridge import PostNorms, post_norms

__all__ = ["EraserPair", "scan_erasers", "eraser_pairs"]


@dataclass
class EraserPair:
    """A writer -> eraser pair: the eraser's centred PR onto the writer, with and without V-composition patching."""

    writer: str
    eraser: str
    pr: Quartiles
    pr_vcomp: Quartiles
    recovery: float
    source: str = "scan"  # scan (every pair) or writer (an analysed writer's erasers)


def scan_erasers(bridge: Any, tokens: Int[Tensor, "batch pos"], *, first_pos: int = 1,
                 criteria: Criteria | None = None, writers: list[Component] | None = None,
                 step: Note | None = None) -> tuple[list[EraserPair], int]:
    """Writer -> eraser pairs, found without the logit direction (the paper's setting: the writer's signal need not
    reach the logits).

    1. One clean forward; for every head ``w`` before the last layer (or ``writers``) whose centred output is at
       least ``min_norm_ratio`` of the centred residual's, the centred PR of every later head and MLP onto w's
       centred output, per (prompt, position >= first_pos);
    2. pairs whose PR is reliably negative (median <= max_pr and q75 < 0) are candidates;
    3. per writer, one forward with w's output removed from its candidates' value inputs (MLP inputs), norm scales
       frozen: a candidate is an eraser when patching moves at least ``min_recovery`` of its PR back to 0.

    Returns the confirmed pairs (most negative PR first) and how many candidate pairs were tested.
    """
    crit, step = criteria or Criteria(), step or (lambda msg: None)
    tokens = check_tokens(bridge, tokens)
    cfg = bridge.cfg
    writers = writers or [c for c in head_components(cfg) if c.layer < cfg.n_layers - 1]
    later = [c for c in heads_and_mlps(cfg) if c.layer >= min(w.layer for w in writers)]
    names = output_hooks(later) | scale_hooks(later) | {after_writer_hook(w) for w in writers}
    step(f"scan: clean forward over {len(later)} components")
    with torch.inference_mode():
        _, cache = bridge.run_with_cache(tokens, names_filter=lambda n: n in names)
    sl = slice(first_pos, None)
    outs = _centred_outputs(cache, later, sl, post_norms(bridge))
    pairs, tested = [], 0
    for w in writers:
        found, n_cands = _writer_pairs(bridge, tokens, w, [c for c in later if is_downstream(c, w)], cache, outs, sl,
                                       crit)
        pairs += found
        tested += n_cands
    step(f"scan: {len(pairs)} erasers confirmed of {tested} reliably negative pairs")
    return sorted(pairs, key=lambda p: p.pr.median), tested


def _writer_pairs(bridge: Any, tokens: Tensor, w: Component, down: list[Component], cache: Any,
                  outs: dict[tuple[str, int], Tensor], sl: slice, crit: Criteria) -> tuple[list[EraserPair], int]:
    """One writer's screen (reliably negative centred PR) and proof (V-composition patching of the candidates):
    the confirmed pairs and the number of candidates (none when the writer's output is too small to judge)."""
    post = post_norms(bridge)
    w_full = component_output(cache, w, post)
    wc = centred(w_full[:, sl])
    if writer_norm_ratio(w_full[:, sl], cache[after_writer_hook(w)][:, sl]) < crit.min_norm_ratio:
        return [], 0
    prs = _scan_prs(outs, down, wc)  # [n, len(down)]
    q = torch.quantile(prs.double(), torch.tensor([0.5, 0.25, 0.75], dtype=torch.float64), dim=0)
    cands = [i for i in range(len(down)) if q[0, i] <= crit.max_pr and q[2, i] < 0]
    if not cands:
        return [], 0
    receivers = [down[i] for i in cands]
    with torch.inference_mode():
        patched = patched_run(bridge, tokens, w_full, receivers, cache, output_hooks(receivers))
    pairs = []
    for i, c in zip(cands, receivers):
        pr, pr_v = Quartiles(*(float(v) for v in q[:, i])), pr_quartiles(component_output(patched, c, post)[:, sl], wc,
                                                                     True)
        recovery = (pr_v.median - pr.median) / -pr.median
        if recovery >= crit.min_recovery:
            pairs.append(EraserPair(w.name, c.name, pr, pr_v, recovery))
    return pairs, len(cands)


def _centred_outputs(cache: Any, comps: list[Component], sl: slice, post: PostNorms | None = None
                     ) -> dict[tuple[str, int], Tensor]:
    """Per layer, the centred outputs of its heads [batch, pos, n_heads, d_model] and its MLP's (``("mlp", l)``), as
    they reach the residual (heads through the post-norm on sandwich-norm models)."""
    outs = {}
    for c in comps:
        key = (c.kind, c.layer)
        if key not in outs:
            out = cache[c.output_hook][:, sl]
            if c.kind == "head" and post is not None:
                scale = cache[post_scale_hook(c.layer, "head")][:, sl, None].to(out.dtype)
                out = out * post.attn[c.layer].to(out.dtype) / scale
            outs[key] = out - out.mean((0, 1), keepdim=True)
    return outs


def _scan_prs(outs: dict[tuple[str, int], Tensor], down: list[Component], wc: Float[Tensor, "batch pos d_model"]
              ) -> Float[Tensor, "n comp"]:
    """Centred PR of each component's output onto the (centred) writer output ``wc``, rows = (prompt, position)."""
    denom = (wc * wc).sum(-1)  # [batch, pos]
    by_layer = {key: (torch.einsum("bphd,bpd->bph", out, wc) if key[0] == "head" else (out * wc).sum(-1)[..., None])
                / denom[..., None] for key, out in outs.items() if any((c.kind, c.layer) == key for c in down)}
    cols = [by_layer[(c.kind, c.layer)][..., c.head if c.kind == "head" else 0] for c in down]
    return torch.stack(cols, -1).reshape(-1, len(down))


def eraser_pairs(analyses: list[WriterAnalysis]) -> list[EraserPair]:
    """The analysed writers' erasers as pairs (source ``writer``)."""
    return [EraserPair(wa.writer, r.component, r.pr, r.pr_vcomp, r.recovery, "writer")
            for wa in analyses for r in wa.components if r.eraser]
