"""Fast batched scoring of candidate prompts for one target component: its DLA, its rank, LD, and its TE.

Context: the search scores thousands of candidates, so one candidate must cost about one forward. For a
batch of B same-length candidates, :class:`Evaluator` runs

1. one clean forward that captures, at the last position only, every head's output (for the target's DLA
   and its rank among heads), the final-norm scale, the target layer's residual stream (to resume from),
   and the full logits (for naturalness: the mean log-probability of each token given its prefix);
2. one batched partial forward over B x R rows, resumed at the target's layer (earlier blocks skipped),
   where row (b, r) carries the target's activation from resample r: TE(b, r) = LD_clean - LD_patched.

The R resamples are fixed per study, so their target activations are computed once at construction: a
search does not re-run its resamples for every candidate (``patching.total_effects`` does, because it
serves arbitrary prompts and resamples). TE is computed on the output path, which equals input patching
for a head (see :mod:`advdla.patching`); the tests check it against ``patching.total_effects`` and the
search re-verifies every reported example on the literal slow path (:func:`verify`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from advdla.attribution import dla as dla_reference
from advdla.attribution import logit_direction, top2
from advdla.components import LN_FINAL_SCALE, Component, attn_result_hook, head_components, resid_hook
from advdla.patching import forward_from, input_effects_reference, ld_of_final

__all__ = ["Scores", "Evaluator", "verify"]


@dataclass
class Scores:
    """One batch of candidates scored for the target. Shares are relative to LD (clamped away from 0)."""

    tokens: Int[Tensor, "batch pos"]
    t1: Int[Tensor, " batch"]
    t2: Int[Tensor, " batch"]
    ld: Float[Tensor, " batch"]
    dla: Float[Tensor, " batch"]
    rank: Int[Tensor, " batch"]  # 1 = the largest DLA among all heads (and the target)
    te: Float[Tensor, "batch resample"]
    naturalness: Float[Tensor, " batch"]  # mean log p(token | prefix) over positions 1..pos-1

    @property
    def te_mean(self) -> Float[Tensor, " batch"]:
        return self.te.mean(1)

    @property
    def te_std(self) -> Float[Tensor, " batch"]:
        return self.te.std(1, unbiased=False)

    @property
    def dla_share(self) -> Float[Tensor, " batch"]:
        return self.dla / _safe(self.ld)

    @property
    def te_share(self) -> Float[Tensor, " batch"]:
        """|mean TE| / LD: how much of the logit difference the target causes."""
        return self.te_mean.abs() / _safe(self.ld)


def _safe(ld: Tensor) -> Tensor:
    return ld.abs().clamp(min=1e-3)


class Evaluator:
    """Scores batches of candidates for ``target`` against a fixed set of resamples [R, pos]."""

    def __init__(self, bridge: Any, target: Component, resamples: Int[Tensor, "r pos"], *, chunk_rows: int = 256):
        self.bridge, self.target, self.chunk_rows = bridge, target, chunk_rows
        self.device = bridge.W_U.device
        self.resamples = resamples.to(self.device)
        self.heads = head_components(bridge.cfg)
        self._act = target.site  # what TE replaces: a head's hook_z slice, an MLP's output
        with torch.inference_mode():
            _, cache = bridge.run_with_cache(self.resamples, names_filter=lambda n: n == self._act)
        self.source = cache[self._act].clone()  # [R, pos, n_heads, d_head] or [R, pos, d_model]

    @property
    def seq_len(self) -> int:
        return self.resamples.shape[1]

    def __call__(self, tokens: Int[Tensor, "batch pos"]) -> Scores:
        tokens = tokens.to(self.device)
        with torch.inference_mode():
            logits, got = self._clean(tokens)
            last = logits[:, -1].float()
            t1, t2 = top2(last)
            ld = last.gather(1, t1[:, None])[:, 0] - last.gather(1, t2[:, None])[:, 0]
            dlas = self._dlas(got, t1, t2)
            te = ld[:, None] - self._patched_ld(got["resid_pre"], t1, t2)
        dla_t, rank = dlas[:, -1], (dlas[:, :-1] > dlas[:, -1:]).sum(1) + 1
        return Scores(tokens.cpu(), t1.cpu(), t2.cpu(), ld.cpu(), dla_t.cpu(), rank.cpu(), te.cpu(),
                      naturalness(logits, tokens).cpu())

    def _clean(self, tokens: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """One forward; capture last-position head results, target output, final scale, and resid_pre at the target."""
        got: dict[str, Tensor] = {}
        layer = self.target.layer

        def keep(key: str, last_only: bool = True):
            def hook(x: Tensor, hook: Any) -> Tensor:
                got[key] = (x[:, -1] if last_only else x).clone()
                return x
            return hook

        hooks = [(attn_result_hook(l), keep(f"result{l}")) for l in range(self.bridge.cfg.n_layers)]
        hooks += [(LN_FINAL_SCALE, keep("scale")), (resid_hook(layer), keep("resid_pre", False))]
        if self.target.kind == "mlp":
            hooks.append((self.target.output_hook, keep("mlp")))
        logits = self.bridge.run_with_hooks(tokens, fwd_hooks=hooks)
        return logits, got

    def _dlas(self, got: dict[str, Tensor], t1: Tensor, t2: Tensor) -> Float[Tensor, "batch n_heads_plus_1"]:
        """DLA of every head, then the target's (last column): out / scale . (W_U[:, t1] - W_U[:, t2])."""
        outs = [got[f"result{l}"] for l in range(self.bridge.cfg.n_layers)]  # each [B, n_heads, d]
        if self.target.kind == "head":
            outs.append(got[f"result{self.target.layer}"][:, self.target.head:self.target.head + 1])
        else:
            outs.append(got["mlp"][:, None])
        direction = logit_direction(self.bridge, t1, t2)
        return torch.einsum("bcd,bd->bc", torch.cat(outs, 1), direction) / got["scale"][:, :1]

    def _patched_ld(self, resid_pre: Tensor, t1: Tensor, t2: Tensor) -> Float[Tensor, "batch resample"]:
        """LD with the target's activation from each resample: B x R rows resumed at the target's layer."""
        batch, n_res = resid_pre.shape[0], self.source.shape[0]
        b_idx = torch.arange(batch, device=self.device).repeat_interleave(n_res)
        r_idx = torch.arange(n_res, device=self.device).repeat(batch)
        out = torch.empty(batch * n_res, device=self.device)
        for start in range(0, batch * n_res, self.chunk_rows):
            sl = slice(start, start + self.chunk_rows)
            final, scale = forward_from(self.bridge, resid_pre[b_idx[sl]], self.target.layer, [self._splice(r_idx[sl])])
            out[sl] = ld_of_final(self.bridge, final, scale, t1[b_idx[sl]], t2[b_idx[sl]])
        return out.reshape(batch, n_res)

    def _splice(self, r_idx: Tensor) -> tuple[str, Any]:
        src = self.source[r_idx]
        head = self.target.head

        def hook(x: Tensor, hook: Any) -> Tensor:
            if self.target.kind == "head":
                x[:, :, head] = src[:, :, head]
            else:
                x[:] = src
            return x

        return (self._act, hook)


