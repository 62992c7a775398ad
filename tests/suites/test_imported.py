"""Examples taken over from the shipped planted suite: cut panels keep the shipped truth exactly, and ``advdla run``
with a shipped suite scores its rows beside its own and says how many come from where."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from advdla.components import parse_component
from advdla.errors import AdvdlaError
from advdla.pipeline import SUITES_DIR, plan_run, run_pipeline
from advdla.suites import PanelPolicy, load_suite, verify_suite
from advdla.suites.imported import import_examples, shipped_suite
from advdla.suites.store import VALUE_COLUMNS

SHIPPED = SUITES_DIR / "planted-erasure"


def test_shipped_suite_is_found_by_model_name(tmp_path):
    assert shipped_suite("planted-erasure", SUITES_DIR) == SHIPPED
    assert shipped_suite("tiny-gpt2", SUITES_DIR) is None
    assert shipped_suite("planted-erasure", SUITES_DIR, seq_len=999) is None  # auto takes only a suite that fits
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "manifest.json").write_text("{")  # a damaged folder is skipped, not fatal
    assert shipped_suite("planted-erasure", tmp_path) is None
    assert shipped_suite("smollm2-135m", SUITES_DIR, seq_len=16) == SUITES_DIR / "smollm2-135m-erasure"  # 40 > 6


def test_the_shipped_suite_with_the_most_dev_examples_wins(tmp_path):
    """Two suites of one model: the larger one, even at a lower version; at equal size, the higher version."""
    from unittest import mock

    def suite(name: str, n_dev: int, version: int) -> None:
        (tmp_path / name).mkdir()
        (tmp_path / name / "manifest.json").write_text("{}")
        manifests[name] = {"model": "m", "version": version, "config": {"seq_len": 16},
                           "splits": {"dev": {"adversarial": n_dev, "natural": 1}}}

    manifests: dict[str, dict] = {}
    suite("a-big", 40, 1)
    suite("b-small", 6, 3)
    with mock.patch("advdla.suites.imported.read_manifest", lambda path: manifests[path.name]):
        assert shipped_suite("m", tmp_path) == tmp_path / "a-big"
        manifests["b-small"]["splits"]["dev"]["adversarial"] = 40
        assert shipped_suite("m", tmp_path) == tmp_path / "b-small"
        del manifests["b-small"]["splits"]  # a damaged manifest is skipped, not a crash of `advdla run`
        assert shipped_suite("m", tmp_path) == tmp_path / "a-big"


def test_cut_panel_keeps_the_shipped_truth_and_labels(planted):
    full = {e.example_id: e for e in load_suite(SHIPPED).examples(split="dev")}
    cut, info = import_examples(SHIPPED, planted, split="dev", policy=PanelPolicy(min_layer=1), seq_len=16,
                                max_per_kind=5)
    assert info["adversarial"] == 5 and info["natural"] == 5 and info["fingerprint"] == load_suite(SHIPPED).fingerprint
    for e in cut:
        before = full[e.example_id]
        layers = {parse_component(name, planted.cfg).layer for name in e.truth.panel if name != e.target}
        assert layers == {1, 2} and e.target in e.truth.panel  # layer 0 dropped, the target (L0H1) kept
        for col in VALUE_COLUMNS:
            want = [before.truth.value(col, name) for name in e.truth.panel]
            assert torch.equal(getattr(e.truth, col), torch.tensor(want, dtype=torch.float64)), col
        assert e.mechanism == before.mechanism and torch.equal(e.resamples, before.resamples)


def test_import_refuses_other_weights_and_lengths(planted):
    other = SimpleNamespace(cfg=planted.cfg, advdla_card=SimpleNamespace(weights_fingerprint="0" * 64, name="x"))
    with pytest.raises(AdvdlaError, match="on weights 9d84e1a01233, and planted-erasure has weights 000000000000"):
        import_examples(SHIPPED, other, split="dev", policy=PanelPolicy(), seq_len=16)
    with pytest.raises(AdvdlaError, match="16-token prompts"):
        import_examples(SHIPPED, planted, split="dev", policy=PanelPolicy(), seq_len=12)


def test_plan_takes_the_shipped_suites_resample_counts():
    plan = plan_run("planted-erasure", out="x", shipped="auto")
    assert Path(plan.shipped) == SHIPPED and (plan.resamples, plan.method_resamples, plan.n_test) == (8, 4, 0)
    assert plan.params()["ig"]["steps"] == 2 and plan_run("planted-erasure", out="x", quick=True).params()["ig"] == {
        "steps": 1}  # half the points of a run without a shipped suite (4 and 2)
    assert plan_run("planted-erasure", out="x", shipped="none").shipped == "none"
    assert Path(plan_run("planted-erasure", out="x").shipped) == SHIPPED  # auto is the default
    assert plan_run("tiny-gpt2", out="x").shipped == "none"  # a model without a shipped suite: the run's own rows
    with pytest.raises(AdvdlaError, match="not of tiny-gpt2"):
        plan_run("tiny-gpt2", out="x", shipped=str(SHIPPED))


@pytest.fixture(scope="module")
def shipped_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run-shipped")
    plan = plan_run("planted-erasure", out=str(out), quick=True, shipped="auto")
    plan = dataclasses.replace(plan, prompts=4, trials=16, batch=8, n_dev=4, methods="exact-te,dla,random",
                               shipped_max=6)
    return out, run_pipeline(plan)


def test_run_with_a_shipped_suite_scores_both(shipped_run, planted):
    out, outputs = shipped_run
    suite = load_suite(outputs.paths["suite"])
    imported = suite.manifest["build"]["dev"]["imported"]
    assert imported["suite"] == "planted-erasure" and imported["adversarial"] == 6 and imported["natural"] == 6
    dev = suite.examples(split="dev")
    # the test split is the shipped suite's test rows (the run searches dev only): the verdict can test replication
    test_imported = suite.manifest["build"]["test"]["imported"]
    assert test_imported["split"] == "test" and suite.manifest["splits"]["test"]["adversarial"] == 6
    shipped_ids = {e.example_id for e in load_suite(SHIPPED).examples(split="dev")}
    assert sum(e.example_id in shipped_ids for e in dev) == 12
    assert all(e.resamples.shape[0] == 8 and e.method_resamples.shape[0] == 4 for e in dev)  # the shipped R
    assert "from the shipped planted-erasure v3" in outputs.notes["rows"]
    records = json.loads((out / "results" / "scores.json").read_text())
    assert {r["method"]["name"] for r in records} == {"exact-te", "dla", "random", "split-half"}
    assert {r["split"] for r in records} == {"dev", "test"}
    verify_suite(outputs.paths["suite"], sample=2, bridge=planted)  # re-derives sampled rows, imported ones included
