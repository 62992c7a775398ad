"""Methods v2: IG along per-component paths, AtP* with verification, DLA-relative, centred erasure-aware DLA, and the
TransformerLens adapters, each against an exact reference on the planted-erasure model (a few on smollm2-135m).

Planted-erasure: L0H1 writes, L1H2 erases it, L2H0 is honest (advdla/models/planted.py).
"""

from __future__ import annotations

import pytest
import torch

from advdla.attribution import magnitude_rank
from advdla.components import LN_FINAL_SCALE, Component, all_components, parse_component
from advdla.methods import ExampleBatch, get_method
from advdla.methods._atp import activation_deltas
from advdla.methods._atp_star import _drop_layer, graddrop
from advdla.methods._grads import dot_per_component, gradients
from advdla.methods._ig import ig_effects, ig_effects_reference, quadrature
from advdla.models.planted import PLANTED
from advdla.patching import total_effects
from advdla.scoring import run_methods, to_batch


def _mixed_panels(bridge, n: int) -> list[list[Component]]:
    """Every head and MLP, in a different order for every other example (panel order must be followed)."""
    panel = [c for c in all_components(bridge.cfg) if c.kind in ("head", "mlp")]
    return [panel if i % 2 == 0 else panel[::-1] for i in range(n)]


@pytest.fixture(scope="module")
def batch(planted, planted_suite):
    """Two adversarial and one natural example, every head and MLP in the panel, the method resamples attached."""
    rows = [planted_suite.examples[i] for i in (0, 1, 8)]
    b = to_batch(rows, planted.cfg)
    b.panels = _mixed_panels(planted, len(b))
    return b


@pytest.fixture(scope="module")
def exact(planted, batch):
    """TE of every panel component over the batch's own (method) resamples: what IG must converge to."""
    return torch.stack([
        total_effects(planted, batch.tokens[i:i + 1], batch.resamples[i:i + 1], batch.panels[i],
                      t1=batch.t1[i:i + 1], t2=batch.t2[i:i + 1]).mean[0] for i in range(len(batch))
    ])


@pytest.fixture(scope="module")
def ld(planted, batch):
    from advdla.attribution import dla

    return dla(planted, batch.tokens, components=[Component("bias")], t1=batch.t1, t2=batch.t2).ld


# ---------------------------------------------------------------------------------------------------------- ig


def test_quadrature_rules_integrate_polynomials():
    for rule, degree in (("midpoint", 1), ("gauss", 7)):
        a, w = quadrature(4, rule)
        assert float(w.sum()) == pytest.approx(1.0)
        assert float((w * a**degree).sum()) == pytest.approx(1 / (degree + 1), abs=1e-12)


def test_ig_fast_path_equals_the_plain_loop(planted, batch):
    """Batched rows resumed at their layer, one backward per chunk == one full forward + backward per path point."""
    two = batch.select([0, 1])
    panels = [p[:4] + p[-4:] for p in two.panels]  # heads and MLPs of the first and last layer, both orders
    kw = {"t1": two.t1, "t2": two.t2, "steps": 2, "rule": "midpoint"}
    fast = ig_effects(planted, two.tokens, two.resamples, panels, batch_size=7, **kw)  # chunks cut mid-example
    slow = ig_effects_reference(planted, two.tokens, two.resamples, panels, **kw)
    torch.testing.assert_close(fast, slow, atol=1e-4, rtol=1e-4)


def test_ig_converges_to_the_exact_total_effect(planted, batch, exact, ld):
    """Max |IG - TE| over panels and examples, relative to |LD|, shrinks with the steps: at most 1e-3 with 32
    Gauss-Legendre points or 64 midpoint points (measured: 7e-5 and 2e-4), and 16 Gauss points beat 16 midpoint."""
    def error(steps, rule):
        est = ig_effects(planted, batch.tokens, batch.resamples, batch.panels, t1=batch.t1, t2=batch.t2,
                         steps=steps, rule=rule)
        return float(((est - exact).abs().amax(1) / ld.abs()).max())

    gauss = {s: error(s, "gauss") for s in (4, 16, 32)}
    # shrinking until float32 precision: 16 and 32 points can both sit at ~2e-6, in either order
    assert gauss[4] > gauss[16] and gauss[32] <= gauss[16] + 1e-5 and gauss[32] <= 1e-3
    assert error(64, "midpoint") <= 1e-3
    assert gauss[16] < error(16, "midpoint")


