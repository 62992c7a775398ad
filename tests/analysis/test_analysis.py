"""Erasure analysis: projection ratios, fits, and the planted model's known writer and eraser."""

from __future__ import annotations

import pytest
import torch
from scipy.stats import linregress

from advdla.analysis import (
    analyze_writer,
    auto_target,
    auto_target_from_windows,
    batched_slopes,
    centred,
    check_writer,
    discover_writers,
    linear_fit,
    overrated_components,
    projection_ratio,
    quartiles,
    rank_targets,
    sample_prompts,
    target_windows,
    writer_norm_ratio,
)
from advdla.components import Component, parse_component
from advdla.corpus import TokenWindows, load_corpus
from advdla.errors import AdvdlaError
from advdla.models import load_model
from advdla.models.planted import PLANTED


@pytest.fixture(scope="module")
def planted():
    return load_model("planted-erasure")


@pytest.fixture(scope="module")
def sample(planted):
    return sample_prompts(planted, n=8, seq_len=16, resamples=2, seed=0)


@pytest.fixture(scope="module")
def writer_analysis(planted, sample):
    return analyze_writer(planted, sample[0], parse_component(PLANTED.writer, planted.cfg))


def test_projection_ratio_basics():
    b = torch.randn(5, 7)
    ortho = torch.randn(5, 7)
    ortho -= projection_ratio(ortho, b)[:, None] * b  # remove b's component
    assert torch.allclose(projection_ratio(-b, b), -torch.ones(5))
    assert torch.allclose(projection_ratio(2 * b + ortho, b), 2 * torch.ones(5), atol=1e-5)
    assert projection_ratio(ortho, b).abs().max() < 1e-5


def test_quartiles_and_centring():
    q = quartiles(torch.arange(101.0))
    assert (q.median, q.q25, q.q75) == (50.0, 25.0, 75.0)
    assert quartiles(torch.tensor([float("nan"), 1.0, 3.0])).median == 2.0
    x = torch.randn(3, 4, 6) + 100.0
    assert centred(x).mean((0, 1)).abs().max() < 1e-4


def test_centring_removes_the_constant_writer_artefact():
    """A tiny writer dominated by a constant vector: raw PR of an unrelated output is huge, centred PR is ~0."""
    g = torch.Generator().manual_seed(0)
    const = torch.randn(16, generator=g)
    writer = 0.01 * const + 0.001 * torch.randn(4, 8, 16, generator=g)
    other = -0.2 * const + torch.randn(4, 8, 16, generator=g) * 0.01  # constant part aligned against it, no reading
    assert quartiles(projection_ratio(other, writer)).median < -10
    assert abs(quartiles(projection_ratio(centred(other), centred(writer))).median) < 1.0


def test_slopes_match_linregress():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(50, generator=g)
    ys = torch.stack([-0.5 * x + 0.1 * torch.randn(50, generator=g), 2 * x + torch.randn(50, generator=g)], 1)
    slope, stderr = batched_slopes(x, ys)
    for i in range(2):
        ref = linregress(x.numpy(), ys[:, i].numpy())
        assert slope[i].item() == pytest.approx(ref.slope, rel=1e-4)
        assert stderr[i].item() == pytest.approx(ref.stderr, rel=1e-4)
    fit = linear_fit(x, ys[:, 0])
    assert fit.slope == pytest.approx(-0.5, abs=0.05) and fit.r < -0.9 and fit.n == 50


def test_check_writer_rejects_what_cannot_be_erased(planted):
    with pytest.raises(AdvdlaError, match="last layer"):
        check_writer("L2H0", planted.cfg)
    with pytest.raises(AdvdlaError, match="does not exist"):
        check_writer("L7H0", planted.cfg)
    with pytest.raises(AdvdlaError, match="heads"):
        check_writer(Component("embed"), planted.cfg)
    assert check_writer("MLP1", planted.cfg) == Component("mlp", 1)


def test_sample_prompts_rejects_bad_lengths(planted):
    with pytest.raises(AdvdlaError, match="context"):
        sample_prompts(planted, n=2, seq_len=planted.cfg.n_ctx + 1, resamples=1, seed=0)
    with pytest.raises(AdvdlaError, match="at least 2 tokens"):
        sample_prompts(planted, n=2, seq_len=1, resamples=1, seed=0)


def test_discovers_the_planted_writer(planted, sample):
    rows = discover_writers(planted, sample[0], top=3)
    assert rows[0].component == PLANTED.writer
    assert rows[0].ld_share > 1.0 and rows[0].abs_share > 1.0  # DLA(writer) is ~1.5 LD by construction


