"""DLA decomposes the logit difference exactly, on every model family advdla supports."""

from __future__ import annotations

import pytest
import torch

from advdla.attribution import decomposition_error, dla, top2
from advdla.components import Component, all_components
from advdla.errors import AdvdlaError


@pytest.mark.parametrize("fixture", ["tiny", "tiny_gqa", "tiny_gemma"])
def test_dla_sums_to_logit_difference(fixture, request):
    bridge = request.getfixturevalue(fixture)
    tokens = torch.randint(0, 256, (4, 14), generator=torch.Generator().manual_seed(0))
    result = dla(bridge, tokens)
    assert result.values.shape == (4, len(all_components(bridge.cfg)))
    assert decomposition_error(result) < 1e-4
    # and the LD itself is the model's: top-1 minus top-2 logit at the last position
    logits = bridge(tokens)[:, -1]
    t1, t2 = top2(logits)
    assert torch.equal(result.t1, t1) and torch.equal(result.t2, t2)
    assert torch.allclose(
        result.ld, logits.gather(1, t1[:, None])[:, 0] - logits.gather(1, t2[:, None])[:, 0], atol=1e-5
    )


def test_named_tokens_and_missing_component_break_the_sum(tiny):
    tokens = torch.randint(0, 256, (2, 10), generator=torch.Generator().manual_seed(1))
    t1, t2 = torch.tensor([65, 66]), torch.tensor([67, 68])
    result = dla(tiny, tokens, t1=t1, t2=t2)
    assert decomposition_error(result) < 1e-4
    partial = dla(tiny, tokens, components=[c for c in all_components(tiny.cfg) if c.kind != "embed"], t1=t1, t2=t2)
    assert decomposition_error(partial) > 1e-3  # the check notices a missing term


def test_dla_matches_the_by_hand_formula(tiny):
    tokens = torch.randint(0, 256, (1, 9), generator=torch.Generator().manual_seed(2))
    head = Component("head", 1, 3)
    result = dla(tiny, tokens, components=[head])
    _, cache = tiny.run_with_cache(tokens)
    direction = tiny.W_U[:, result.t1[0]] - tiny.W_U[:, result.t2[0]]
    by_hand = cache["blocks.1.attn.hook_result"][0, -1, 3] / cache["ln_final.hook_scale"][0, -1, 0] @ direction
    assert torch.allclose(result.values[0, 0], by_hand, atol=1e-6)


@pytest.mark.parametrize("fixture", ["tiny", "tiny_gqa", "tiny_gemma"])
def test_component_hook_names_are_the_bridges(fixture, request):
    """Every hook name a component or the per-layer helpers give is a hook the bridge really has."""
    from advdla import components as C

    bridge = request.getfixturevalue(fixture)
    hooks = set(bridge.hook_dict)
    names = {C.LN_FINAL_IN, C.LN_FINAL_SCALE, C.EMBED_HOOK}
    for c in all_components(bridge.cfg):
        if c.kind == "head":
            names |= {c.output_hook, c.z_hook, c.site, *c.input_hooks, c.norm_scale_hook, c.pattern_hook}
        elif c.kind == "mlp":
            names |= {c.output_hook, c.site, *c.input_hooks, c.norm_scale_hook}
    for layer in range(bridge.cfg.n_layers):
        names |= {C.resid_hook(layer, w) for w in C.RESID_POINTS}
        names |= {C.attn_out_hook(layer), C.attn_v_hook(layer), C.mlp_normalized_hook(layer)}
    assert names <= hooks, sorted(names - hooks)
    head, mlp = Component("head", 1, 3), Component("mlp", 0)
    assert (head.output_hook, head.site, mlp.site) == ("blocks.1.attn.hook_result", "blocks.1.attn.hook_z",
                                                       "blocks.0.hook_mlp_out")
    with pytest.raises(AdvdlaError, match="no z_hook"):
        _ = mlp.z_hook
    with pytest.raises(AdvdlaError, match="no hook"):
        _ = Component("bias").output_hook


def test_too_short_and_too_long_prompts_are_refused(tiny):
    with pytest.raises(AdvdlaError, match="at least 2 tokens"):
        dla(tiny, torch.tensor([[5]]))
    with pytest.raises(AdvdlaError, match="context"):
        dla(tiny, torch.zeros(1, tiny.cfg.n_ctx + 1, dtype=torch.long))


def test_dla_sums_on_the_gelu4l_format(tmp_path, advdla_home):
    """The paper's model family (rebuilt from a NeelNanda-format checkpoint at its real shapes, random weights)."""
    from tl_checkpoint import REAL, write_tl_checkpoint  # tests/ is on sys.path (its conftest.py)

    from advdla.models import load_model

    write_tl_checkpoint(tmp_path / "gelu", REAL)
    bridge = load_model(str(tmp_path / "gelu"))
    tokens = torch.randint(0, 256, (3, 16), generator=torch.Generator().manual_seed(3))
    result = dla(bridge, tokens)
    assert {c.kind for c in result.components} == {"embed", "pos_embed", "head", "mlp", "bias"}
    assert decomposition_error(result) < 1e-4


@pytest.mark.slow
def test_dla_sums_on_smollm2():
    """The default model (fetched on first use): 270 heads, 30 MLPs, embed and bias sum to the logit difference."""
    from advdla.models import load_model

    bridge = load_model("smollm2-135m")
    tokens = torch.tensor([bridge.tokenizer("The capital of France is")["input_ids"]])
    result = dla(bridge, tokens)
    assert len(result.components) == 30 * 9 + 30 + 2
    assert decomposition_error(result) < 1e-4
