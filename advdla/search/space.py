"""The search space: fixed-length context manipulations plus k free token slots over small candidate pools.

Context: a candidate prompt is built from parameters an Optuna trial suggests, in this order, always
ending with exactly ``seq_len`` tokens (all candidates of a study share one length, so a batch is one
tensor and the resamples fit every candidate):

1. base context (``context``): one of ``n_context`` (window, truncation point) pairs: the prompt is the
   seq_len tokens of a 2 x seq_len corpus window ending at the truncation point, which picks what the
   model predicts. The pairs are pre-screened (:func:`prescreen_contexts`) over ``WINDOWS_PER_BASE``
   windows of each base document and every truncation point: those where the target is in DLA's top k with
   LD above the margin and its DLA share is largest (one forward per window, then the best exactly);
2. insertion (``insert`` none / prefix / infix) of the first ``ins_len`` tokens of another corpus span
   (``ins_span``) at the front or at ``ins_at``; the oldest tokens drop out to keep the length;
3. repetition: the span of ``repeat_len`` tokens starting at ``repeat_from`` is appended (oldest tokens
   drop out), which invites copying and induction at the predicted position;
4. ``n_swaps`` swaps of two positions each;
5. ``n_slots`` free slots: slot i writes token ``slot{i}_tok`` (or keeps the token, -1) at ``slot{i}_pos``
   positions before the end;
6. ``n_gcg`` gradient-ranked swaps (GCG-style): swap i writes, ``gcg{i}_pos`` positions before the end, the
   ``gcg{i}_rank``-th best token for that position of the chosen context (-1: none), from a table built once per
   context (:func:`gcg_table`): the first-order change of the target's DLA (even ranks) and of the rest of the
   logit difference, LD - DLA (odd ranks), when that one token is swapped. TPE learns which swaps of which
   contexts pay, through the same ask/tell as every other parameter.

Intuition: never a categorical over the whole vocabulary (TPE then spends about 0.8 s per trial). Each slot
chooses from one pool of ``pool_size`` tokens the model itself suggests (:func:`token_pool`): tokens
whose one-hot gradient most raises the target's DLA (GCG), tokens the target's OV circuit copies onto
their own logit, and tokens that the most negative downstream heads (erasure suspects) attend to.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor

from advdla.attribution import check_context, dla, hook_names, logit_direction, magnitude_rank, top2
from advdla.components import EMBED_HOOK, LN_FINAL_SCALE, Component, head_components, is_downstream, post_scale_hook
from advdla.corpus import TokenWindows
from advdla.models.bridge import lean, post_norms
from advdla.search.evaluate import rank_pool

__all__ = ["SearchSpace", "build_space", "suggest", "build_prompt", "token_pool", "INSERT_MODES"]

INSERT_MODES = ("none", "prefix", "infix")
WINDOWS_PER_BASE = 8  # windows pre-screened per base document (more_windows)
MAX_SWAPS = 2


@dataclass
class SearchSpace:
    """Everything a trial's parameters index into; deterministic given model, corpus, target and seed."""

    seq_len: int
    bases: Int[Tensor, "n_base two_seq_len"]
    contexts: list[tuple[int, int]]  # (base index, truncation point), best pre-screened first
    spans: Int[Tensor, "n_span seq_len"]
    pool: list[int]  # candidate token ids for the free slots
    pool_sources: dict[str, list[int]]  # which builder proposed which tokens (for the record)
    n_slots: int
    base_docs: list[int]  # corpus documents the bases (then the spans) come from (resamples avoid them)
    gcg: Int[Tensor, "n_context seq_len k"] | None = None  # per (context, position): gradient-ranked swap tokens
    n_gcg: int = 0
    bos: int | None = None  # the model's BOS token where it needs one: position 0 of every prompt, never searched

    def source_doc(self, context: int) -> int:
        """The corpus document a trial's prompt is built on (its base window's), from its ``context`` parameter."""
        return self.base_docs[self.contexts[context][0]]

    def describe(self) -> dict[str, Any]:
        return {"seq_len": self.seq_len, "n_base": len(self.bases), "n_context": len(self.contexts),
                "n_span": len(self.spans), "pool_size": len(self.pool), "n_slots": self.n_slots,
                "pool_sources": {k: len(v) for k, v in self.pool_sources.items()}, "n_gcg": self.n_gcg,
                "gcg_k": 0 if self.gcg is None else self.gcg.shape[-1]}

    def context_prompt(self, context: int) -> Int[Tensor, " seq_len"]:
        """The unmanipulated prompt of a context: the seq_len tokens of its base window ending at its truncation."""
        base, end = self.contexts[context]
        return with_bos(self.bases[base][end - self.seq_len:end].clone(), self.bos)


