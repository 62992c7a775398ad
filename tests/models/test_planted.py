"""The planted-erasure model keeps its promises, checked through the bridge (compatibility mode) on corpus text.

Small helpers here stand in for advdla's attribution and patching modules on purpose: this file checks the
model, so it must not depend on the code the model is meant to test.
"""

from __future__ import annotations

import pytest
import torch

from advdla.components import parse_component
from advdla.corpus import TokenWindows, load_corpus
from advdla.models import load_model
from advdla.models.bridge import weights_fingerprint
from advdla.models.planted import PLANTED, build_planted_erasure

N_PROMPTS, N_TOKENS = 16, 24


@pytest.fixture(scope="module")
def bridge():
    return load_model("planted-erasure")


@pytest.fixture(scope="module")
def texts(bridge):
    """Prompts and, for each, an unrelated same-length resample (from other documents)."""
    windows = TokenWindows(load_corpus(), bridge.tokenizer)
    prompts, docs = windows.sample(N_TOKENS, N_PROMPTS, seed=0)
    resamples, _ = windows.sample(N_TOKENS, N_PROMPTS, seed=1, exclude=set(docs))
    return prompts, resamples


@pytest.fixture(scope="module")
def clean(bridge, texts):
    logits, cache = bridge.run_with_cache(texts[0])
    t1, t2 = logits[:, -1].topk(2).indices.unbind(-1)
    return {"logits": logits, "cache": cache, "t1": t1, "t2": t2}


def _head(name, bridge):
    comp = parse_component(name, bridge.cfg)
    return comp.layer, comp.head


def _result(cache, name, bridge):
    layer, head = _head(name, bridge)
    return cache[f"blocks.{layer}.attn.hook_result"][:, :, head]  # [batch, pos, d_model]


def _ld(logits, t1, t2):
    last = logits[:, -1]
    return last.gather(1, t1[:, None])[:, 0] - last.gather(1, t2[:, None])[:, 0]


def _dla(out_last, clean, bridge):
    """[batch, ..., d_model] outputs at the last position -> DLA on the clean top-2 logit difference."""
    direction = (bridge.W_U[:, clean["t1"]] - bridge.W_U[:, clean["t2"]]).T  # [batch, d_model]
    scale = clean["cache"]["ln_final.hook_scale"][:, -1]  # [batch, 1]
    extra = out_last.dim() - 2
    return (out_last / scale.view(-1, *[1] * (extra + 1)) * direction.view(-1, *[1] * extra, direction.shape[-1])).sum(
        -1
    )


def _pr(a, b):
    return (a * b).sum(-1) / (b * b).sum(-1)


def _all_head_dlas(clean, bridge):
    results = torch.stack(
        [clean["cache"][f"blocks.{l}.attn.hook_result"][:, -1] for l in range(bridge.cfg.n_layers)], 1
    )
    return _dla(results, clean, bridge).flatten(1)  # [batch, layer * n_heads + head]


def test_bridge_keeps_the_hf_function_and_top2_are_the_planted_tokens(bridge, texts, clean):
    hf_model, _ = build_planted_erasure(seed=0)
    with torch.no_grad():
        hf_logits = hf_model(texts[0]).logits
    # compatibility mode centres the unembedding: logits move by a constant per position, log-probs do not.
    torch.testing.assert_close(clean["logits"].log_softmax(-1), hf_logits.log_softmax(-1), atol=1e-4, rtol=0)
    top2 = {PLANTED.token_a, PLANTED.token_b}
    assert all({int(a), int(b)} == top2 for a, b in zip(clean["t1"], clean["t2"]))


def test_writer_dla_is_a_large_share_of_ld_and_ranks_first(bridge, clean):
    ld = _ld(clean["logits"], clean["t1"], clean["t2"])
    final = clean["cache"][f"blocks.{bridge.cfg.n_layers - 1}.hook_resid_post"][:, -1]
    torch.testing.assert_close(_dla(final, clean, bridge), ld, atol=1e-3, rtol=1e-3)  # the helper is right
    dlas = _all_head_dlas(clean, bridge)
    layer, head = _head(PLANTED.writer, bridge)
    writer = dlas[:, layer * bridge.cfg.n_heads + head]
    assert (writer / ld).min() > 1.0
    assert (dlas.argmax(1) == layer * bridge.cfg.n_heads + head).all()


