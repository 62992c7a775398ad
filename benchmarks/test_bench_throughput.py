"""Against the limit: the evaluation path's throughput vs a plain Hugging Face forward vs dense matmul.

FLOPs are counted as 2 x parameters x tokens for the forwards and 2 n^3 for torch.mm (n = 2048), all
measured in this run. The evaluation path is what the search and the suites run for every candidate:
:func:`advdla.attribution.dla` over all components (a forward with the hooks it reads, per-head outputs
computed at the last position only). Goal: at least 90% of the plain forward's throughput.
"""

from __future__ import annotations

import pytest
import torch

from benchmarks.conftest import MODEL, TIMES, add_ratio, record_time

GROUP = "throughput"
BATCH, SEQ = (32, 64)


@pytest.fixture(scope="module")
def tokens(bench_model):
    return torch.randint(
        0, bench_model.cfg.d_vocab, (BATCH, min(SEQ, bench_model.cfg.n_ctx)), generator=torch.Generator().manual_seed(0)
    )


@pytest.fixture(scope="module")
def plain_hf(bench_model):
    """The same weights as a plain HF model, without the bridge (a fresh copy: the bridge folds its own)."""
    from advdla.models import MODELS

    hf, _, _ = MODELS[MODEL].load("cpu", torch.float32) if MODEL in MODELS else (None, None, None)
    return hf.eval()


def _n_params(hf) -> int:
    return sum(p.numel() for p in hf.parameters())


def test_matmul(benchmark):
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    benchmark.pedantic(torch.mm, args=(a, b), rounds=5, iterations=1, warmup_rounds=1)
    record_time(GROUP, "mm", benchmark)


def test_plain_hf_forward(benchmark, plain_hf, tokens):
    def run():
        with torch.inference_mode():
            return plain_hf(tokens).logits

    benchmark.pedantic(run, rounds=3, iterations=1, warmup_rounds=1)
    record_time(GROUP, "plain", benchmark)


def test_bridge_all_hooks(benchmark, bench_model, tokens):
    """The bridge as configured for analysis (per-head results, split q/k/v inputs), caching every DLA hook."""
    from advdla.attribution import hook_names
    from advdla.components import all_components

    names = {n.replace("hook_z", "hook_result") for n in hook_names(all_components(bench_model.cfg))}

    def run():
        with torch.inference_mode():
            return bench_model.run_with_cache(tokens, names_filter=lambda n: n in names)

    benchmark.pedantic(run, rounds=3, iterations=1, warmup_rounds=1)
    record_time(GROUP, "bridge-full", benchmark)


def test_evaluation_path(benchmark, bench_model, plain_hf, tokens):
    from advdla.attribution import decomposition_error, dla

    result = benchmark.pedantic(lambda: dla(bench_model, tokens), rounds=3, iterations=1, warmup_rounds=1)
    assert decomposition_error(result) < 1e-4
    record_time(GROUP, "eval", benchmark)
    flops = 2 * _n_params(plain_hf) * tokens.numel()
    gflops = {k: flops / TIMES[(GROUP, k)] / 1e9 for k in ("plain", "bridge-full", "eval") if (GROUP, k) in TIMES}
    mm = 2 * 2048**3 / TIMES[(GROUP, "mm")] / 1e9
    add_ratio(GROUP, f"torch.mm GFLOP/s (measured {mm:.0f})", 1.0, "reference", True)
    add_ratio(GROUP, f"plain HF forward / mm ({gflops['plain']:.0f} GFLOP/s)", gflops["plain"] / mm, "info", True)
    add_ratio(
        GROUP,
        f"bridge, all hooks / plain ({gflops['bridge-full']:.0f} GFLOP/s)",
        gflops["bridge-full"] / gflops["plain"],
        "info",
        True,
    )
    ratio = gflops["eval"] / gflops["plain"]
    add_ratio(GROUP, f"evaluation path / plain ({gflops['eval']:.0f} GFLOP/s)", ratio, ">= 0.90", ratio >= 0.9)
