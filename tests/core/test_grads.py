"""The gradient machinery's fast path (lean forward cut at the final norm) equals plain autograd through the logits."""

from __future__ import annotations

import torch

from advdla.attribution import top2
from advdla.methods._grads import gradients


def _reference_gradients(bridge, tokens, t1, t2, names):
    """The obvious way: a full forward (all hooks on), LD from the logits, autograd to zero leaves at the sites."""
    leaves = {}

    def make(name):
        def hook(act, hook):
            leaves[name] = torch.zeros_like(act).requires_grad_(True)
            return act + leaves[name]
        return hook

    with torch.enable_grad():
        logits = bridge.run_with_hooks(tokens, fwd_hooks=[(n, make(n)) for n in names])
        ld = logits[torch.arange(len(t1)), -1, t1] - logits[torch.arange(len(t1)), -1, t2]
        grads = torch.autograd.grad(ld.sum(), [leaves[n] for n in names])
    return dict(zip(names, grads))


def test_fast_gradients_match_full_autograd(tiny_gqa):
    tokens = torch.randint(0, 256, (3, 11), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        t1, t2 = top2(tiny_gqa(tokens)[:, -1])
    names = ["blocks.0.attn.hook_z", "blocks.1.attn.hook_z", "blocks.0.hook_mlp_out"]
    acts: dict[str, torch.Tensor] = {}
    fast = gradients(tiny_gqa, tokens, t1, t2, names, acts=acts)
    slow = _reference_gradients(tiny_gqa, tokens, t1, t2, names)
    for n in names:
        assert fast[n].abs().max() > 0
        assert torch.allclose(fast[n], slow[n], atol=1e-5), n
    _, cache = tiny_gqa.run_with_cache(tokens, names_filter=lambda n: n in names)
    assert all(torch.allclose(acts[n], cache[n], atol=1e-6) for n in names)
