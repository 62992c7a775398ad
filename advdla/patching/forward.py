"""The forwards every patching path shares: resume at a layer, stop at the final norm, read LD from two columns.

Context: a patch at layer l cannot change anything before l, so a patched forward starts from the clean run's
cached residual stream at l (:func:`forward_from`: blocks before l become identities for that one call) and
stops at the final norm (:func:`final_state`: the last position's residual and the norm's scale are all LD needs).
:func:`ld_of_final` then applies the unembedding to the two token columns t1, t2 at that position only, instead
of the full vocabulary at every position.

Also here: :class:`Effects` (what every patching function returns), :class:`Run` (a clean forward's cache with its
t1, t2 and LD) and the input checks the fast paths share.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from jaxtyping import Float, Int
from torch import Tensor

from advdla.attribution import check_tokens, hook_names, logit_direction, top2, unembed_bias_diff
from advdla.components import LN_FINAL_IN, LN_FINAL_SCALE, Component
from advdla.errors import AdvdlaError

__all__ = ["Hook", "Effects", "Run", "final_state", "forward_from", "ld_of_final", "run_cached"]

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


# ------------------------------------------------------------------------------------------- checked inputs


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


def _prepared(bridge: Any, tokens: Tensor, resamples: Tensor, components: list[Component]
              ) -> tuple[Int[Tensor, "batch pos"], Int[Tensor, "batch r pos"], set[str]]:
    """Checked tokens, the resamples as [batch, R, pos] on their device, and the hooks the components read."""
    _check_patchable(components)
    tokens = check_tokens(bridge, tokens)
    _check_lengths(tokens, resamples)
    return tokens, _resamples_3d(resamples.to(tokens.device), tokens.shape[0]), hook_names(components)


def _n_kv(bridge: Any) -> int:
    """Key/value heads per layer: fewer than query heads on grouped-query models, else ``n_heads``."""
    return getattr(bridge.cfg, "n_key_value_heads", None) or bridge.cfg.n_heads