def test_ig_sees_the_erasure(planted, batch, exact):
    """The writer's IG is about its (near-zero) TE, not its DLA: the eraser downstream reacts along the path."""
    est = get_method("ig").attribute(planted, batch)
    for b in range(2):  # the adversarial examples
        w = batch.panels[b].index(parse_component(PLANTED.writer, planted.cfg))
        assert abs(float(est[b, w] - exact[b, w])) < 0.01 and abs(float(est[b, w])) < 0.1


def test_ig_raises_no_false_alarm_on_planted_adversarial_examples(planted, planted_suite):
    """The planted writer is erased (its TE ~0): DLA calls it important on every adversarial example, IG (a total-
    effect method) on none."""
    adversarial = [e.with_split("all") for e in planted_suite.examples if e.kind == "adversarial"]
    frame, runs = run_methods(planted, ["ig", "dla"], adversarial, seed=0)
    assert not any(r.error for r in runs)
    chosen = frame[(frame.metric == "false_alarm") & (frame.kind == "adversarial") & (frame.against == "te")]
    alarm = chosen.set_index("method")["value"]
    assert alarm["ig"] <= 0.1 and alarm["dla"] >= 0.9


# ---------------------------------------------------------------------------------------------------------- atp*


def _graddrop_reference(bridge, b: ExampleBatch) -> torch.Tensor:
    """The published sum over ALL layers l of |AtP with layer l dropped| / (L - 1), each layer actually dropped."""
    comps, index, names, delta = activation_deltas(bridge, b)
    plain = dot_per_component(gradients(bridge, b.tokens, b.t1, b.t2, names), delta, comps)
    total = torch.zeros_like(plain)
    for layer in range(bridge.cfg.n_layers):
        grads = gradients(bridge, b.tokens, b.t1, b.t2, names, hooks=_drop_layer(layer))
        total += dot_per_component(grads, delta, comps).abs()
    return b.gather((plain.sign() * total / (bridge.cfg.n_layers - 1)).float().cpu(), index)


def test_graddrop_shortcut_equals_dropping_every_layer(planted, batch):
    torch.testing.assert_close(graddrop(planted, batch), _graddrop_reference(planted, batch), atol=1e-5, rtol=1e-4)


def test_atp_star_verifies_its_top_candidates_exactly(planted, batch, exact):
    scores = get_method("atp-graddrop").attribute(planted, batch)
    torch.testing.assert_close(get_method("atp-star", budget=0).attribute(planted, batch), scores)
    star = get_method("atp-star", budget=3).attribute(planted, batch)
    for b in range(len(batch)):
        top = {j for j in range(batch.n_panel) if int(magnitude_rank(scores[b], j)) <= 3}
        assert len(top) == 3
        for j in range(batch.n_panel):
            want = exact[b, j] if j in top else scores[b, j]
            assert float(star[b, j]) == pytest.approx(float(want), abs=1e-4)
    full = get_method("atp-star", budget=batch.n_panel).attribute(planted, batch)
    torch.testing.assert_close(full, exact, atol=1e-4, rtol=1e-4)  # everything verified: the exact TE


def test_graddrop_alone_flags_the_erased_writer_and_verification_clears_it(planted, batch, exact):
    dropped = get_method("atp-graddrop").attribute(planted, batch)
    star = get_method("atp-star").attribute(planted, batch)
    for b in (0, 1):  # the adversarial examples: the writer is in GradDrop's top 3, and verified it is ~0
        w = batch.panels[b].index(parse_component(PLANTED.writer, planted.cfg))
        assert int(magnitude_rank(dropped[b], w)) <= 3 and abs(float(star[b, w] - exact[b, w])) < 1e-4


# ------------------------------------------------------------------------------------------------- dla variants


def test_dla_relative_is_dla_minus_the_mean_dla_of_the_resample_outputs(planted, batch):
    """By its definition: each output read through the clean run's final-norm scale, clean minus resample mean."""
    from advdla.attribution import component_outputs, dla_of_outputs, hook_names

    est = get_method("dla-relative").attribute(planted, batch)
    for b in range(len(batch)):
        comps, names = batch.panels[b], hook_names(batch.panels[b])
        with torch.inference_mode():
            clean = planted.run_with_cache(batch.tokens[b:b + 1], names_filter=names.__contains__)[1]
            res = planted.run_with_cache(batch.resamples[b], names_filter=names.__contains__)[1]
            scale, t1, t2 = clean[LN_FINAL_SCALE][:, -1, 0], batch.t1[b:b + 1], batch.t2[b:b + 1]
            own = dla_of_outputs(planted, component_outputs(planted, clean, comps), scale, t1, t2)[0]
            mean_res = component_outputs(planted, res, comps).mean(0, keepdim=True)
            theirs = dla_of_outputs(planted, mean_res, scale, t1, t2)[0]
        torch.testing.assert_close(est[b], (own - theirs).float(), atol=1e-4, rtol=1e-4)


