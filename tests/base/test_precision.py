"""The precision policy (advdla.precision): a bf16 screen agrees with fp32 within a stated tolerance, the fp32 model
is never touched, and nothing a search stores comes from the screen.

Tolerance: on random prompts a bf16 screen's LD, DLA, DE and TE stay within ``TOL`` x the largest |logit| at the
last position (fp32) of the fp32 evaluator's, on the prompts where both rank the same top-2 tokens (elsewhere LD
is another metric: a flipped decision, which the fp32 re-verification catches, not a deviation). bf16 keeps 8
bits of mantissa, so its rounding scales with the logits, not with their difference. TOL = 0.08: on the tiny
Llama the largest deviation is far below it; on the planted model (logits up to 13.6, near one-hot attention)
the median is held to it and the largest is not (see ``STATISTIC``). A screen that patched the wrong activation,
or summed in bf16 without casting, fails it.
"""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from advdla.attribution import DLAResult, dla, magnitude_rank
from advdla.components import heads_and_mlps, parse_component
from advdla.corpus import TokenWindows, load_corpus
from advdla.criteria import Thresholds
from advdla.errors import AdvdlaError
from advdla.models import load_model
from advdla.models.bridge import weights_fingerprint
from advdla.precision import (
    DEFAULT_PRECISION,
    MIN_BF16_PARAMETERS,
    PRECISIONS,
    check_precision,
    screen_dtype,
    screening_model,
)
from advdla.report import PRECISION_CHOICES
from advdla.search import SearchConfig, run_search
from advdla.search.evaluate import Evaluator, verify
from advdla.search.space import build_space
from advdla.search.verified import verify_resamples
from advdla.suites import build_suite, config_from_dict, load_suite
from advdla.suites import natural as natural_module
from advdla.suites.build import Candidate

pytestmark = pytest.mark.usefixtures("one_thread", "bf16_on_small_models")
REAL_FLOOR = MIN_BF16_PARAMETERS  # the shipped floor, read before any test lifts it


@pytest.fixture
def bf16_on_small_models(monkeypatch):
    """These tests screen the tiny models in bf16 on purpose: lift the size floor below which advdla keeps fp32."""
    import advdla.precision

    monkeypatch.setattr(advdla.precision, "MIN_BF16_PARAMETERS", 0)
TOL = 0.08  # x the largest |logit| at the last position, fp32 (see the module docstring)


@pytest.fixture(scope="module")
def planted():
    return load_model("planted-erasure")


def test_names_and_errors():
    assert PRECISION_CHOICES == PRECISIONS and DEFAULT_PRECISION in PRECISIONS
    assert screen_dtype("bf16") == torch.bfloat16 and screen_dtype("fp32") == torch.float32
    with pytest.raises(AdvdlaError, match="unknown precision 'bf61'.*Did you mean 'bf16'"):
        check_precision("bf61")


def test_fp32_is_the_model_itself_and_bf16_a_cached_copy_that_leaves_it_alone(tiny_gqa):
    before = weights_fingerprint(tiny_gqa.state_dict())
    assert screening_model(tiny_gqa, "fp32") is tiny_gqa
    copy = screening_model(tiny_gqa, "bf16")
    assert copy is not tiny_gqa and screening_model(tiny_gqa, "bf16") is copy
    assert copy.W_U.dtype == torch.bfloat16 and tiny_gqa.W_U.dtype == torch.float32
    assert not copy.cfg.use_split_qkv_input and tiny_gqa.cfg.use_split_qkv_input
    assert copy.advdla_card == tiny_gqa.advdla_card
    assert weights_fingerprint(tiny_gqa.state_dict()) == before
    assert screening_model(copy, "bf16") is copy  # a model already in bf16 is its own screen


def _random_case(bridge, seed: int, n: int = 8, r: int = 4, pos: int = 12):
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(0, bridge.cfg.d_vocab, (n, pos), generator=g),
            torch.randint(0, bridge.cfg.d_vocab, (r, pos), generator=g))


# the statistic each model is held to: the largest deviation on the tiny Llama (smooth random weights), the median
# on the planted model, whose hand-set attention is near one-hot so that bf16 rounding can flip which token a head
# reads (then TE moves by several logits on a prompt: a flipped screening decision that the fp32 re-verification
# catches); measured there: median |TE| deviation under 0.2, largest 7.9 (MLP0), with logits up to 13.6
STATISTIC = {"tiny-llama-gqa": torch.max, "planted-erasure": torch.median}


