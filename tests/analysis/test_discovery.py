"""Writer and eraser discovery, the auto target and the search on planted-erasure variants none of the code was
tuned on: other seeds, layer counts, head counts, contexts, a word-level tokenizer, a writer whose signed mean DLA is
near zero or negative, and a decoy head whose output is anti-correlated with the writer's but never reads it."""

from __future__ import annotations

import pytest

from advdla.analysis import analyze, sample_prompts
from advdla.components import parse_component
from advdla.models import load_planted
from advdla.models.planted import PLANTED_WORDS_CONFIG, PlantedConfig
from advdla.search import SearchConfig, run_search

VARIANTS = {
    "default": PlantedConfig(),  # planted-erasure itself
    "words": PLANTED_WORDS_CONFIG,  # 32 positions, word-level tokenizer, own feature, decoy
    "deep": PlantedConfig(seed=2, n_layers=4, n_heads=4, n_ctx=64, writer=(1, 2), eraser=(2, 1), honest=(3, 0),
                          decoy=(3, 3), own_feature=True),
    "wide": PlantedConfig(seed=3, n_layers=3, n_heads=8, n_ctx=48, writer=(0, 5), eraser=(2, 6), honest=(2, 3),
                          decoy=(2, 1)),
}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module", params=list(VARIANTS))
def variant(request):
    bridge = load_planted(VARIANTS[request.param])
    tokens, resamples = sample_prompts(bridge, n=24, seq_len=min(24, bridge.cfg.n_ctx), resamples=2, seed=0)
    return bridge, bridge.advdla_planted, analyze(bridge, tokens, resamples, scan=True)


def test_writers_by_magnitude_name_the_planted_writer(variant):
    _, spec, a = variant
    assert a.writers[0].component in (spec.writer, spec.eraser)  # their |DLA| are equal by construction
    assert spec.writer in [w.component for w in a.writers[:2]]
    assert spec.writer in [wa.writer for wa in a.analyses]


def test_analysis_and_scan_name_writer_to_eraser_and_never_the_decoy(variant):
    _, spec, a = variant
    pairs = {(e.writer, e.eraser, e.source) for e in a.erasers}
    assert (spec.writer, spec.eraser, "writer") in pairs and (spec.writer, spec.eraser, "scan") in pairs
    assert all(e.eraser != spec.decoy for e in a.erasers)
    assert {(e.writer, e.eraser) for e in a.erasers} == {(spec.writer, spec.eraser)}  # nothing else either
    if spec.decoy:  # tested (its PR is reliably negative) and rejected (patching leaves it as it is)
        assert a.scan["pairs_tested"] >= 2


def test_auto_target_is_the_planted_writer(variant):
    _, spec, a = variant
    assert a.targets[0]["component"] == spec.writer


def test_search_finds_verified_examples_for_the_planted_writer(variant, tmp_path):
    bridge, spec, _ = variant
    # every distinct hit is re-verified: on fresh resamples, DE (the writer's output here minus its mean output on
    # the resamples) carries the DLA only where the prompt's last-token feature differs from the resamples' mean
    cfg = SearchConfig(target="auto", trials=24, batch=8, resamples=3, seq_len=16, n_base=8, pool_size=24,
                       max_verify=24)
    result = run_search(bridge, cfg, out_dir=tmp_path)
    assert result.target == spec.writer
    assert len(result.examples) >= 1 and (result.examples["mechanism"] == "compensation").all()
    assert parse_component(result.target, bridge.cfg).kind == "head"
