"""Fast batched scoring of candidate prompts for one target component: its DLA, rank, LD, DE and TE.

Context: the search scores thousands of candidates, so one candidate must cost about one forward. For a
batch of B same-length candidates, :class:`Evaluator` runs

1. one clean forward that captures, at the last position only, every head's and MLP's output (for the
   target's DLA and its rank by |DLA| among all heads and MLPs, :func:`advdla.attribution.magnitude_rank`),
   the final-norm scale, the target layer's residual stream (to resume from), and the full logits (for
   naturalness: the mean log-probability of each token given its prefix);
2. one batched partial forward over B x R rows, resumed at the target's layer (earlier blocks skipped),
   where row (b, r) carries the target's activation from resample r: TE(b, r) = LD_clean - LD_patched.

The direct effect needs no forward at all: DE(b, r) = (out_clean(b) - out_resample(r)) / scale(b) .
(W_U[t1] - W_U[t2]) with the clean final-norm scale, and the resamples' last-position target outputs are
fixed per study. The R resamples are fixed per study, so their activations are computed once at
construction: a search does not re-run its resamples for every candidate (``patching.total_effects`` does,
because it serves arbitrary prompts and resamples). TE is computed on the output path, which equals input
patching for a head (see :mod:`advdla.patching`); the tests check TE and DE against ``patching`` and the
search re-verifies every reported example on the literal slow paths (:func:`verify`).

Precision (:mod:`advdla.precision`): with ``precision="bf16"`` the two forwards run on the model's bf16 screening
copy and every score is read back in fp32 (``.float()`` before any sum over d_model), so thresholds compare fp32
numbers with a bf16 model's rounding in them. The resamples' cached activations come from the same copy, and the
splice casts them to the activation's dtype anyway, so a source cached in one dtype can patch the other.
:func:`verify` always runs on the fp32 model given to it: what is reported never comes from the screen.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from advdla.attribution import check_context, logit_direction, magnitude_rank, top2
from advdla.attribution import dla as dla_reference
from advdla.components import (
    LN_FINAL_IN,
    LN_FINAL_SCALE,
    Component,
    attn_result_hook,
    heads_and_mlps,
    mlp_out_hook,
    mlp_raw_hook,
    post_scale_hook,
    resid_hook,
)
from advdla.models.bridge import post_norms
from advdla.patching import direct_effects_reference, forward_from, input_effects_reference, ld_of_final
from advdla.precision import effective_precision, screening_model

__all__ = ["Scores", "Evaluator", "verify", "rank_pool"]


@dataclass
class Scores:
    """One batch of candidates scored for the target. Shares are relative to LD (clamped away from 0)."""

    tokens: Int[Tensor, "batch pos"]
    t1: Int[Tensor, " batch"]
    t2: Int[Tensor, " batch"]
    ld: Float[Tensor, " batch"]
    dla: Float[Tensor, " batch"]
    rank: Int[Tensor, " batch"]  # 1 = the largest |DLA| among all heads and MLPs (attribution.magnitude_rank)
    te: Float[Tensor, "batch resample"]
    naturalness: Float[Tensor, " batch"]  # mean log p(token | prefix) over positions 1..pos-1
    de: Float[Tensor, "batch resample"] | None = None  # direct path only, clean final-norm scale

    @property
    def te_mean(self) -> Float[Tensor, " batch"]:
        return self.te.mean(1)

    @property
    def te_std(self) -> Float[Tensor, " batch"]:
        return self.te.std(1, unbiased=False)

    @property
    def de_mean(self) -> Float[Tensor, " batch"]:
        return self.de.mean(1)

    @property
    def de_std(self) -> Float[Tensor, " batch"]:
        return self.de.std(1, unbiased=False)

    @property
    def de_share(self) -> Float[Tensor, " batch"]:
        """mean DE / LD (signed, like the DLA share): how much of LD the target's direct path carries."""
        return self.de_mean / _safe(self.ld)

    @property
    def dla_share(self) -> Float[Tensor, " batch"]:
        return self.dla / _safe(self.ld)

    @property
    def te_share(self) -> Float[Tensor, " batch"]:
        """|mean TE| / LD: how much of the logit difference the target causes."""
        return self.te_mean.abs() / _safe(self.ld)


def _safe(ld: Tensor) -> Tensor:
    return ld.abs().clamp(min=1e-3)


def rank_pool(cfg: Any) -> list[Component]:
    """The components the target is ranked among: every head and MLP, in residual order."""
    return heads_and_mlps(cfg)


