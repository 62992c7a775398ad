"""Shared machinery of the gradient methods (atp, atp-star, atp-graddrop, ig): sites, cached activations, gradients.

Context: a panel component's activation "site" is where a method reads and perturbs it: a head's ``hook_z``
slice (its output before W_O, [batch, pos, d_head]) or an MLP's ``hook_mlp_out``. Patching a head's whole
input makes it emit exactly its resample ``z``, so the difference ``z_res - z_clean`` at the site is exact;
gradient methods only linearise what happens *downstream* of it.

Why not backward hooks: TransformerBridge's backward hooks can come back silently empty (TransformerLens
#1680). Instead each forward hook adds a zero leaf tensor that requires grad (``act + delta``; IG's leaf is its
path parameter alpha), and :func:`torch.autograd.grad` differentiates LD with respect to those leaves.
The leaves stay inside the graph, so gradients include every downstream path. The bridge's parameters do not
require grad; the leaves do, under :func:`torch.enable_grad` (callers elsewhere run in inference mode).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from advdla.attribution import check_tokens
from advdla.components import Component
from advdla.errors import AdvdlaError
from advdla.models.bridge import lean
from advdla.patching import final_state, ld_of_final

Hook = tuple[str, Callable]


def site(c: Component) -> tuple[str, int | None]:
    """The hook a component's activation is read at (``Component.site``), and its head index there (None: MLP)."""
    if c.kind not in ("head", "mlp"):
        raise AdvdlaError(f"gradient and patching methods apply to heads and MLPs, not {c.name}")
    return c.site, (c.head if c.kind == "head" else None)


def site_names(components: list[Component]) -> list[str]:
    return sorted({site(c)[0] for c in components})


def cache_sites(bridge: Any, tokens: Int[Tensor, "n pos"], names: list[str]) -> dict[str, Tensor]:
    """Activations at ``names`` for a plain forward (no graph; usable later in a graph, unlike inference tensors)."""
    with torch.no_grad(), lean(bridge):
        _, cache = bridge.run_with_cache(check_tokens(bridge, tokens), names_filter=lambda n: n in names)
    return {n: cache[n].detach().clone() for n in names}


def gradients(bridge: Any, tokens: Int[Tensor, "n pos"], t1: Tensor, t2: Tensor, names: list[str], *,
              hooks: list[Hook] = (), acts: dict[str, Tensor] | None = None) -> dict[str, Tensor]:
    """d LD / d activation at each site in ``names`` at the model's own activations (LD summed over rows; rows are
    independent). ``hooks``: extra forward hooks, run after the sites' own (GradDrop's detaching ones);
    ``acts``: filled with the sites' clean activations when given.
    """
    leaves: dict[str, Tensor] = {}

    def make(name: str) -> Callable:
        def hook(act: Tensor, hook: Any) -> Tensor:
            if acts is not None:
                acts[name] = act.detach().clone()
            leaves[name] = torch.zeros_like(act).requires_grad_(True)
            return act + leaves[name]

        return hook

    # clones: tensors made under inference mode (t1/t2 from a DLA run, say) cannot be saved for backward
    tokens, t1, t2 = check_tokens(bridge, tokens).clone(), t1.clone(), t2.clone()
    with torch.enable_grad(), lean(bridge):
        resid, scale = final_state(bridge, lambda: bridge(tokens), [*[(n, make(n)) for n in names], *hooks])
        ld = ld_of_final(bridge, resid, scale, t1.to(resid.device), t2.to(resid.device))
        grads = torch.autograd.grad(ld.sum(), [leaves[n] for n in names], allow_unused=True)
    return {n: (g if g is not None else torch.zeros_like(leaves[n])).detach() for n, g in zip(names, grads)}


def dot_per_component(grads: dict[str, Tensor], delta: dict[str, Tensor], components: list[Component]
                      ) -> Float[Tensor, "n comp"]:
    """sum over positions and features of grad * delta, per component: AtP's first-order change of LD."""
    cols = []
    for c in components:
        name, head = site(c)
        g, d = grads[name], delta[name]
        cols.append((g[:, :, head] * d[:, :, head]).sum((1, 2)) if head is not None else (g * d).sum((1, 2)))
    return torch.stack(cols, 1)


def resample_acts(bridge: Any, resamples: Int[Tensor, "batch r pos"], names: list[str]) -> dict[str, Tensor]:
    """Site activations of every resample, [batch * r, ...] (row b * R + r)."""
    b, r, pos = resamples.shape
    return cache_sites(bridge, resamples.reshape(b * r, pos), names)
