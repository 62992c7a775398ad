"""Scoring time of every registered method as a ratio to one ground-truth computation of the same examples.

Baseline: :func:`advdla.suites.ground_truth` (DLA, TE, DE and zero-ablation over R_truth = 8 resamples, every
head and MLP in the panel, as a v3 suite computes it) for each of N examples. Each method then runs through the
scoring harness (:func:`advdla.scoring.run_method`, default options, R_method = 4 resamples) on the same
examples. No goal: the ratio is what the leaderboard's cost column means (AtP should cost a small fraction of
the truth; exact and IG-like methods a multiple of it). Run once per model; speed is never asserted.
"""

from __future__ import annotations

import pytest

from benchmarks.conftest import TIMES, add_ratio, record_time

GROUP = "methods / truth"
N, SEQ, R_TRUTH, R_METHOD = 4, 16, 8, 4


@pytest.fixture(scope="module")
def prompts(bench_model):
    from advdla.corpus import TokenWindows, disjoint_resamples, load_corpus

    windows = TokenWindows(load_corpus(), bench_model.tokenizer)
    tokens, docs = windows.sample(SEQ, N, seed=0)
    sets = [disjoint_resamples(windows, SEQ, [R_TRUTH, R_METHOD], seed=100 + i, exclude=set(docs)) for i in range(N)]
    return tokens, sets


def _truths(bridge, prompts):
    from advdla.suites import ground_truth
    from advdla.suites.truth import panel_candidates

    tokens, sets = prompts
    return [ground_truth(bridge, tokens[i], sets[i][0], panel_candidates(bridge.cfg)) for i in range(N)]


@pytest.fixture(scope="module")
def examples(bench_model, prompts):
    from advdla.suites import Example

    tokens, sets = prompts
    return [Example(example_id=f"bench-{i}", split="dev", kind="natural", text="", tokens=tokens[i],
                    resamples=sets[i][0], method_resamples=sets[i][1], target=truth.panel[0], truth=truth)
            for i, truth in enumerate(_truths(bench_model, prompts))]


def test_ground_truth_baseline(benchmark, bench_model, prompts, examples):
    benchmark.pedantic(lambda: _truths(bench_model, prompts), rounds=2, iterations=1, warmup_rounds=0)
    record_time(GROUP, "baseline", benchmark)


def _names():
    from advdla.methods import available_methods

    return [n for n, spec in available_methods().items() if not spec.uses_truth]


@pytest.mark.parametrize("name", _names())
def test_method_vs_truth(benchmark, bench_model, examples, name):
    from advdla.scoring import run_method

    run = benchmark.pedantic(lambda: run_method(bench_model, name, examples, batch_size=N), rounds=1, iterations=1,
                             warmup_rounds=0)
    assert run.error is None and len(run.estimates) == N
    ratio = record_time(GROUP, name, benchmark) / TIMES[(GROUP, "baseline")]
    add_ratio(GROUP, f"{name} / ground truth ({N} x {SEQ} tok, R {R_METHOD} vs {R_TRUTH})", ratio, "(report)", True)
