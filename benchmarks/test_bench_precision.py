"""bf16 screening (advdla.precision) against fp32, in one run: search candidates per second, natural-scan windows per
second, and the fast path's share of the machine's bf16 matmul rate.

(a) ``search bf16``: the search's evaluator (:class:`advdla.search.evaluate.Evaluator`) on N candidates of SEQ
tokens against R resamples, for a late head; baseline ``precision="fp32"`` (the model itself, as before the
policy), fast ``precision="bf16"`` (the bf16 screening copy). Goal: candidates per second at least 4x. For the
record, also the fp32 model with split q/k/v inputs off (``lean fp32``): how much of the gain is dropping the
per-head residual copies rather than bf16 itself.

(b) ``natural scan bf16``: the natural scan's forward (:func:`advdla.attribution.dla` over the panel's components)
on W windows; baseline on the model, fast on its bf16 copy. The scan's fp32 re-check of each window it keeps
(:mod:`advdla.suites.natural`) costs one fp32 window per kept control (40 or so of about 1,000 per split): not in
the ratio. Goal: windows per second at least 4x.

(c) ``bf16 limit``: the FLOPs of (a)'s bf16 call (the clean forward of N candidates, its unembedding at every
position for naturalness, and N x R patched rows resumed at the target's layer) over its time, divided by the rate
of ``torch.mm`` on 2048 x 2048 bf16 tensors measured in the same run. Goal: at least 40%.

Numbers must agree (bf16 within the screen's tolerance of fp32, tests/base/test_precision.py); speed is reported.
Run: ``python -m pytest benchmarks/test_bench_precision.py -p no:randomly --benchmark-only``.
"""

from __future__ import annotations

import copy

import pytest
import torch

from benchmarks.conftest import DEVICE, TIMES, add_ratio, record_time
from benchmarks.test_bench_limit import block_flops

SEARCH, SCAN, LIMIT = "search bf16", "natural scan bf16", "bf16 limit"
N, SEQ, R = 16, 24, 8  # a search batch (SearchConfig: batch 16, seq_len 24, resamples 8)
W, SCAN_SEQ = 32, 16  # a natural-scan batch (suites: 32 windows of the v3 suites' 16 tokens)
MM = 2048


def _sync() -> None:
    if DEVICE.startswith("cuda"):
        torch.cuda.synchronize()


