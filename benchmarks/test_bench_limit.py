"""Against the limit: ground truth per example as a fraction of this machine's dense-matmul rate; scoring cost of
every built-in method on the planted suite's dev split as a ratio to the truth of the same examples.

(a) The FLOPs the exact truth needs (:func:`truth_flops`): a suite example's truth (:func:`advdla.suites.
ground_truth`, every head and MLP in the panel, R resamples of P tokens) needs one clean forward, R resample
forwards (their outputs are what gets spliced in) and, per panel component c at layer l, R + 1 patched forwards
(R resamples for TE, one zero for te_zero) that resume at block l and stop at the final norm: the fast path of
:mod:`advdla.patching` skips blocks 0..l-1. DE and DLA need no forward of their own (the cached outputs read
through the unembedding direction). A block on P tokens costs 2 x (its weights' multiply-adds) x P plus the
attention scores (4 P^2 d_head per head). Divided by the measured time and by the rate of ``torch.mm`` at the
shape of the patched forwards' MLP matmul (64 rows x P tokens, d_model x d_mlp), in the same run, on the same
threads: the fraction of the machine's dense-matmul limit that the truth reaches (goal >= 70%). The
breakdown per stage says where the time goes.

(b) Baseline: the ground truth of the planted suite's dev examples (their own resamples and panels). Each
method runs through the scoring harness on the same examples (the methods' resamples). Reported, not a goal.
Skipped when the suite is not built (``advdla suite build suites/planted-erasure.yaml``).

Run: ``ADVDLA_BENCH_MODEL=planted-erasure python -m pytest benchmarks/test_bench_limit.py -p no:randomly
--benchmark-only`` (smollm2-135m, the default model, measures 2 examples for (a)).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import torch

from benchmarks.conftest import DEVICE, MODEL, TIMES, add_ratio, record_time

ROOT = Path(__file__).resolve().parents[1]
GROUP, SCORING = "truth vs matmul limit", "methods / truth (planted dev)"
SEQ, R, BATCH = 16, 8, 64  # as the v3 suites: 16 tokens, R_truth = 8; the patching batch of ground_truth
SMALL = MODEL in ("planted-erasure", "tiny-gpt2", "tiny-llama-gqa")
N = int(os.environ.get("ADVDLA_BENCH_EXAMPLES", "8" if SMALL else "2"))
ROUNDS, WARMUP = (2, 1) if SMALL else (1, 0)  # a SmolLM2 truth takes about a minute per example on two CPU cores
SUITE = Path(os.environ.get("ADVDLA_BENCH_SUITE", ROOT / "suites" / "planted-erasure"))


def block_flops(cfg, pos: int) -> int:
    """Dense FLOPs of one transformer block on ``pos`` tokens (2 per multiply-add; norms and softmax left out)."""
    d, heads, d_head = cfg.d_model, cfg.n_heads, cfg.d_head
    kv = getattr(cfg, "n_key_value_heads", None) or heads
    proj = d * heads * d_head * 2 + d * kv * d_head * 2  # Q and O; K and V (shared by a group under GQA)
    mlp = d * cfg.d_mlp * (3 if getattr(cfg, "gated_mlp", False) else 2)
    return 2 * (proj + mlp) * pos + 4 * pos * pos * d_head * heads


def truth_flops(cfg, panel, *, pos: int, resamples: int) -> dict[str, int]:
    """What one example's exact truth needs, by part (see the module docstring)."""
    block = block_flops(cfg, pos)
    resumed = sum(cfg.n_layers - c.layer for c in panel) * block  # one patched forward of every component
    return {"clean": cfg.n_layers * block, "resamples": resamples * cfg.n_layers * block,
            "te": resamples * resumed, "te_zero": resumed}


@pytest.fixture(scope="module")
def case(bench_model):
    from advdla.corpus import TokenWindows, disjoint_resamples, load_corpus
    from advdla.suites.truth import panel_candidates

    windows = TokenWindows(load_corpus(), bench_model.tokenizer)
    tokens, docs = windows.sample(SEQ, N, seed=0)
    sets = [disjoint_resamples(windows, SEQ, [R], seed=100 + i, exclude=set(docs))[0] for i in range(N)]
    return tokens, sets, panel_candidates(bench_model.cfg)


def _sync() -> None:
    if DEVICE.startswith("cuda"):
        torch.cuda.synchronize()


def test_matmul_rate(benchmark, bench_model):
    cfg = bench_model.cfg
    a = torch.randn(BATCH * SEQ, cfg.d_model, device=DEVICE)
    b = torch.randn(cfg.d_model, cfg.d_mlp, device=DEVICE)

    def run():
        for _ in range(20):
            torch.mm(a, b)
        _sync()

    benchmark.pedantic(run, rounds=10, iterations=1, warmup_rounds=2)
    seconds = record_time(GROUP, "matmul", benchmark) / 20
    TIMES[(GROUP, "matmul_flops_per_s")] = 2 * a.shape[0] * a.shape[1] * b.shape[1] / seconds


