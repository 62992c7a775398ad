"""Search throughput: candidates scored per second, batched vs one candidate per forward; the sampler's share.

The search scores every candidate for the target's DLA, rank and TE over R fixed resamples
(:class:`advdla.search.evaluate.Evaluator`). Baseline: the same evaluator called on one candidate at a time.
Also a short real search (TPE) on the benchmark model, reporting the fraction of wall time spent inside
Optuna's ask(): goal at most 10%.
"""

from __future__ import annotations

import pytest
import torch

from benchmarks.conftest import TIMES, add_ratio, record_time

GROUP = "search"
N, SEQ, R = 32, 24, 4


@pytest.fixture(scope="module")
def evaluator_case(bench_model):
    from advdla.components import head_components
    from advdla.search.evaluate import Evaluator

    g = torch.Generator().manual_seed(0)
    resamples = torch.randint(0, bench_model.cfg.d_vocab, (R, SEQ), generator=g)
    candidates = torch.randint(0, bench_model.cfg.d_vocab, (N, SEQ), generator=g)
    heads = head_components(bench_model.cfg)
    target = heads[len(heads) * 3 // 4]  # a late-ish head, like the ones auto picks
    return Evaluator(bench_model, target, resamples), candidates


def test_one_candidate_per_forward(benchmark, evaluator_case):
    evaluate, candidates = evaluator_case
    benchmark.pedantic(lambda: [evaluate(candidates[i:i + 1]) for i in range(N)], rounds=1, iterations=1)
    record_time(GROUP, "baseline", benchmark)


def test_batched_candidates(benchmark, evaluator_case):
    evaluate, candidates = evaluator_case
    batched = benchmark.pedantic(lambda: evaluate(candidates), rounds=2, iterations=1)
    one = evaluate(candidates[:1])
    assert torch.allclose(batched.te_mean[:1], one.te_mean, atol=1e-4)
    fast = record_time(GROUP, "fast", benchmark)
    ratio = TIMES[(GROUP, "baseline")] / fast
    add_ratio(GROUP, f"candidates/s batched / one per forward ({N} cand.)", ratio, "info (> 1)", ratio > 1)
    add_ratio(GROUP, "batched candidates per second", N / fast, "info", True)


def test_sampler_share(benchmark, bench_model, tmp_path):
    from advdla.search import SearchConfig, run_search

    heads_per_layer = bench_model.cfg.n_heads
    target = f"L{bench_model.cfg.n_layers - 2}H{heads_per_layer // 2}"
    config = SearchConfig(target=target, trials=64, batch=16, resamples=2, seq_len=SEQ, n_base=16, max_verify=1)
    result = benchmark.pedantic(lambda: run_search(bench_model, config, out_dir=tmp_path / "s"), rounds=1, iterations=1)
    share = float(result.summary["sampler_share"])
    add_ratio(GROUP, "Optuna sampler share of search wall time (TPE, 64 trials)", share, "<= 0.10", share <= 0.10)