def naturalness(logits: Float[Tensor, "batch pos vocab"], tokens: Int[Tensor, "batch pos"]) -> Float[Tensor, " batch"]:
    """Mean log-probability of each token after the first, given its prefix: higher is more natural text."""
    logp = logits[:, :-1].float().log_softmax(-1)
    return logp.gather(2, tokens[:, 1:, None])[..., 0].mean(1)


def verify(bridge: Any, target: Component, tokens: Int[Tensor, " pos"], resamples: Int[Tensor, "r pos"]
           ) -> dict[str, float]:
    """Re-score one example on the slow reference paths: attribution.dla + patching.input_effects_reference."""
    tokens = tokens[None] if tokens.ndim == 1 else tokens
    heads = head_components(bridge.cfg)
    comps = heads if target in heads else [*heads, target]
    d = dla_reference(bridge, tokens, components=comps)
    eff = input_effects_reference(bridge, tokens, resamples, [target], t1=d.t1, t2=d.t2)
    values = d.values[0]
    dla_t = float(values[comps.index(target)])
    rank = int((values[[i for i, c in enumerate(comps) if c != target]] > dla_t).sum()) + 1
    te = eff.per_resample[0, :, 0]
    return {"ld": float(d.ld[0]), "dla": dla_t, "rank": rank, "te_mean": float(te.mean()),
            "te_std": float(te.std(unbiased=False)), "t1": int(d.t1[0]), "t2": int(d.t2[0])}