def with_bos(seq: Int[Tensor, "... seq_len"], bos: int | None) -> Int[Tensor, "... seq_len"]:
    """``seq`` with its first position set to ``bos`` (in place) on a model that needs it; unchanged otherwise.

    Why overwrite rather than prepend: every candidate keeps exactly seq_len tokens (one batch, resamples that fit
    all), and whatever a trial moved into position 0 is put back to BOS, so position 0 is never searched.
    """
    if bos is not None:
        seq[..., 0] = bos
    return seq


def suggest(trial: Any, space: SearchSpace) -> dict[str, Any]:
    """Ask ``trial`` for every parameter (all, every time: a fixed parameter set resumes and re-enqueues cleanly)."""
    L, third = space.seq_len, max(1, space.seq_len // 3)
    p = {"context": trial.suggest_categorical("context", list(range(len(space.contexts)))),
         "insert": trial.suggest_categorical("insert", list(INSERT_MODES)),
         "ins_span": trial.suggest_categorical("ins_span", list(range(len(space.spans)))),
         "ins_len": trial.suggest_int("ins_len", 1, third),
         "ins_at": trial.suggest_int("ins_at", 1, L - 1),
         "repeat_len": trial.suggest_int("repeat_len", 0, third),
         "repeat_from": trial.suggest_int("repeat_from", 0, L - 1),
         "n_swaps": trial.suggest_int("n_swaps", 0, MAX_SWAPS)}
    for i in range(MAX_SWAPS):
        p[f"swap{i}_a"] = trial.suggest_int(f"swap{i}_a", 0, L - 1)
        p[f"swap{i}_b"] = trial.suggest_int(f"swap{i}_b", 0, L - 1)
    for i in range(space.n_slots):
        p[f"slot{i}_pos"] = trial.suggest_int(f"slot{i}_pos", 0, L - 1)
        p[f"slot{i}_tok"] = trial.suggest_categorical(f"slot{i}_tok", [-1, *space.pool])
    for i in range(space.n_gcg):
        p[f"gcg{i}_pos"] = trial.suggest_int(f"gcg{i}_pos", 0, L - 1)
        p[f"gcg{i}_rank"] = trial.suggest_int(f"gcg{i}_rank", -1, space.gcg.shape[-1] - 1)
    return p


def build_prompt(p: dict[str, Any], space: SearchSpace) -> Int[Tensor, " seq_len"]:
    """Apply a trial's parameters (see the module docstring, steps 1-5); always exactly seq_len tokens."""
    L = space.seq_len
    base, end = space.contexts[p["context"]]
    seq = space.bases[base][end - L:end].clone()
    n = p["ins_len"]
    span = space.spans[p["ins_span"]][:n]
    if p["insert"] == "prefix":
        seq = torch.cat([span, seq[n:]])
    elif p["insert"] == "infix":
        at = min(max(p["ins_at"], n), L)
        seq = torch.cat([seq[n:at], span, seq[at:]])
    if p["repeat_len"] > 0:
        start = min(p["repeat_from"], L - p["repeat_len"])
        seq = torch.cat([seq, seq[start:start + p["repeat_len"]]])[-L:]
    for i in range(p["n_swaps"]):
        a, b = p[f"swap{i}_a"], p[f"swap{i}_b"]
        seq[a], seq[b] = seq[b].clone(), seq[a].clone()
    for i in range(space.n_slots):
        if p[f"slot{i}_tok"] >= 0:
            seq[L - 1 - p[f"slot{i}_pos"]] = p[f"slot{i}_tok"]
    for i in range(space.n_gcg):
        if p[f"gcg{i}_rank"] >= 0:
            at = L - 1 - p[f"gcg{i}_pos"]
            seq[at] = space.gcg[p["context"], at, p[f"gcg{i}_rank"]]
    return with_bos(seq, space.bos)


def build_space(bridge: Any, windows: TokenWindows, target: Component, *, seq_len: int, seed: int, n_base: int = 64,
                n_span: int = 32, pool_size: int = 96, n_slots: int = 4, n_context: int = 64,
                exclude: set[int] = frozenset(), n_gcg: int = 0, gcg_k: int = 16, top_k: int = 3,
                margin: float = 0.5) -> SearchSpace:
    """Draw the base windows and insertion spans with ``seed``, pre-screen contexts (for the thresholds' ``top_k``
    and ``margin``), build the model's token pool (and, with ``n_gcg``, the per-context table of ``gcg_k``
    gradient-ranked swaps per position)."""
    check_context(bridge, 2 * seq_len, f"search --seq-len {seq_len} (pre-screen windows of 2 x {seq_len})",
                  per_unit=2)
    bases, docs = windows.sample(2 * seq_len, n_base, seed=seed, exclude=exclude)
    more, more_docs = more_windows(windows, docs, 2 * seq_len, WINDOWS_PER_BASE - 1, seed=seed + 5)
    bases, docs = torch.cat([bases, more]), docs + more_docs
    contexts = prescreen_contexts(bridge, target, bases, seq_len=seq_len, n_keep=n_context, top_k=top_k,
                                  margin=margin, bos=windows.bos)
    # insertion spans are text: on a model that needs BOS, each span's leading BOS is cut off
    extra = int(windows.bos is not None)
    spans, span_docs = windows.sample(seq_len + extra, n_span, seed=seed + 1, exclude=set(docs) | set(exclude))
    spans = spans[:, extra:]
    sources = token_pool(bridge, target, with_bos(bases[:, -seq_len:][:8].clone(), windows.bos), pool_size=pool_size)
    pool = _merge(sources, pool_size)
    space = SearchSpace(seq_len, bases, contexts, spans, pool, sources, n_slots, docs + span_docs, bos=windows.bos)
    if n_gcg:
        prompts = torch.stack([space.context_prompt(i) for i in range(len(contexts))])
        space.gcg, space.n_gcg = gcg_table(bridge, target, prompts, k=gcg_k), n_gcg
    return space


def more_windows(windows: TokenWindows, docs: list[int], n_tokens: int, per_doc: int, *, seed: int
                 ) -> tuple[Int[Tensor, "n pos"], list[int]]:
    """``per_doc`` more windows of ``n_tokens`` tokens from each of ``docs`` (random starts), and their documents.

    Why: where the target leads DLA's ranking is rare (SmolLM2's late heads: about 1 (window, end) pair in 130),
    and a base document is long (median 470 tokens), so its other windows are free contexts: the pre-screen
    sees ``per_doc + 1`` times as many, while the documents the search uses, and so what it must keep away from
    resamples and the other split, stay the same.
    """
    rng = np.random.default_rng(seed)
    rows, out_docs = [], []
    for _ in range(per_doc):
        for d in docs:
            rows.append(windows.window_at(d, int(rng.integers(0, windows.lengths[d] - n_tokens + 1)), n_tokens))
            out_docs.append(d)
    if not rows:
        return torch.zeros(0, n_tokens, dtype=torch.long), []
    return torch.tensor(np.stack(rows)), out_docs


def prescreen_contexts(bridge: Any, target: Component, bases: Int[Tensor, "n two_l"], *, seq_len: int, n_keep: int,
                       batch: int = 16, top_k: int = 3, margin: float = 0.5, bos: int | None = None
                       ) -> list[tuple[int, int]]:
    """The ``n_keep`` (base, end) pairs where the target is most nearly a hit's first half: in DLA's top
    ``top_k`` by |DLA| among every head and MLP, LD > ``margin``, and a large DLA share of LD.

    Two passes. A rough one scores every truncation point of a window with one forward (position end-1 of the
    full window sees base[:end] instead of the prompt's base[end-seq_len:end]); the best ``4 n_keep`` pairs are
    then scored exactly, on their own seq_len-token prompts, and the best ``n_keep`` of those kept.

    Why the rank: on a model with 300 heads and MLPs a late head's DLA share is often large while a few MLPs'
    |DLA| are larger still; ranked by the share alone, the best contexts put the target 4th to 12th, and no swap
    or slot the search tries lifts it into the top 3 (SmolLM2, seq_len 16: 0 hits in 2 x 192 trials). Contexts
    that already put it there leave the search the part it is good at: making the total effect small.
    """
    # a base window starts with BOS on a model that needs it: a prompt then ends at seq_len + 1 or later, so that
    # its slice holds text only (build_prompt puts BOS back at position 0, where no trial can move it)
    first = seq_len + (bos is not None)
    rough = torch.cat([_prescreen_scores(bridge, target, bases[i:i + batch], slice(first - 1, 2 * seq_len),
                                         top_k=top_k, margin=margin) for i in range(0, len(bases), batch)])
    n_end = rough.shape[1]
    pairs = [(i // n_end, first + i % n_end) for i in rough.flatten().argsort(descending=True)[:4 * n_keep].tolist()]
    prompts = with_bos(torch.stack([bases[b][end - seq_len:end] for b, end in pairs]), bos)
    exact = torch.cat([_prescreen_scores(bridge, target, prompts[i:i + batch], slice(seq_len - 1, seq_len),
                                         top_k=top_k, margin=margin) for i in range(0, len(prompts), batch)])[:, 0]
    return [pairs[i] for i in exact.argsort(descending=True, stable=True)[:n_keep].tolist()]


def _prescreen_scores(bridge: Any, target: Component, tokens: Tensor, pos: slice, *, top_k: int, margin: float
                      ) -> Float[Tensor, "batch ends"]:
    """[batch, positions in ``pos``]: the target's DLA share of LD (clamped to [-3, 3]) at each, less 3 where
    LD <= ``margin`` and 3 more where it ranks below ``top_k`` by |DLA| among every head and MLP."""
    comps = rank_pool(bridge.cfg)  # the evaluator's: every head and MLP, in residual order
    with torch.inference_mode(), lean(bridge):
        names = hook_names(comps)
        logits, cache = bridge.run_with_cache(tokens.to(bridge.W_U.device), names_filter=lambda n: n in names)
        top = logits[:, pos].topk(2, dim=-1)
        ld = top.values[..., 0] - top.values[..., 1]
        direction = bridge.W_U[:, top.indices[..., 0]] - bridge.W_U[:, top.indices[..., 1]]  # [d_model, batch, ends]
        dlas = _position_dlas(bridge, cache, comps, pos, direction) / cache[LN_FINAL_SCALE][:, pos, 0, None]
    index = comps.index(target)
    share = (dlas[..., index] / ld.clamp(min=1e-3)).clamp(-3, 3)
    rank = magnitude_rank(dlas, index)
    return (share - 3 * (ld <= margin) - 3 * (rank > top_k)).cpu()


def _position_dlas(bridge: Any, cache: Any, comps: list[Component], pos: slice, direction: Tensor
                   ) -> Float[Tensor, "batch ends comp"]:
    """Every component's output at positions ``pos`` dotted with that position's logit direction (unscaled): heads
    through W_O projected onto the direction first, so no [batch, ends, head, d_model] tensor is formed."""
    out, layers, post = [], sorted({c.layer for c in comps}), post_norms(bridge)
    for layer in layers:
        heads = [c.head for c in comps if c.layer == layer and c.kind == "head"]
        if heads:
            w_o = bridge.blocks[layer].attn.W_O[heads]  # [head, d_head, d_model]
            z = cache[Component("head", layer, heads[0]).z_hook][:, pos][:, :, heads]  # [batch, ends, head, d_head]
            # on sandwich-norm models, through the attention post-norm with its scale from this run
            through = direction if post is None else direction * post.attn[layer].to(direction.dtype)[:, None, None]
            val = torch.einsum("bphk,hkd,dbp->bph", z, w_o, through)
            out.append(val if post is None else val / cache[post_scale_hook(layer, "head")][:, pos].to(val.dtype))
        if any(c.layer == layer and c.kind == "mlp" for c in comps):
            mlp = cache[Component("mlp", layer).site][:, pos]  # [batch, ends, d_model]
            out.append(torch.einsum("bpd,dbp->bp", mlp, direction)[..., None])
    return torch.cat(out, -1)


def _merge(sources: dict[str, list[int]], size: int) -> list[int]:
    """Interleave the sources (first of each, then second of each, ...) without duplicates, up to ``size``."""
    out: list[int] = []
    lists = [v for v in sources.values() if v]
    for i in range(max((len(v) for v in lists), default=0)):
        for v in lists:
            if i < len(v) and v[i] not in out and len(out) < size:
                out.append(v[i])
    return sorted(out)


def token_pool(bridge: Any, target: Component, tokens: Int[Tensor, "batch pos"], *, pool_size: int
               ) -> dict[str, list[int]]:
    """Candidate slot tokens, by source, each list best first and ``pool_size`` long (merged later)."""
    banned = set(getattr(bridge.tokenizer, "all_special_ids", []) or [])

    def keep(scores: Tensor) -> list[int]:
        return [t for t in scores.argsort(descending=True).tolist() if t not in banned][:pool_size]

    out = {"gradient": keep(_gradient_scores(bridge, target, tokens))}
    if target.kind == "head":
        out["ov_copy"] = keep(_ov_copy_scores(bridge, target))
    out["eraser_attention"] = keep(_eraser_attention_scores(bridge, target, tokens))
    return out


def _gradient_scores(bridge: Any, target: Component, tokens: Tensor) -> Tensor:
    """GCG: max over (prompt, position) of d DLA(target) / d one-hot[token], i.e. grad_embed . W_E[token]."""
    tokens = tokens.to(bridge.W_U.device)
    with torch.enable_grad():
        run = _dla_graph(bridge, target, tokens)
        (grad,) = torch.autograd.grad(run.dla_terms.sum(), run.embed)
    return (grad.detach().reshape(-1, grad.shape[-1]) @ bridge.W_E.detach().T).amax(0)


def _ov_copy_scores(bridge: Any, target: Component) -> Tensor:
    """How much the target's OV circuit, reading token t's (normalised) embedding, raises t's own logit."""
    attn = bridge.blocks[target.layer].attn
    group = target.head // (attn.W_O.shape[0] // attn.W_V.shape[0])
    w_e = bridge.W_E.detach()
    if str(getattr(bridge.cfg, "normalization_type", "LN")).startswith("LN"):
        w_e = w_e - w_e.mean(-1, keepdim=True)
    w_e = w_e / w_e.pow(2).mean(-1, keepdim=True).sqrt().clamp(min=1e-6)
    written = w_e @ attn.W_V[group].detach() @ attn.W_O[target.head].detach()  # [vocab, d_model]
    return (written * bridge.W_U.detach().T[: written.shape[0]]).sum(-1)


def _eraser_attention_scores(bridge: Any, target: Component, tokens: Tensor, n_erasers: int = 3) -> Tensor:
    """Attention mass, from the last position, that the most negative-DLA downstream heads put on each token."""
    later = [c for c in head_components(bridge.cfg) if is_downstream(c, target)]
    scores = torch.zeros(bridge.cfg.d_vocab)
    if not later:
        return scores
    tokens = tokens.to(bridge.W_U.device)
    erasers = [later[i] for i in dla(bridge, tokens, components=later).values.mean(0).argsort()[:n_erasers].tolist()]
    names = {c.pattern_hook for c in erasers}
    with torch.inference_mode():
        _, cache = bridge.run_with_cache(tokens, names_filter=lambda n: n in names)
    for c in erasers:
        mass = cache[c.pattern_hook][:, c.head, -1].float().cpu()  # [batch, key_pos]
        scores.index_add_(0, tokens.cpu().reshape(-1), mass.reshape(-1))
    return scores


def gcg_table(bridge: Any, target: Component, prompts: Int[Tensor, "n pos"], *, k: int = 16, batch: int = 8
              ) -> Int[Tensor, "n pos k"]:
    """Per prompt and position, ``k`` swap tokens ranked by the first-order change a one-token swap makes (GCG):
    even ranks raise the target's DLA most, odd ranks the rest of the logit difference (LD - DLA) most; the
    current token and special tokens are never proposed."""
    banned = sorted(set(getattr(bridge.tokenizer, "all_special_ids", []) or []))
    out = []
    for i in range(0, len(prompts), batch):
        tokens = prompts[i:i + batch].to(bridge.W_U.device)
        grads = _position_grads(bridge, target, tokens)  # two [b, pos, d_model]
        picks = []
        for g in grads:
            gain = g @ bridge.W_E.detach().T  # [b, pos, vocab]: first-order change of swapping in each token
            gain = gain - gain.gather(2, tokens[..., None])  # relative to the current token
            gain.scatter_(2, tokens[..., None], float("-inf"))
            if banned:
                gain[..., banned] = float("-inf")
            picks.append(gain.topk(k, dim=-1).indices)
        out.append(_interleave(picks[0], picks[1], k))
    return torch.cat(out).cpu()


def _interleave(a: Tensor, b: Tensor, k: int) -> Tensor:
    """[..., k]: a's first, b's first, a's second, ... skipping b's tokens already taken from a (then a's next)."""
    rows = []
    for ra, rb in zip(a.reshape(-1, k).tolist(), b.reshape(-1, k).tolist()):
        merged: list[int] = []
        for x, y in zip(ra, rb):
            merged += [t for t in (x, y) if t not in merged]
        rows.append((merged + [t for t in ra if t not in merged])[:k])
    return torch.tensor(rows).reshape(a.shape)


def _position_grads(bridge: Any, target: Component, tokens: Tensor) -> tuple[Tensor, Tensor]:
    """Gradients of the target's DLA and of LD - DLA at the last position wrt the input embeddings."""
    with torch.enable_grad():
        run = _dla_graph(bridge, target, tokens)
        dla_t, last, t1, t2 = run.dla_terms.sum(-1), run.logits[:, -1], run.t1, run.t2
        ld = last.gather(1, t1[:, None])[:, 0] - last.gather(1, t2[:, None])[:, 0]
        g_dla = torch.autograd.grad(dla_t.sum(), run.embed, retain_graph=True)[0]
        g_rest = torch.autograd.grad((ld - dla_t).sum(), run.embed)[0]
    return g_dla.detach(), g_rest.detach()


@dataclass
class _DlaGraph:
    """One forward with the input embeddings as a leaf: what the gradient-ranked pools differentiate."""

    logits: Float[Tensor, "batch pos vocab"]
    embed: Float[Tensor, "batch pos d_model"]  # the leaf the gradients are taken with respect to
    dla_terms: Float[Tensor, "batch d_model"]  # the target's last-position DLA before the sum over d_model
    t1: Int[Tensor, " batch"]
    t2: Int[Tensor, " batch"]


def _dla_graph(bridge: Any, target: Component, tokens: Int[Tensor, "batch pos"]) -> _DlaGraph:
    """Run ``tokens`` with the embeddings made a leaf and the target's output and the final-norm scale captured
    (graph kept: call under ``torch.enable_grad()``); t1, t2 are the clean top two at the last position."""
    got: dict[str, Tensor] = {}

    def leaf(x: Tensor, hook: Any) -> Tensor:
        got["embed"] = x.detach().requires_grad_(True)
        return got["embed"]

    def grab(key: str):
        def hook(x: Tensor, hook: Any) -> Tensor:
            got[key] = x
            return x
        return hook

    post = post_norms(bridge)
    hooks = [(EMBED_HOOK, leaf), (target.output_hook, grab("out")), (LN_FINAL_SCALE, grab("scale"))]
    if post is not None and target.kind == "head":  # a head's output reaches the residual through the post-norm
        hooks.append((post_scale_hook(target.layer, "head"), grab("post")))
    logits = bridge.run_with_hooks(tokens, fwd_hooks=hooks)
    t1, t2 = top2(logits[:, -1].detach())
    out = got["out"][:, -1, target.head] if target.kind == "head" else got["out"][:, -1]
    if "post" in got:
        out = out * post.attn[target.layer].to(out.dtype) / got["post"][:, -1].to(out.dtype)
    terms = (out / got["scale"][:, -1]) * logit_direction(bridge, t1, t2)
    return _DlaGraph(logits, got["embed"], terms, t1, t2)