def _truths(bridge, case):
    from advdla.suites import ground_truth

    tokens, sets, panel = case
    out = [ground_truth(bridge, tokens[i], sets[i], panel) for i in range(N)]
    _sync()
    return out


def test_truth_fraction_of_matmul_limit(benchmark, bench_model, case):
    flops = truth_flops(bench_model.cfg, case[2], pos=SEQ, resamples=R)
    benchmark.pedantic(lambda: _truths(bench_model, case), rounds=ROUNDS, iterations=1, warmup_rounds=WARMUP)
    per_example = record_time(GROUP, "truth", benchmark) / N
    rate = TIMES[(GROUP, "matmul_flops_per_s")]
    fraction = sum(flops.values()) / per_example / rate
    TIMES[(GROUP, "truth_gflop_per_example")] = sum(flops.values()) / 1e9
    add_ratio(GROUP, f"truth FLOP rate / torch.mm rate ({N} x {SEQ} tok, R {R}, {DEVICE})", fraction, ">= 0.7",
              fraction >= 0.7)
    stages = _stage_times(bench_model, case)
    shared, apart = stages.pop("te + de + zero (truth_effects)"), stages.pop("te, de, zero apart (3 calls)")
    add_ratio(GROUP, "te + de + zero: shared runs (truth_effects) / three calls apart", shared / apart, "<= 1",
              shared <= apart)
    for stage, seconds in {"te + de + zero (truth_effects)": shared, **stages}.items():
        add_ratio(GROUP, f"{stage} / truth time", seconds / per_example, "(report)", True)


def _stage_times(bridge, case) -> dict[str, float]:
    """Seconds per example in each call of :func:`advdla.suites.ground_truth` (one pass over the examples), and
    in one plain forward of the prompt: a truth makes 6 forwards (DLA's, the clean and resample runs, 2 + 1
    patched batches on small models), so where that forward's time is a large share, overhead, not FLOPs, rules."""
    from advdla.attribution import dla
    from advdla.patching import direct_effects, total_effects, truth_effects, zero_effects

    tokens, sets, panel = case
    stages = {"dla (1 forward)": lambda t, r: dla(bridge, t, components=panel),
              "te + de + zero (truth_effects)": lambda t, r: truth_effects(bridge, t, r, panel),
              "te, de, zero apart (3 calls)": lambda t, r: (total_effects(bridge, t, r, panel),
                                                            direct_effects(bridge, t, r, panel),
                                                            zero_effects(bridge, t, panel)),
              "zero ablation alone (2 forwards)": lambda t, r: zero_effects(bridge, t, panel)}
    out = {}
    for name, run in stages.items():
        start = time.perf_counter()
        for i in range(N):
            run(tokens[i][None], sets[i])
        _sync()
        out[name] = (time.perf_counter() - start) / N
    return out


# ------------------------------------------------------------------------------ (b) scoring on the planted suite


@pytest.fixture(scope="module")
def planted_dev():
    if not (SUITE / "manifest.json").is_file():
        pytest.skip(f"no suite at {SUITE}: build it with `advdla suite build suites/planted-erasure.yaml`")
    from advdla.scoring import open_suite, split_examples

    suite, model = open_suite(SUITE, device=DEVICE)
    return model, split_examples(suite, "dev")


def _dev_truths(model, examples):
    from advdla.components import parse_component
    from advdla.suites import ground_truth

    out = [ground_truth(model, e.tokens, e.resamples, [parse_component(c, model.cfg) for c in e.truth.panel])
           for e in examples]
    _sync()
    return out


def test_planted_dev_truth_baseline(benchmark, planted_dev):
    model, examples = planted_dev
    got = benchmark.pedantic(lambda: _dev_truths(model, examples), rounds=2, iterations=1, warmup_rounds=1)
    record_time(SCORING, "baseline", benchmark)
    err = max(float((g.te_mean - e.truth.te_mean).abs().max()) for g, e in zip(got, examples, strict=True))
    assert err < 1e-4, f"recomputed truth differs from the suite's by {err:.2e}"


def _method_names():
    from advdla.methods import available_methods

    return [n for n, spec in available_methods().items() if not spec.uses_truth]


@pytest.mark.parametrize("name", _method_names())
def test_planted_dev_method_vs_truth(benchmark, planted_dev, name):
    from advdla.scoring import run_method

    model, examples = planted_dev
    run = benchmark.pedantic(lambda: run_method(model, name, examples, batch_size=8), rounds=1, iterations=1,
                             warmup_rounds=1)
    assert run.error is None and len(run.estimates) == len(examples)
    ratio = record_time(SCORING, name, benchmark) / TIMES[(SCORING, "baseline")]
    add_ratio(SCORING, f"{name} / truth ({len(examples)} dev examples, {DEVICE})", ratio, "(report)", True)