@pytest.mark.parametrize("model", ["tiny-llama-gqa", "planted-erasure"])
@pytest.mark.parametrize("kind", ["head", "mlp"])
def test_bf16_evaluator_agrees_with_fp32_within_tolerance(model, kind):
    bridge, stat = load_model(model), STATISTIC[model]
    comps = [c for c in heads_and_mlps(bridge.cfg) if c.kind == kind]
    for seed, target in enumerate((comps[0], comps[-1])):
        tokens, res = _random_case(bridge, seed)
        exact = Evaluator(bridge, target, res)(tokens)
        fast = Evaluator(bridge, target, res, precision="bf16")(tokens)
        with torch.inference_mode():
            limit = TOL * float(bridge(tokens)[:, -1].abs().max())
        # where bf16 ranks the top-2 tokens otherwise, LD is another metric: a flipped decision, not a deviation
        same = (fast.t1 == exact.t1) & (fast.t2 == exact.t2)
        assert int(same.sum()) >= len(same) // 2
        for name in ("ld", "dla", "te", "de"):
            got, want = getattr(fast, name), getattr(exact, name)
            assert got.dtype == torch.float32, name  # read back in fp32 before any threshold sees it
            err = float(stat((got[same] - want[same]).abs().flatten()))
            assert err <= limit, f"{model} {target} {name}: {stat.__name__} |bf16 - fp32| {err:.3g} > {limit:.3g}"
        assert float((fast.naturalness - exact.naturalness).abs().max()) <= TOL * float(exact.naturalness.abs().max())


def test_bf16_splice_patches_the_target_like_fp32(tiny_gqa):
    """TE under bf16 is a real patch: on the last layer's MLP (no later component), TE = DE exactly in fp32, and
    the bf16 TE tracks the fp32 TE, not zero."""
    target = [c for c in heads_and_mlps(tiny_gqa.cfg) if c.kind == "mlp"][-1]
    tokens, res = _random_case(tiny_gqa, 7)
    exact = Evaluator(tiny_gqa, target, res)(tokens)
    fast = Evaluator(tiny_gqa, target, res, precision="bf16")(tokens)
    scale = float(exact.te.abs().max())
    assert scale > 1e-3
    assert float((fast.te - exact.te).abs().max()) <= 0.1 * scale


def test_a_bf16_search_reports_only_fp32_numbers(planted, tmp_path):
    """Every row a bf16 search writes is the fp32 slow path's: re-derived on the fp32 model it is identical."""
    writer = parse_component("L0H1", planted.cfg)
    cfg = SearchConfig(target=writer.name, trials=16, batch=8, resamples=3, seq_len=16, n_base=8, pool_size=24,
                       max_verify=4, thresholds=Thresholds(margin=0.5), precision="bf16")
    result = run_search(planted, cfg, out_dir=tmp_path)
    frame = pd.read_parquet(tmp_path / "examples.parquet")
    assert len(frame) >= 1 and result.summary["config"]["precision"] == "bf16"
    windows = TokenWindows(load_corpus(), planted.tokenizer)
    space = build_space(planted, windows, writer, seq_len=16, seed=0, n_base=8, pool_size=24)
    fresh = verify_resamples(windows, space, cfg)
    for row in frame.itertuples():
        v = verify(planted, writer, torch.tensor(list(row.tokens)), fresh)
        for key in ("ld", "dla", "te_mean", "te_std", "de_mean", "rank", "t1", "t2"):
            assert v[key] == getattr(row, key), key  # exact: the same fp32 computation, not a bf16 one


def _corpus_finder(bridge, target, *, cfg, seed, n, windows, out_dir, exclude_docs=frozenset(), progress=None):
    """Stub search (as tests/suites/test_suite.py's): n corpus windows, so a build takes seconds."""
    tokens, docs = windows.sample(cfg.seq_len, n, seed=seed + 99, exclude=set(exclude_docs))
    return [Candidate(tuple(t.tolist()), target.name, d) for t, d in zip(tokens, docs, strict=True)], {"engine": "stub"}