def test_erasure_aware_dla_zeroes_the_erased_writer_and_keeps_the_honest_head(planted, batch):
    aware = get_method("dla-erasure-aware").attribute(planted, batch)
    relative = get_method("dla-relative").attribute(planted, batch)
    for b in range(len(batch)):
        w, h = (batch.panels[b].index(parse_component(x, planted.cfg)) for x in (PLANTED.writer, PLANTED.honest))
        assert abs(float(aware[b, w])) < 0.05 * abs(float(relative[b, w]))
        assert float(aware[b, h]) == pytest.approx(float(relative[b, h]), rel=0.1)


# ------------------------------------------------------------------------------------------ TransformerLens tools


def test_tl_dla_equals_dla_on_planted(planted, batch):
    torch.testing.assert_close(get_method("tl-dla").attribute(planted, batch),
                               get_method("dla").attribute(planted, batch), atol=1e-4, rtol=0)


@pytest.mark.slow
def test_tl_dla_equals_dla_on_smollm2():
    from advdla.attribution import top2
    from advdla.models import load_model

    bridge = load_model("smollm2-135m")
    tokens = torch.tensor([bridge.tokenizer(t)["input_ids"][:6] for t in ("The capital of France is Paris",
                                                                         "One, two, three, four, five")])
    with torch.inference_mode():
        t1, t2 = top2(bridge(tokens)[:, -1])
    panel = [c for c in all_components(bridge.cfg) if c.kind in ("head", "mlp")]
    b = ExampleBatch(tokens=tokens, resamples=tokens[:, None], t1=t1.clone(), t2=t2.clone(), panels=[panel] * 2,
                     targets=[panel[0]] * 2)
    torch.testing.assert_close(get_method("tl-dla").attribute(bridge, b), get_method("dla").attribute(bridge, b),
                               atol=1e-4, rtol=0)


def _denoising_atp(bridge, b: ExampleBatch) -> torch.Tensor:
    """advdla's own AtP with the gradient read on the resample run instead of the clean one (the library's
    convention), averaged over resamples."""
    comps, index = b.union()
    names = sorted({c.site for c in comps})
    n, r, pos = b.resamples.shape
    res_tokens = b.resamples.reshape(n * r, pos)
    t1, t2 = b.t1.repeat_interleave(r), b.t2.repeat_interleave(r)
    res_acts: dict[str, torch.Tensor] = {}
    grads = gradients(bridge, res_tokens, t1, t2, names, acts=res_acts)
    clean: dict[str, torch.Tensor] = {}
    gradients(bridge, b.tokens, b.t1, b.t2, names, acts=clean)
    delta = {k: clean[k].repeat_interleave(r, 0) - res_acts[k] for k in names}
    values = dot_per_component(grads, delta, comps).reshape(n, r, -1).mean(1)
    return b.gather(values.float().cpu(), index)


def test_tl_atp_is_atp_with_the_gradient_on_the_resample_run(planted, batch):
    """The one difference between tl-atp and atp is where the gradient is read (denoising vs noising)."""
    torch.testing.assert_close(get_method("tl-atp").attribute(planted, batch), _denoising_atp(planted, batch),
                               atol=1e-4, rtol=1e-4)


def test_tl_atp_and_atp_agree_where_the_model_is_linear(planted, batch):
    """On the honest head (a linear path to the logits) both conventions give its TE; on the eraser (whose own
    attention and the final norm bend the path) they differ."""
    tl, atp = get_method("tl-atp").attribute(planted, batch), get_method("atp").attribute(planted, batch)
    for b in range(len(batch)):
        h = batch.panels[b].index(parse_component(PLANTED.honest, planted.cfg))
        assert float(tl[b, h]) == pytest.approx(float(atp[b, h]), rel=0.02)


def test_adapters_refuse_components_they_cannot_score(planted, batch):
    from advdla.errors import AdvdlaError

    one = batch.select([0])
    one.panels = [[Component("embed")] + one.panels[0][1:]]
    for name in ("tl-dla", "tl-atp"):
        with pytest.raises(AdvdlaError, match="heads and MLPs"):
            get_method(name).attribute(planted, one)