def test_eraser_projects_to_minus_one_onto_the_writer(bridge, clean):
    pr = _pr(_result(clean["cache"], PLANTED.eraser, bridge), _result(clean["cache"], PLANTED.writer, bridge))
    assert -1.2 <= pr.median().item() <= -0.8
    assert (pr - pr.median()).abs().max() < 0.05  # at every position, not just typically


def test_v_composition_patching_removes_the_erasure(bridge, texts, clean):
    writer_out = _result(clean["cache"], PLANTED.writer, bridge)
    layer, head = _head(PLANTED.eraser, bridge)

    def drop_writer(v_input, hook):
        v_input[:, :, head] = v_input[:, :, head] - writer_out
        return v_input

    seen = {}

    def keep_eraser(result, hook):
        seen["eraser"] = result[:, :, head].clone()  # returns None: the activation is left as it is

    bridge.run_with_hooks(
        texts[0],
        fwd_hooks=[(f"blocks.{layer}.hook_v_input", drop_writer), (f"blocks.{layer}.attn.hook_result", keep_eraser)],
    )
    pr = _pr(seen["eraser"], writer_out)
    assert -0.2 <= pr.median().item() <= 0.2


def _te(name, bridge, texts, clean):
    """LD_clean - LD with the head's q, k, v inputs replaced by the resample's (that head only)."""
    layer, head = _head(name, bridge)
    kinds = ("q", "k", "v")
    _, res_cache = bridge.run_with_cache(
        texts[1], names_filter=lambda n: n in {f"blocks.{layer}.hook_{k}_input" for k in kinds}
    )

    def patch(act, hook):
        act[:, :, head] = res_cache[hook.name][:, :, head]
        return act

    logits = bridge.run_with_hooks(texts[0], fwd_hooks=[(f"blocks.{layer}.hook_{k}_input", patch) for k in kinds])
    return _ld(clean["logits"], clean["t1"], clean["t2"]) - _ld(logits, clean["t1"], clean["t2"])


def test_writer_has_high_dla_but_almost_no_total_effect(bridge, texts, clean):
    dla = _dla(_result(clean["cache"], PLANTED.writer, bridge)[:, -1], clean, bridge)
    te = _te(PLANTED.writer, bridge, texts, clean)
    assert te.abs().mean() < 0.1 * dla.abs().mean()


def test_honest_head_is_causally_effective(bridge, texts, clean):
    dla = _dla(_result(clean["cache"], PLANTED.honest, bridge)[:, -1], clean, bridge)
    te = _te(PLANTED.honest, bridge, texts, clean)
    assert te.mean() > 0.5 * dla.mean()


def test_erasure_aware_dla_is_fooled_less_than_dla(bridge, clean):
    final = clean["cache"][f"blocks.{bridge.cfg.n_layers - 1}.hook_resid_post"][:, -1]
    scores = {}
    for name in (PLANTED.writer, PLANTED.honest):
        out = _result(clean["cache"], name, bridge)[:, -1]
        aware = _pr(final, out)[:, None] * out  # the part of the head's output the final residual still holds
        scores[name] = (_dla(out, clean, bridge), _dla(aware, clean, bridge))
    writer_dla, writer_aware = scores[PLANTED.writer]
    honest_dla, honest_aware = scores[PLANTED.honest]
    assert writer_aware.abs().mean() < 0.1 * writer_dla.abs().mean()
    assert honest_aware.mean() > 0.8 * honest_dla.mean()


def test_fingerprint_is_deterministic_and_seeded(bridge):
    """In one process the builder is deterministic and seeded; across CPUs its last bits may differ, so what loads
    under the registry name is the shipped file, which the builder reproduces within REBUILD_TOLERANCE."""
    from advdla.models.shipped import REBUILD_TOLERANCE, load_generated, max_difference

    built = [build_planted_erasure(seed=0)[0] for _ in range(2)]
    assert weights_fingerprint(built[0].state_dict()) == weights_fingerprint(built[1].state_dict())
    other_seed = build_planted_erasure(seed=1)[0]
    assert weights_fingerprint(other_seed.state_dict()) != weights_fingerprint(built[0].state_dict())
    shipped = load_generated("planted-erasure")[0]
    assert weights_fingerprint(shipped.state_dict()) == bridge.advdla_card.weights_fingerprint
    assert max_difference(built[0], shipped) <= REBUILD_TOLERANCE