def test_a_bf16_natural_scan_changes_no_stored_number(planted, tmp_path):
    """Suites built with a bf16 and an fp32 scan: every natural control of the bf16 one meets the rule in fp32, and
    every example both hold has identical truth (the truth never screens)."""
    cfg = config_from_dict(dict(name="planted-precision", model="planted-erasure", seq_len=12, seed=0,
                                targets=["L0H1", "L2H0"], search=dict(trials=4, batch=8), resamples=2,
                                method_resamples=2, splits=dict(n_dev=2, n_test=1, n_natural=3)))
    suites = {p: load_suite(build_suite(cfg, tmp_path / p, find=_corpus_finder, bridge=planted, precision=p))
              for p in ("bf16", "fp32")}
    assert suites["bf16"].manifest["build"]["dev"]["natural_scan_precision"] == "bf16"
    thr, pool = cfg.threshold_values(), heads_and_mlps(planted.cfg)
    natural = [e for e in suites["bf16"].examples() if e.kind == "natural"]
    assert len(natural) == 2 * 3
    for e in natural:
        d = dla(planted, e.tokens[None], components=pool)
        assert float(d.ld[0]) > thr.margin
        assert int(magnitude_rank(d.values[0], pool.index(parse_component(e.target, planted.cfg)))) <= thr.top_k
    fp32 = {e.example_id: e for e in suites["fp32"].examples()}
    shared = [e for e in suites["bf16"].examples() if e.example_id in fp32]
    assert shared  # the adversarial candidates come from the same stub finder in both
    for e in shared:
        assert torch.equal(e.truth.te_mean, fp32[e.example_id].truth.te_mean)
        assert torch.equal(e.truth.dla, fp32[e.example_id].truth.dla)


def test_the_fp32_recheck_has_the_last_word_on_natural_controls(planted, tmp_path, monkeypatch):
    """A screen that takes every window for a target the planted model seldom ranks high (LD 10, L1H0's DLA 100):
    the controls that enter the suite are still only those the fp32 rule takes (for the target fp32 names), and
    the manifest counts the screen's decisions that fp32 overruled."""
    real_dla = natural_module.dla
    target = parse_component("L1H0", planted.cfg)

    def lying_screen(model, tokens, *, components):
        d = real_dla(model, tokens, components=components)
        if model is planted:  # the fp32 model tells the truth
            return d
        values = d.values.float().clone()
        values[:, components.index(target)] = 100.0
        return DLAResult(d.components, values, torch.full_like(d.ld, 10.0), d.t1, d.t2)

    monkeypatch.setattr(natural_module, "dla", lying_screen)
    cfg = config_from_dict(dict(name="planted-recheck", model="planted-erasure", seq_len=12, seed=0,
                                targets=["L0H1", "L1H0"], search=dict(trials=4, batch=8), resamples=2,
                                method_resamples=2, splits=dict(n_dev=2, n_test=1, n_natural=3)))
    suite = load_suite(build_suite(cfg, tmp_path / "s", find=_corpus_finder, bridge=planted, precision="bf16",
                                   up_to=True))  # L1H0 has no adversarial examples
    thr, pool = cfg.threshold_values(), heads_and_mlps(planted.cfg)
    for e in suite.examples(kind="natural"):
        d = real_dla(planted, e.tokens[None], components=pool)
        assert float(d.ld[0]) > thr.margin
        assert int(magnitude_rank(d.values[0], pool.index(parse_component(e.target, planted.cfg)))) <= thr.top_k
    assert suite.examples(kind="natural")
    overruled = sum(suite.manifest["build"][s]["natural_overruled_by_fp32"] for s in ("dev", "test"))
    assert overruled > 0


def test_small_models_screen_in_fp32_whatever_is_asked(tiny_gqa, monkeypatch):
    """Below MIN_BF16_PARAMETERS a bf16 screen is the fp32 model itself, and records say fp32."""
    import advdla.precision
    from advdla.precision import effective_precision

    monkeypatch.setattr(advdla.precision, "MIN_BF16_PARAMETERS", REAL_FLOOR)
    assert sum(p.numel() for p in tiny_gqa.parameters()) < REAL_FLOOR
    assert screening_model(tiny_gqa, "bf16") is tiny_gqa
    assert effective_precision(tiny_gqa, "bf16") == "fp32"
    target = parse_component("L1H0", tiny_gqa.cfg)
    assert Evaluator(tiny_gqa, target, torch.zeros(2, 8, dtype=torch.long), precision="bf16").precision == "fp32"
