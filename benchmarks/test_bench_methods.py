"""Attribution patching for every head at once vs one clean forward of the same prompts.

AtP costs a forward with a backward on the prompts plus a forward on the resamples (R = 1 here: the
"2 forwards + 1 backward" of the literature). Baseline: one plain forward of the same batch through the
bridge. Goal: AtP at most 3.5x the clean forward.
"""

from __future__ import annotations

import torch

from benchmarks.conftest import TIMES, add_ratio, record_time

GROUP = "atp (all heads)"
B, SEQ = 8, 32


def _batch(bridge):
    from advdla.attribution import top2
    from advdla.components import head_components
    from advdla.methods.base import ExampleBatch

    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, bridge.cfg.d_vocab, (B, SEQ), generator=g)
    resamples = torch.randint(0, bridge.cfg.d_vocab, (B, 1, SEQ), generator=g)
    with torch.inference_mode():
        t1, t2 = top2(bridge(tokens)[:, -1])
    heads = head_components(bridge.cfg)
    return ExampleBatch(
        tokens=tokens, resamples=resamples, t1=t1.clone(), t2=t2.clone(), panels=[heads] * B, targets=[heads[0]] * B
    )


def test_clean_forward_baseline(benchmark, bench_model):
    batch = _batch(bench_model)

    def run():
        with torch.inference_mode():
            return bench_model(batch.tokens)

    benchmark.pedantic(run, rounds=3, iterations=1, warmup_rounds=1)
    record_time(GROUP, "baseline", benchmark)


def test_atp_all_heads(benchmark, bench_model):
    from advdla.methods import get_method

    batch = _batch(bench_model)
    atp = get_method("atp")
    values = benchmark.pedantic(lambda: atp.attribute(bench_model, batch), rounds=3, iterations=1, warmup_rounds=1)
    assert values.shape == (B, batch.n_panel) and torch.isfinite(values).all()
    ratio = record_time(GROUP, "fast", benchmark) / TIMES[(GROUP, "baseline")]
    add_ratio(GROUP, f"AtP / one clean forward ({B} x {SEQ} tok, R=1)", ratio, "<= 3.5x", ratio <= 3.5)