def test_planted_eraser_found_and_removed_by_vcomp(writer_analysis):
    wa = writer_analysis
    assert wa.erasers == [PLANTED.eraser]
    row = next(r for r in wa.components if r.component == PLANTED.eraser)
    assert row.pr.median == pytest.approx(-1.0, abs=0.05) and row.pr.q75 < -0.9
    assert abs(row.pr_vcomp.median) < 0.05
    assert row.dla_slope == pytest.approx(-1.0, abs=0.05)
    others = [r for r in wa.components if r.component != PLANTED.eraser]
    assert max(abs(r.pr.median) for r in others) < 0.05


def test_planted_residual_loses_the_writer_unless_patched(writer_analysis):
    res = {r.label: r for r in writer_analysis.residual}
    assert res["pre0"].pr.median == pytest.approx(0.0, abs=0.02)
    assert res["mid0"].pr.median == pytest.approx(1.0, abs=0.02)
    assert abs(res["post2"].pr.median) < 0.05  # erased by layer 1's attention
    assert res["post2"].pr_vcomp.median == pytest.approx(1.0, abs=0.05)  # eraser patched: it stays
    assert writer_analysis.receivers == [PLANTED.eraser]


def test_planted_writer_vs_eraser_fit(writer_analysis):
    fit = writer_analysis.fits["erasers"]
    assert fit.slope == pytest.approx(-1.0, abs=0.05) and fit.r < -0.99
    assert writer_analysis.fits["vcomp_path"].slope < -0.9


def test_writer_norm_is_small_raw_but_not_centred(planted, sample):
    _, cache = planted.run_with_cache(sample[0])
    out, resid = cache["blocks.0.attn.hook_result"][:, 1:, 1], cache["blocks.0.hook_resid_mid"][:, 1:]
    assert writer_norm_ratio(out, resid, centre=False) < 0.15
    assert writer_norm_ratio(out, resid, centre=True) > 0.2


def test_overrated_components_names_the_writer(planted, sample):
    tokens, resamples = sample
    frame = overrated_components(planted, tokens, resamples, top=4)
    assert list(frame.columns[:3]) == ["component", "dla", "te"]
    assert frame.loc[0, "component"] == PLANTED.writer
    assert abs(frame.loc[0, "te_over_dla"]) < 0.05
    assert frame["overstatement"].is_monotonic_decreasing
    honest = frame[frame.component == PLANTED.honest].iloc[0]
    assert honest.te > 0.3 * honest.dla
    heads = overrated_components(planted, tokens, resamples, top=3, kinds=("head",))
    assert set(heads.component) == {PLANTED.writer, PLANTED.eraser, PLANTED.honest}  # the three big |DLA| heads
    assert heads.loc[0, "component"] == PLANTED.writer


def test_rank_targets_ranks_by_compensated_direct_effect_and_auto_target_is_the_planted_writer(planted, sample):
    tokens, resamples = sample
    frame = rank_targets(planted, tokens, resamples, top=4)
    assert len(frame) == 4
    assert {"component", "dla", "de", "te", "de_share", "te_share", "holds", "score"} <= set(frame.columns)
    top = frame.loc[0]
    assert top.component == PLANTED.writer and top.de_share > 0.5 and top.te_share < 0.05 and top.holds >= 2
    # the eraser's DE is as large, but so is its TE: nothing downstream undoes it
    eraser = frame[frame.component == PLANTED.eraser].iloc[0]
    assert eraser.te_share > 0.5 and eraser.score < top.score
    assert auto_target(planted, tokens, resamples, top=4) == parse_component(PLANTED.writer, planted.cfg)
    heads = rank_targets(planted, tokens, resamples, top=3, kinds=("head",))
    assert all(parse_component(n, planted.cfg).kind == "head" for n in heads.component)


def test_auto_target_from_windows_is_auto_target_on_the_seeded_draw(planted):
    """The search's and the suite build's one draw: 16 windows (seed + 1000) and 4 resamples from other documents
    (seed + 1001), ranked by rank_targets."""
    windows = TokenWindows(load_corpus("builtin"), planted.tokenizer)
    tokens, resamples = target_windows(windows, seq_len=16, seed=3)
    expected, docs = windows.sample(16, 16, seed=1003)
    assert torch.equal(tokens, expected)
    assert torch.equal(resamples, windows.sample(16, 4, seed=1004, exclude=set(docs))[0])
    target = auto_target_from_windows(planted, windows, seq_len=16, seed=3)
    assert target == auto_target(planted, tokens, resamples) == parse_component(PLANTED.writer, planted.cfg)


def test_gqa_model_runs_with_head_and_mlp_writers(tiny_gqa):
    tokens = torch.randint(0, tiny_gqa.cfg.d_vocab, (3, 10), generator=torch.Generator().manual_seed(0))
    for name in ("L0H1", "MLP0"):
        wa = analyze_writer(tiny_gqa, tokens, parse_component(name, tiny_gqa.cfg))
        assert wa.components and all(r.pr.median == r.pr.median for r in wa.components)  # finite, not NaN
        assert len(wa.residual) == 3 * tiny_gqa.cfg.n_layers
