"""The GPU path: ground truth computed on CUDA equals the CPU's within 1e-4 (issue 15).

Every stage keeps its tensors on the model's device (``check_tokens`` moves prompts there; a suite's stored t1, t2
are moved too) and hands results back on the CPU, so the same call works on either and only float rounding
differs. Skipped where no CUDA GPU is visible; ``benchmarks/device_check.sh`` times the same on a GPU.
"""

from __future__ import annotations

import pytest
import torch

from advdla.corpus import TokenWindows, disjoint_resamples, load_corpus
from advdla.models import load_model
from advdla.suites.store import VALUE_COLUMNS
from advdla.suites.truth import ground_truth, panel_candidates

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="no CUDA GPU visible (torch.cuda.is_available() is False): nothing to compare")

TOL = 1e-4


def _prompts(bridge, n: int = 3, seq_len: int = 16):
    windows = TokenWindows(load_corpus("builtin"), bridge.tokenizer)
    tokens, docs = windows.sample(seq_len, n, seed=3)
    resamples = disjoint_resamples(windows, seq_len, [4], seed=4, exclude=set(docs))[0]
    return tokens, resamples


@pytest.mark.parametrize("model", ["planted-erasure", "tiny-gpt2", "tiny-llama-gqa"])
def test_cuda_ground_truth_matches_cpu(model):
    cpu, gpu = load_model(model), load_model(model, device="cuda")
    assert gpu.W_U.device.type == "cuda"
    tokens, resamples = _prompts(cpu)
    panel = panel_candidates(cpu.cfg)
    for prompt in tokens:
        want = ground_truth(cpu, prompt, resamples, panel)
        got = ground_truth(gpu, prompt, resamples, panel)
        assert (got.t1, got.t2) == (want.t1, want.t2)
        assert got.ld == pytest.approx(want.ld, abs=TOL)
        for column in VALUE_COLUMNS:
            a, b = getattr(got, column), getattr(want, column)
            assert a.device.type == "cpu", f"{column} came back on {a.device}"
            assert torch.allclose(a, b, atol=TOL, rtol=0), f"{model} {column}: max diff {(a - b).abs().max():.2e}"
        # t1, t2 given (as a suite's verify does), from the CPU, to a model on the GPU
        again = ground_truth(gpu, prompt, resamples, panel, t1=want.t1, t2=want.t2)
        assert torch.allclose(again.te_mean, want.te_mean, atol=TOL, rtol=0)