def test_variants_keep_the_promises_and_the_decoy_never_reads_the_writer():
    """A variant (word-level, 32 positions, writer on its own feature, a decoy): top-2 are its two tokens; the decoy's
    PR onto the writer is about -0.3 at every position and stays so with the writer removed from its value input."""
    from advdla.models import load_planted
    from advdla.models.planted import PLANTED_WORDS, PLANTED_WORDS_CONFIG

    bridge = load_planted(PLANTED_WORDS_CONFIG)
    windows = TokenWindows(load_corpus(), bridge.tokenizer)
    prompts, _ = windows.sample(24, 8, seed=0)
    logits, cache = bridge.run_with_cache(prompts)
    assert all({int(t) for t in row} == {PLANTED_WORDS.token_a, PLANTED_WORDS.token_b}
               for row in logits[:, -1].topk(2).indices)
    writer = _result(cache, PLANTED_WORDS.writer, bridge)
    pr = _pr(_result(cache, PLANTED_WORDS.decoy, bridge), writer)
    assert (pr + 0.3).abs().max() < 0.02
    layer, head = _head(PLANTED_WORDS.decoy, bridge)

    def drop_writer(v_input, hook):
        v_input[:, :, head] = v_input[:, :, head] - writer
        return v_input

    seen = {}

    def keep(result, hook):
        seen["decoy"] = result[:, :, head].clone()

    bridge.run_with_hooks(prompts, fwd_hooks=[(f"blocks.{layer}.hook_v_input", drop_writer),
                                              (f"blocks.{layer}.attn.hook_result", keep)])
    assert (_pr(seen["decoy"], writer) + 0.3).abs().max() < 0.02
    from advdla.models.planted import build_planted
    from advdla.models.shipped import REBUILD_TOLERANCE, load_generated, max_difference

    built = build_planted(PLANTED_WORDS_CONFIG)[0]
    assert weights_fingerprint(built.state_dict()) == bridge.advdla_card.weights_fingerprint  # same process
    assert max_difference(built, load_generated("planted-words")[0]) <= REBUILD_TOLERANCE


def test_baseline_head_writes_the_same_on_every_text_and_the_erasure_still_holds():
    """planted-baseline: L2H1's DLA is about 2 * NU * E = 3 on every prompt and on every resample (so DLA minus
    its resample mean, and its total effect, are about 0), while the writer/eraser pair still cancels."""
    from advdla.models.planted import PLANTED_BASELINE as P

    bridge = load_model("planted-baseline")
    windows = TokenWindows(load_corpus(), bridge.tokenizer)
    prompts, docs = windows.sample(N_TOKENS, N_PROMPTS, seed=0)
    resamples, _ = windows.sample(N_TOKENS, N_PROMPTS, seed=1, exclude=set(docs))
    logits, cache = bridge.run_with_cache(prompts)
    t1, t2 = logits[:, -1].topk(2).indices.unbind(-1)
    clean = {"logits": logits, "cache": cache, "t1": t1, "t2": t2}
    assert {int(t) for t in torch.cat([t1, t2])} == {P.token_a, P.token_b}
    sign = torch.where(t1 == P.token_a, 1.0, -1.0)  # DLA on t1 - t2 is the a - b one, signed
    dla = _dla(_result(cache, P.baseline, bridge)[:, -1], clean, bridge) * sign
    assert ((dla - 3.0).abs() < 0.15).all()
    _, res_cache = bridge.run_with_cache(resamples)
    res_dla = _dla(_result(res_cache, P.baseline, bridge)[:, -1], clean, bridge) * sign  # read through clean's scale
    assert (dla - res_dla.mean()).abs().max() < 0.05 * 3.0
    assert _te(P.baseline, bridge, (prompts, resamples), clean).abs().max() < 0.05 * 3.0
    writer = _dla(_result(cache, P.writer, bridge)[:, -1], clean, bridge)
    assert _te(P.writer, bridge, (prompts, resamples), clean).abs().mean() < 0.1 * writer.abs().mean()
