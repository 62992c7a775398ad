"""Exact per-head ground truth: advdla's batched, layer-skipping path vs one forward per patch.

Baseline: what TransformerLens' generic patching loop does, one full hooked forward per (head, resample),
each splicing the head's resample activation (computed once, batched) into the clean run. Fast path:
:func:`advdla.patching.total_effects`. Both compute the same numbers (asserted within 1e-4).
Goal: at least 5x faster.
"""

from __future__ import annotations

import pytest
import torch

from benchmarks.conftest import add_ratio, record_time

GROUP = "ground-truth (TE)"
SEQ_LEN, R = 32, 2


@pytest.fixture(scope="module")
def case(bench_model):
    from advdla.components import head_components

    g = torch.Generator().manual_seed(0)
    vocab = bench_model.cfg.d_vocab
    tokens = torch.randint(0, vocab, (1, SEQ_LEN), generator=g)
    resamples = torch.randint(0, vocab, (R, SEQ_LEN), generator=g)
    heads = head_components(bench_model.cfg)
    if len(heads) > 64:  # the loop is slow: every third layer on big models (still spans the depth evenly)
        heads = [h for h in heads if h.layer % 3 == 0]
    return tokens, resamples, heads


def loop_effects(bridge, tokens, resamples, heads):
    """One full forward per (resample, head): the obvious implementation."""
    from advdla.patching import run_cached

    with torch.inference_mode():
        clean = run_cached(bridge, tokens, set())
        names = {f"blocks.{h.layer}.attn.hook_z" for h in heads}
        src = bridge.run_with_cache(resamples, names_filter=lambda n: n in names)[1]
        out = torch.empty(R, len(heads))
        for r in range(R):
            for i, h in enumerate(heads):
                def splice(z, hook, h=h, r=r):
                    z[:, :, h.head] = src[hook.name][r, :, h.head]
                    return z
                logits = bridge.run_with_hooks(tokens, fwd_hooks=[(f"blocks.{h.layer}.attn.hook_z", splice)])
                out[r, i] = clean.ld[0] - (logits[0, -1, clean.t1[0]] - logits[0, -1, clean.t2[0]])
    return out


def test_ground_truth_baseline(benchmark, bench_model, case):
    tokens, resamples, heads = case
    result = benchmark.pedantic(loop_effects, args=(bench_model, tokens, resamples, heads), rounds=1, iterations=1)
    record_time(GROUP, "baseline", benchmark)
    case_results["baseline"] = result


def test_ground_truth_fast(benchmark, bench_model, case):
    from advdla.patching import total_effects

    tokens, resamples, heads = case
    effects = benchmark.pedantic(lambda: total_effects(bench_model, tokens, resamples, heads, batch_size=64),
                                 rounds=3, iterations=1)
    fast = record_time(GROUP, "fast", benchmark)
    baseline = case_results.get("baseline")
    if baseline is not None:
        assert torch.allclose(effects.per_resample[0], baseline, atol=1e-4)
        ratio = _times_baseline() / fast
        add_ratio(GROUP, f"loop / batched ({len(heads)} heads x R={R}, {SEQ_LEN} tok)", ratio, ">= 5x", ratio >= 5)


case_results: dict[str, torch.Tensor] = {}


def _times_baseline() -> float:
    from benchmarks.conftest import TIMES

    return TIMES[(GROUP, "baseline")]