class Evaluator:
    """Scores batches of candidates for ``target`` against a fixed set of resamples [R, pos].

    ``precision``: ``fp32`` (the default here) scores on ``bridge`` itself; ``bf16`` on its bf16 screening copy
    (:func:`advdla.precision.screening_model`), for screening only.
    """

    def __init__(self, bridge: Any, target: Component, resamples: Int[Tensor, "r pos"], *, chunk_rows: int = 256,
                 precision: str = "fp32"):
        check_context(bridge, resamples.shape[1], f"search resamples of {resamples.shape[1]} tokens")
        self.precision = effective_precision(bridge, precision)  # fp32 on a small model, whatever was asked
        self.bridge, self.target, self.chunk_rows = screening_model(bridge, precision), target, chunk_rows
        self.device = bridge.W_U.device
        self.resamples = resamples.to(self.device)
        self.pool = rank_pool(bridge.cfg)
        self.index = self.pool.index(target)
        self._act = target.site  # what TE replaces: a head's hook_z slice, an MLP's output
        self.post = post_norms(bridge)  # sandwich norms (Gemma): outputs reach the residual through them
        out_name = self._raw_hook()
        with torch.inference_mode():
            _, cache = self.bridge.run_with_cache(self.resamples, names_filter=lambda n: n in (self._act, out_name))
        self.source = cache[self._act].clone()  # [R, pos, n_heads, d_head] or [R, pos, d_model]
        out = cache[out_name][:, -1]
        # [R, d_model], for DE: the raw output (before a post-norm, whose scale DE takes from the clean run)
        self.source_out = (out[:, target.head] if target.kind == "head" else out).float()

    def _raw_hook(self) -> str:
        """Where the target's output is read before any post-norm: its output hook, or on sandwich-norm models an
        MLP's output before its norm."""
        return mlp_raw_hook(self.target.layer) if self.target.kind == "mlp" and self.post else self.target.output_hook

    @property
    def seq_len(self) -> int:
        return self.resamples.shape[1]

    def __call__(self, tokens: Int[Tensor, "batch pos"]) -> Scores:
        tokens = tokens.to(self.device)
        with torch.inference_mode():
            logits, got = self._clean(tokens)
            t1, t2 = top2(logits[:, -1].float())
            # LD from the final residual, as the patched rows' LD is: in bf16 the two then share their rounding
            # up to the target's layer, and TE = LD - LD_patched is not swamped by the unembedding's
            ld = ld_of_final(self.bridge, got["final"].float(), got["scale"][:, 0].float(), t1, t2)
            outs = self._outputs(got).float()
            direction = logit_direction(self.bridge, t1, t2).float()
            scale = got["scale"][:, :1].float()
            dlas = torch.einsum("bcd,bd->bc", outs, direction) / scale
            delta = self._through_post(got, self._target_raw(got)[:, None] - self.source_out[None])  # [B, R, d]
            de = torch.einsum("brd,bd->br", delta, direction) / scale
            te = ld[:, None] - self._patched_ld(got["resid_pre"], t1, t2)
        dla_t, rank = dlas[:, self.index], magnitude_rank(dlas, self.index)
        return Scores(tokens.cpu(), t1.cpu(), t2.cpu(), ld.cpu(), dla_t.cpu(), rank.cpu(), te.cpu(),
                      naturalness(logits, tokens).cpu(), de.cpu())

    def _clean(self, tokens: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """One forward; capture last-position head and MLP outputs, the final scale, and resid_pre at the target."""
        got: dict[str, Tensor] = {}

        def keep(key: str, last_only: bool = True):
            def hook(x: Tensor, hook: Any) -> Tensor:
                got[key] = (x[:, -1] if last_only else x).clone()
                return x
            return hook

        hooks = [(attn_result_hook(l), keep(f"result{l}")) for l in range(self.bridge.cfg.n_layers)]
        hooks += [(mlp_out_hook(l), keep(f"mlp{l}")) for l in range(self.bridge.cfg.n_layers)]
        hooks += [(LN_FINAL_SCALE, keep("scale")), (LN_FINAL_IN, keep("final")),
                  (resid_hook(self.target.layer), keep("resid_pre", False))]
        if self.post is not None:  # post-norm scales at the last position, and the target's raw output
            hooks += [(post_scale_hook(l, k), keep(f"s_{k}{l}")) for l in range(self.bridge.cfg.n_layers)
                      for k in ("head", "mlp")]
            if self.target.kind == "mlp":
                hooks.append((mlp_raw_hook(self.target.layer), keep("target_raw")))
        logits = self.bridge.run_with_hooks(tokens, fwd_hooks=hooks)
        return logits, got

    def _outputs(self, got: dict[str, Tensor]) -> Float[Tensor, "batch comp d_model"]:
        """Last-position outputs of every head and MLP as they reach the residual, in :func:`rank_pool` order
        (``hook_mlp_out`` is already after the MLP's post-norm; heads go through the attention post-norm here)."""
        outs = []
        for l in range(self.bridge.cfg.n_layers):
            heads = got[f"result{l}"].float()  # [B, n_heads, d]
            if self.post is not None:
                heads = heads * self.post.attn[l] / got[f"s_head{l}"].float()[:, None]
            outs += [heads, got[f"mlp{l}"][:, None].float()]  # [B, n_heads, d], [B, 1, d]
        return torch.cat(outs, 1)

    def _target_raw(self, got: dict[str, Tensor]) -> Float[Tensor, "batch d_model"]:
        """The target's last-position output before any post-norm (what :attr:`source_out` holds per resample)."""
        if self.target.kind == "head":
            return got[f"result{self.target.layer}"][:, self.target.head].float()
        return got["target_raw" if self.post is not None else f"mlp{self.target.layer}"].float()

    def _through_post(self, got: dict[str, Tensor], raw: Float[Tensor, "batch r d_model"]
                      ) -> Float[Tensor, "batch r d_model"]:
        """A raw change of the target's output as it reaches the residual: through its post-norm with the clean
        run's scale (DE's frozen scale); unchanged on a model without post-norms."""
        if self.post is None:
            return raw
        layer, kind = self.target.layer, self.target.kind
        weight = self.post.attn[layer] if kind == "head" else self.post.mlp[layer]
        return raw * weight / got[f"s_{kind}{layer}"].float()[:, None]

    def _patched_ld(self, resid_pre: Tensor, t1: Tensor, t2: Tensor) -> Float[Tensor, "batch resample"]:
        """LD with the target's activation from each resample: B x R rows resumed at the target's layer."""
        batch, n_res = resid_pre.shape[0], self.source.shape[0]
        b_idx = torch.arange(batch, device=self.device).repeat_interleave(n_res)
        r_idx = torch.arange(n_res, device=self.device).repeat(batch)
        out = torch.empty(batch * n_res, device=self.device)
        for start in range(0, batch * n_res, self.chunk_rows):
            sl = slice(start, start + self.chunk_rows)
            final, scale = forward_from(self.bridge, resid_pre[b_idx[sl]], self.target.layer, [self._splice(r_idx[sl])])
            out[sl] = ld_of_final(self.bridge, final.float(), scale.float(), t1[b_idx[sl]], t2[b_idx[sl]])
        return out.reshape(batch, n_res)

    def _splice(self, r_idx: Tensor) -> tuple[str, Any]:
        src = self.source[r_idx]
        head = self.target.head

        def hook(x: Tensor, hook: Any) -> Tensor:
            if self.target.kind == "head":
                x[:, :, head] = src[:, :, head].to(x.dtype)
            else:
                x[:] = src.to(x.dtype)
            return x

        return (self._act, hook)


def naturalness(logits: Float[Tensor, "batch pos vocab"], tokens: Int[Tensor, "batch pos"]) -> Float[Tensor, " batch"]:
    """Mean log-probability of each token after the first, given its prefix: higher is more natural text."""
    logp = logits[:, :-1].float().log_softmax(-1)
    return logp.gather(2, tokens[:, 1:, None])[..., 0].mean(1)


def verify(bridge: Any, target: Component, tokens: Int[Tensor, " pos"], resamples: Int[Tensor, "r pos"]
           ) -> dict[str, float]:
    """Re-score one example on the slow reference paths: attribution.dla over every head and MLP (rank by |DLA|),
    patching.input_effects_reference (TE) and patching.direct_effects_reference (DE)."""
    tokens = tokens[None] if tokens.ndim == 1 else tokens
    pool = rank_pool(bridge.cfg)
    d = dla_reference(bridge, tokens, components=pool)
    eff = input_effects_reference(bridge, tokens, resamples, [target], t1=d.t1, t2=d.t2)
    with warnings.catch_warnings():  # freezing the final norm's scale is the point of DE; the bridge notices
        warnings.filterwarnings("ignore", message="A forward hook edited hook_scale/hook_normalized")
        direct = direct_effects_reference(bridge, tokens, resamples, [target], t1=d.t1, t2=d.t2)
    index = pool.index(target)
    te, de = eff.per_resample[0, :, 0], direct.per_resample[0, :, 0]
    return {"ld": float(d.ld[0]), "dla": float(d.values[0, index]), "rank": int(magnitude_rank(d.values[0], index)),
            "te_mean": float(te.mean()), "te_std": float(te.std(unbiased=False)), "de_mean": float(de.mean()),
            "de_std": float(de.std(unbiased=False)), "t1": int(d.t1[0]), "t2": int(d.t2[0])}