@pytest.fixture(scope="module")
def search_case(bench_model):
    from advdla.components import head_components

    g = torch.Generator().manual_seed(0)
    resamples = torch.randint(0, bench_model.cfg.d_vocab, (R, SEQ), generator=g)
    candidates = torch.randint(0, bench_model.cfg.d_vocab, (N, SEQ), generator=g)
    heads = head_components(bench_model.cfg)
    return heads[len(heads) * 3 // 4], resamples, candidates  # a late-ish head, like the ones auto picks


def _evaluate(bridge, case, precision):
    from advdla.search.evaluate import Evaluator

    target, resamples, candidates = case
    evaluator = Evaluator(bridge, target, resamples.to(DEVICE), precision=precision)
    evaluator(candidates[:2])  # warm-up; for bf16 also the one-off copy, outside the timing
    return evaluator, candidates


def test_search_fp32(benchmark, bench_model, search_case):
    evaluate, candidates = _evaluate(bench_model, search_case, "fp32")
    benchmark.pedantic(lambda: evaluate(candidates), rounds=3, iterations=1)
    record_time(SEARCH, "baseline", benchmark)


def test_search_lean_fp32(benchmark, bench_model, search_case):
    lean = copy.deepcopy(bench_model)
    lean.set_use_split_qkv_input(False)
    evaluate, candidates = _evaluate(lean, search_case, "fp32")
    benchmark.pedantic(lambda: evaluate(candidates), rounds=3, iterations=1)
    ratio = TIMES[(SEARCH, "baseline")] / record_time(SEARCH, "lean fp32", benchmark)
    add_ratio(SEARCH, "candidates/s fp32 without split q/k/v / fp32", ratio, "(report)", True)


def test_search_bf16(benchmark, bench_model, search_case):
    evaluate, candidates = _evaluate(bench_model, search_case, "bf16")
    fast = benchmark.pedantic(lambda: evaluate(candidates), rounds=3, iterations=1)
    exact = _evaluate(bench_model, search_case, "fp32")[0](candidates)
    same = (fast.t1 == exact.t1) & (fast.t2 == exact.t2)
    assert float((fast.ld - exact.ld)[same].abs().median()) < 0.1 * float(exact.ld.abs().max())
    seconds = record_time(SEARCH, "fast", benchmark)
    ratio = TIMES[(SEARCH, "baseline")] / seconds
    add_ratio(SEARCH, f"candidates/s bf16 / fp32 ({N} cand. x {SEQ} tok, R {R})", ratio, ">= 4", ratio >= 4)
    lean = TIMES.get((SEARCH, "lean fp32"))
    if lean:
        add_ratio(SEARCH, "candidates/s bf16 / fp32 without split q/k/v", lean / seconds, "(report)", True)
    add_ratio(SEARCH, "bf16 candidates per second", N / seconds, "info", True)


@pytest.fixture(scope="module")
def scan_case(bench_model):
    from advdla.corpus import TokenWindows, load_corpus
    from advdla.suites.truth import panel_candidates

    windows = TokenWindows(load_corpus(), bench_model.tokenizer)
    return windows.sample(SCAN_SEQ, W, seed=0)[0], panel_candidates(bench_model.cfg)


def _scan(bridge, case):
    from advdla.attribution import dla

    tokens, comps = case
    out = dla(bridge, tokens, components=comps)
    _sync()
    return out


def test_scan_fp32(benchmark, bench_model, scan_case):
    benchmark.pedantic(lambda: _scan(bench_model, scan_case), rounds=3, iterations=1, warmup_rounds=1)
    record_time(SCAN, "baseline", benchmark)


def test_scan_bf16(benchmark, bench_model, scan_case):
    from advdla.precision import screening_model

    screen = screening_model(bench_model, "bf16")
    fast = benchmark.pedantic(lambda: _scan(screen, scan_case), rounds=3, iterations=1, warmup_rounds=1)
    exact = _scan(bench_model, scan_case)
    assert float((fast.ld - exact.ld).abs().median()) < 0.1 * float(exact.ld.abs().max())
    ratio = TIMES[(SCAN, "baseline")] / record_time(SCAN, "fast", benchmark)
    add_ratio(SCAN, f"windows/s bf16 / fp32 ({W} windows x {SCAN_SEQ} tok)", ratio, ">= 4", ratio >= 4)


def search_call_flops(cfg, target, *, n: int, seq: int, r: int) -> int:
    """Dense FLOPs of one evaluator call: the clean forward, its unembedding at every position, the patched rows."""
    block = block_flops(cfg, seq)
    unembed = 2 * n * seq * cfg.d_model * cfg.d_vocab
    return n * cfg.n_layers * block + unembed + n * r * (cfg.n_layers - target.layer) * block


def test_bf16_matmul_rate_and_the_search_share(benchmark, bench_model, search_case):
    a = torch.randn(MM, MM, device=DEVICE, dtype=torch.bfloat16)
    b = torch.randn(MM, MM, device=DEVICE, dtype=torch.bfloat16)

    def run():
        for _ in range(5):
            torch.mm(a, b)
        _sync()

    benchmark.pedantic(run, rounds=5, iterations=1, warmup_rounds=1)
    seconds = record_time(LIMIT, "bf16 mm", benchmark) / 5
    rate = TIMES[(LIMIT, "bf16_mm_flops_per_s")] = 2 * MM ** 3 / seconds
    add_ratio(LIMIT, f"torch.mm {MM}^3 bf16 GFLOP/s", rate / 1e9, "info", True)
    if (SEARCH, "fast") in TIMES:  # test_search_bf16 ran before, in this run
        flops = search_call_flops(bench_model.cfg, search_case[0], n=N, seq=SEQ, r=R)
        share = flops / TIMES[(SEARCH, "fast")] / rate
        add_ratio(LIMIT, "bf16 search FLOP rate / bf16 torch.mm rate", share, ">= 0.4", share >= 0.4)
