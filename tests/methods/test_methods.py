"""Conformance test over every registered attribution method (as optuna tests every sampler), plus the registry.

Every method must return [batch, panel] finite numbers in panel order, the same numbers twice under a seed,
and the same numbers whether examples come one by one or batched. Runs on the planted-erasure suite rows.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata

import pytest
import torch

from advdla import methods
from advdla.errors import AdvdlaError
from advdla.methods import (
    AttributionMethod,
    ExampleBatch,
    available_methods,
    get_method,
    load_plugins,
    method_spec,
    register_method,
    registry,
)
from advdla.registry import Registry
from advdla.scoring import to_batch

FAST_PARAMS = {"ig": {"steps": 2}, "atp-star": {"budget": 2}}  # keep the test fast; the properties hold for any


@pytest.fixture(scope="module")
def rows(planted_suite):
    return planted_suite.examples[:3]


@pytest.fixture(scope="module")
def batch(rows, planted):
    return to_batch(rows, planted.cfg, with_truth=True)


def test_the_conformance_batch_holds_heads_and_mlps(batch):
    """Every method below is checked on panels with both kinds of component (suite v3 panels hold MLPs too)."""
    assert {c.kind for panel in batch.panels for c in panel} == {"head", "mlp"}


@pytest.mark.parametrize("name", list(available_methods()))
def test_method_conforms(name, planted, batch):
    method = get_method(name, seed=1, **FAST_PARAMS.get(name, {}))
    values = method.attribute(planted, batch)
    assert isinstance(values, torch.Tensor) and values.shape == (len(batch), batch.n_panel)
    assert torch.isfinite(values).all()
    again = get_method(name, seed=1, **FAST_PARAMS.get(name, {})).attribute(planted, batch)
    torch.testing.assert_close(values, again, atol=0, rtol=0)  # deterministic under the seed
    one_by_one = torch.cat([method.attribute(planted, batch.select([i])) for i in range(len(batch))])
    torch.testing.assert_close(values, one_by_one, atol=1e-5, rtol=1e-5)  # batch-invariant


@pytest.mark.parametrize("name", list(available_methods()))
def test_method_follows_panel_order(name, planted, batch):
    """Reversing an example's panel reverses the method's answer (random: its numbers follow the panel it is given)."""
    method = get_method(name, seed=1, **FAST_PARAMS.get(name, {}))
    one = batch.select([0])
    flipped = one.select([0])
    flipped.panels = [one.panels[0][::-1]]
    if one.te_mean is not None:  # the truth, for the reference rows, in the flipped panel's order too
        flipped.te_mean, flipped.de_mean = one.te_mean.flip(1), one.de_mean.flip(1)
    got, back = method.attribute(planted, one), method.attribute(planted, flipped)
    if name == "random":
        assert not torch.equal(got, back.flip(1))
    else:
        torch.testing.assert_close(got, back.flip(1), atol=1e-5, rtol=1e-5)


def test_metadata_and_did_you_mean():
    specs = available_methods()
    assert {"dla", "dla-relative", "dla-erasure-aware", "atp", "atp-graddrop", "atp-star", "ig", "tl-dla", "tl-atp",
            "exact-patching", "random", "exact-te"} <= set(specs)
    assert specs["atp"].needs_grad and not specs["dla"].needs_grad and specs["exact-te"].uses_truth
    assert all(s.description and s.version for s in specs.values())
    with pytest.raises(AdvdlaError, match="Did you mean 'atp-star'"):
        get_method("atp_star")
    with pytest.raises(AdvdlaError, match="steps >= 1"):
        get_method("ig", steps=0)
    with pytest.raises(AdvdlaError, match="unknown ig rule"):
        get_method("ig", rule="simpson")
    with pytest.raises(AdvdlaError, match="budget >= 0"):
        get_method("atp-star", budget=-1)


def test_ig_and_atp_agree_with_the_exact_effect_where_the_model_is_linear_enough(planted, batch):
    """On the honest head and the eraser (no cancellation through them), gradient methods match the exact effect
    over the method resamples they are given."""
    from advdla.patching import total_effects

    truth = torch.stack([total_effects(planted, batch.tokens[i:i + 1], batch.resamples[i:i + 1], batch.panels[i],
                                       t1=batch.t1[i:i + 1], t2=batch.t2[i:i + 1]).mean[0] for i in range(len(batch))])
    honest, eraser = batch.panels[0].index(_comp(planted, "L2H0")), batch.panels[0].index(_comp(planted, "L1H2"))
    for name in ("atp", "ig", "tl-atp"):
        est = get_method(name, **FAST_PARAMS.get(name, {})).attribute(planted, batch)
        for i in (honest, eraser):
            torch.testing.assert_close(est[:, i], truth[:, i], atol=0.1 * truth[:, i].abs().max().item(), rtol=0)


def test_the_reference_rows_need_the_truth_and_return_it(planted, rows):
    no_truth = to_batch(rows, planted.cfg, with_truth=False)
    for name, column in (("exact-te", "te_mean"), ("exact-de", "de_mean")):
        with pytest.raises(AdvdlaError, match=column):
            get_method(name).attribute(planted, no_truth)
    batch = to_batch(rows, planted.cfg, with_truth=True)
    torch.testing.assert_close(get_method("exact-de").attribute(planted, batch),
                               torch.stack([r.truth.de_mean.float() for r in rows]))


def test_every_method_declares_its_estimand():
    """DLA and its variants estimate the direct effect; AtP, IG and patching the total effect."""
    specs = available_methods()
    direct = {n for n, s in specs.items() if s.estimand == "direct"}
    assert direct == {"dla", "dla-relative", "dla-erasure-aware", "tl-dla", "exact-de"}
    assert {specs[n].role for n in ("exact-te", "exact-de")} == {"reference"}
    assert specs["exact-patching"].role == "method"


def test_rows_of_different_lengths_cannot_share_a_batch(planted, rows):
    short = dataclasses.replace(rows[1], tokens=rows[1].tokens[:-1])
    with pytest.raises(AdvdlaError, match="token count"):
        to_batch([rows[0], short], planted.cfg)


class _Constant(AttributionMethod):
    """A plug-in method for the test: every estimate is 2.0."""

    version = "7"
    description = "constant plug-in"

    def attribute(self, model, batch):
        return torch.full((len(batch), batch.n_panel), 2.0)


def _fake_entry_points(monkeypatch, value, obj):
    ep = importlib.metadata.EntryPoint(name="const-plugin", value=value, group=methods.ENTRY_POINT_GROUP)
    monkeypatch.setattr(importlib.metadata.EntryPoint, "load", lambda self: obj)
    monkeypatch.setattr(
        importlib.metadata, "entry_points", lambda group=None, **kw: [ep] if group == methods.ENTRY_POINT_GROUP else []
    )
    scratch_methods(monkeypatch)


def scratch_methods(monkeypatch):
    """A copy of the method registry for one test, entry points not yet loaded: what the test registers or loads
    vanishes afterwards."""
    scratch = Registry[registry.MethodSpec]("method", entry_points=methods.ENTRY_POINT_GROUP,
                                            on_entry_point=registry._register_entry_point)
    for name, spec in registry.METHODS.items():
        scratch.add(name, spec)
    monkeypatch.setattr(registry, "METHODS", scratch)


def test_a_plugin_from_an_entry_point_is_registered_and_scored(monkeypatch, planted, planted_suite):
    from advdla.scoring import run_methods

    _fake_entry_points(monkeypatch, "fake_pkg.mod:_Constant", _Constant)
    spec = available_methods()["const-plugin"]
    assert spec.cls is _Constant and spec.version == "7" and spec.source == "entry point fake_pkg.mod:_Constant"
    frame, runs = run_methods(planted, ["const-plugin", "dla"], planted_suite.examples, seed=0)
    assert set(frame["method"]) == {"const-plugin", "dla"} and not any(r.error for r in runs)
    spearman = frame[(frame.method == "const-plugin") & (frame.metric == "rank_full")]
    assert spearman["n"].eq(0).all()  # a constant estimate has no rank correlation: NaN, counted as 0 examples
    mcc = frame[(frame.method == "const-plugin") & (frame.metric == "mcc")]
    assert (mcc["value"] == 0).all()  # and its constant call has an importance MCC of exactly 0 (chance)


def test_a_broken_plugin_is_reported_and_the_builtins_survive(monkeypatch, capsys):
    _fake_entry_points(monkeypatch, "fake_pkg.mod:not_a_method", 42)
    names = available_methods()
    assert "const-plugin" not in names and "dla" in names
    problems = load_plugins()  # reported to the face (which prints it), also after available_methods loaded it
    assert len(problems) == 1 and "plug-in method 'const-plugin'" in problems[0]
    assert capsys.readouterr().err == ""  # nothing below the face prints


def test_registered_params_are_the_harness_defaults():
    assert method_spec("ig").params == {"steps": 16} and method_spec("dla").params == {}
    assert method_spec("atp-star").params == {"budget": 5}
    for name, spec in available_methods().items():
        assert get_method(name, seed=0, **spec.params).name == name  # every method takes its own defaults


def test_register_method_rejects_a_non_method():
    with pytest.raises(AdvdlaError, match="AttributionMethod subclass"):
        register_method("bad", version="1", description="x")(object)


def _comp(bridge, name):
    from advdla.components import parse_component

    return parse_component(name, bridge.cfg)


@pytest.fixture(scope="module")
def gqa_batch(tiny_gqa):
    """Two random-token examples on the grouped-query Llama (rotary, no hook for pos_embed, 3 heads per kv group)."""
    from advdla.attribution import dla
    from advdla.components import head_components
    from advdla.patching import direct_effects, total_effects

    g = torch.Generator().manual_seed(0)
    tokens, resamples = torch.randint(0, 250, (2, 8), generator=g), torch.randint(0, 250, (2, 3, 8), generator=g)
    panel = head_components(tiny_gqa.cfg)
    d = dla(tiny_gqa, tokens, components=panel)
    te = total_effects(tiny_gqa, tokens, resamples, panel, t1=d.t1, t2=d.t2)
    de = direct_effects(tiny_gqa, tokens, resamples, panel, t1=d.t1, t2=d.t2)
    return ExampleBatch(
        tokens=tokens,
        resamples=resamples,
        t1=d.t1,
        t2=d.t2,
        panels=[panel, panel[::-1]],
        targets=[panel[0], panel[1]],
        example_ids=["a", "b"],
        te_mean=torch.stack([te.mean[0], te.mean[1].flip(0)]),
        de_mean=torch.stack([de.mean[0], de.mean[1].flip(0)]),
    )


@pytest.mark.parametrize("name", list(available_methods()))
def test_method_runs_on_a_grouped_query_model(name, tiny_gqa, gqa_batch):
    values = get_method(name, **FAST_PARAMS.get(name, {})).attribute(tiny_gqa, gqa_batch)
    assert values.shape == (2, gqa_batch.n_panel) and torch.isfinite(values).all()
    if name == "exact-patching":  # exact: equals the total effect, per example in its own panel order
        torch.testing.assert_close(values, gqa_batch.te_mean, atol=1e-5, rtol=1e-5)
