"""Fast patching paths equal their slow references (one plain hooked forward per patch) within 1e-5."""

from __future__ import annotations

import pytest
import torch

from advdla.components import Component, all_components
from advdla.errors import AdvdlaError
from advdla.patching import (
    direct_effects,
    direct_effects_reference,
    input_effects_reference,
    output_effects,
    output_effects_reference,
    total_effects,
    truth_effects,
    zero_effects,
    zero_effects_reference,
)

TOL = 1e-5


def _data(seed: int, batch: int = 2, r: int = 2, pos: int = 10):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (batch, pos), generator=g), torch.randint(0, 256, (batch, r, pos), generator=g)


def _patchable(bridge):
    return [c for c in all_components(bridge.cfg) if c.kind in ("head", "mlp")]


@pytest.mark.parametrize("fixture", ["tiny", "tiny_gqa", "tiny_gemma"])
def test_output_patching_matches_reference(fixture, request):
    bridge = request.getfixturevalue(fixture)
    tokens, res = _data(0)
    comps = _patchable(bridge)
    fast = output_effects(bridge, tokens, res, comps, batch_size=5)  # odd chunking on purpose
    slow = output_effects_reference(bridge, tokens, res, comps)
    assert fast.per_resample.shape == (2, 2, len(comps))
    assert fast.per_resample.abs().max() > 1e-3  # the patches do something
    assert torch.allclose(fast.per_resample, slow.per_resample, atol=TOL)


@pytest.mark.parametrize("fixture", ["tiny", "tiny_gqa", "tiny_gemma"])
def test_total_effect_equals_literal_input_patching(fixture, request):
    """TE via the output path == replacing the head's own q/k/v inputs (on GQA: that one head only)."""
    bridge = request.getfixturevalue(fixture)
    tokens, res = _data(1)
    comps = _patchable(bridge)
    fast = total_effects(bridge, tokens, res, comps, batch_size=16)
    slow = input_effects_reference(bridge, tokens, res, comps)
    assert torch.allclose(fast.per_resample, slow.per_resample, atol=TOL)


def test_gqa_input_patch_leaves_kv_siblings_alone(tiny_gqa):
    """Patching the whole k/v group would move heads 0-2 together; the single-head TE must differ per head."""
    tokens, res = _data(2, batch=1, r=1)
    heads = [Component("head", 0, h) for h in range(3)]
    te = input_effects_reference(tiny_gqa, tokens, res, heads).per_resample[0, 0]
    assert len({round(float(v), 6) for v in te}) == 3


@pytest.mark.parametrize("fixture", ["tiny", "tiny_gqa", "tiny_gemma"])
def test_direct_effects_match_reference(fixture, request):
    bridge = request.getfixturevalue(fixture)
    tokens, res = _data(3)
    comps = _patchable(bridge)
    fast = direct_effects(bridge, tokens, res, comps)
    slow = direct_effects_reference(bridge, tokens, res, comps)
    assert torch.allclose(fast.per_resample, slow.per_resample, atol=TOL)


@pytest.mark.parametrize("fixture", ["tiny", "tiny_gqa", "tiny_gemma"])
def test_truth_effects_are_the_three_functions_bit_for_bit(fixture, request):
    """Sharing the clean and resample runs changes no bit (a suite's fingerprint depends on every one)."""
    bridge = request.getfixturevalue(fixture)
    tokens, res = _data(5)
    comps = _patchable(bridge)
    together = truth_effects(bridge, tokens, res, comps, batch_size=7)
    apart = (total_effects(bridge, tokens, res, comps, batch_size=7), direct_effects(bridge, tokens, res, comps),
             zero_effects(bridge, tokens, comps, batch_size=7))
    for got, want in zip(together, apart, strict=True):
        assert torch.equal(got.per_resample, want.per_resample)
        assert torch.equal(got.ld_clean, want.ld_clean) and torch.equal(got.t1, want.t1)


@pytest.mark.parametrize("fixture", ["tiny", "tiny_gqa", "tiny_gemma"])
def test_zero_ablation_matches_reference(fixture, request):
    """te_zero (the output of each head and MLP zeroed at every position) on the fast path == one forward per patch."""
    bridge = request.getfixturevalue(fixture)
    tokens, _ = _data(4)
    comps = _patchable(bridge)
    fast = zero_effects(bridge, tokens, comps, batch_size=7)
    slow = zero_effects_reference(bridge, tokens, comps)
    assert fast.per_resample.shape == (2, 1, len(comps)) and fast.per_resample.abs().max() > 1e-3
    assert torch.allclose(fast.per_resample, slow.per_resample, atol=TOL)


def test_patching_with_the_prompt_itself_changes_nothing(tiny):
    tokens, _ = _data(4, batch=1)
    effects = output_effects(tiny, tokens, tokens, _patchable(tiny))
    assert effects.per_resample.abs().max() < TOL


def test_shared_resamples_broadcast(tiny):
    tokens, res = _data(5, batch=2, r=3)
    shared = res[0]
    a = output_effects(tiny, tokens, shared, _patchable(tiny))
    b = output_effects(tiny, tokens, shared[None].expand(2, -1, -1), _patchable(tiny))
    assert torch.allclose(a.per_resample, b.per_resample, atol=TOL)
    assert torch.allclose(a.std, a.per_resample.std(1, unbiased=False))


def test_bad_inputs(tiny):
    tokens, res = _data(6)
    with pytest.raises(AdvdlaError, match="same|exactly"):
        output_effects(tiny, tokens, res[:, :, :-1], _patchable(tiny))
    with pytest.raises(AdvdlaError, match="heads and MLPs"):
        output_effects(tiny, tokens, res, [Component("embed")])
