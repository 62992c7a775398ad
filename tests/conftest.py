"""Shared fixtures. Models load once per session; ``advdla_home`` points ADVDLA_HOME at an empty folder."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module's tests (``pytestmark = pytest.mark.usefixtures("one_thread")``): tiny models on
    a shared 2-core machine run ~50x faster on one thread than on two fighting for the cores."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny():
    """The seeded random 2-layer GPT-2 (every hook), loaded once per session. Do not modify it."""
    from advdla.models import load_model

    return load_model("tiny-gpt2")


@pytest.fixture(scope="session")
def tiny_gqa():
    """The seeded random 2-layer Llama with grouped-query attention, loaded once per session."""
    from advdla.models import load_model

    return load_model("tiny-llama-gqa")


@pytest.fixture(scope="session")
def tiny_gemma():
    """The seeded random 3-layer Gemma 3 (sandwich norms with random weights, 1 kv head, a sliding window of 4
    positions on layers 0-1, BOS), loaded once per session."""
    from advdla.models import load_model

    return load_model("tiny-gemma3")


@pytest.fixture
def advdla_home(tmp_path, monkeypatch):
    """An empty ADVDLA_HOME for one test (the cache folder it would write to)."""
    home = tmp_path / "advdla-home"
    monkeypatch.setenv("ADVDLA_HOME", str(home))
    return home


# ------------------------------------------------------------------ a tiny in-memory suite on planted ground truth


@pytest.fixture(scope="session")
def planted():
    """The planted-erasure model (L0H1 writes, L1H2 erases it, L2H0 honest), loaded once per session."""
    from advdla.models import load_model

    return load_model("planted-erasure")


def build_planted_suite(bridge, *, n_adversarial=8, n_natural=8, n_tokens=12, n_resamples=3, seed=0):
    """A suite-shaped object (``.examples``: typed :class:`advdla.suites.Example` list; ``.manifest``) from ground
    truth computed on the planted model. Adversarial examples target the erased writer, natural ones the honest
    head; splits alternate dev/test. Every head and MLP is in every panel (12 + 3), as in a v3 suite."""
    from types import SimpleNamespace

    from advdla.corpus import TokenWindows, disjoint_resamples, load_corpus
    from advdla.criteria import Thresholds
    from advdla.models.planted import PLANTED
    from advdla.suites import Example, ground_truth
    from advdla.suites.truth import panel_candidates, target_mechanism

    windows = TokenWindows(load_corpus(), bridge.tokenizer)
    n = n_adversarial + n_natural
    prompts, docs = windows.sample(n_tokens, n, seed=seed)
    examples = []
    for i in range(n):
        kind = "adversarial" if i < n_adversarial else "natural"
        res, method_res = disjoint_resamples(windows, n_tokens, [n_resamples, n_resamples], seed=seed + 1000 + i,
                                             exclude=set(docs))
        truth = ground_truth(bridge, prompts[i], res, panel_candidates(bridge.cfg))
        target = PLANTED.writer if kind == "adversarial" else PLANTED.honest
        label = target_mechanism(truth, target, Thresholds(margin=0.5)) if kind == "adversarial" else "none"
        examples.append(Example(example_id=f"planted-{i:03d}", split=("dev", "test")[i % 2], kind=kind,
                                text=bridge.tokenizer.decode(prompts[i].tolist()), tokens=prompts[i], resamples=res,
                                method_resamples=method_res, target=target, truth=truth, mechanism=label,
                                source_doc=docs[i]))
    manifest = {
        "name": "planted-test",
        "version": "0.0.1",
        "fingerprint": f"test-{seed}-{n}",
        "model": "planted-erasure",
        "thresholds": {},
    }
    return SimpleNamespace(examples=examples, manifest=manifest)


@pytest.fixture(scope="session")
def planted_suite(planted):
    """16 planted examples (8 adversarial on the writer, 8 natural on the honest head), built once per session."""
    return build_planted_suite(planted)
