"""Scoring: intervals, the acceptance numbers on the planted suite, the harness, records, the CLI (the metrics
themselves: test_metrics.py)."""

from __future__ import annotations

import json
import math
import types

import numpy as np
import pytest
import torch

from advdla.methods import AttributionMethod, available_methods, register_method
from advdla.registry import Registry
from advdla.scoring import (
    AGAINST,
    FRAME_COLUMNS,
    SCHEMA_VERSION,
    ResultRecord,
    bootstrap_ci,
    group_difference,
    paired_interval,
    read_records,
    run_methods,
    write_records,
)


def test_cluster_bootstrap_counts_a_document_once():
    """Five copies of each of 10 documents' values: the cluster interval is that of the 10, the naive one narrower."""
    rng = np.random.default_rng(2)
    ten = rng.normal(size=10)
    values, clusters = np.repeat(ten, 5), np.repeat(np.arange(10), 5)
    naive, clustered, of_ten = bootstrap_ci(values), bootstrap_ci(values, clusters=clusters), bootstrap_ci(ten)
    assert clustered == pytest.approx(of_ten)
    assert (clustered[1] - clustered[0]) > 1.8 * (naive[1] - naive[0])


def test_cluster_bootstrap_matches_a_loop_reference():
    values = np.array([0.1, 0.5, np.nan, 0.9, 0.3, 0.7, 0.2])
    clusters = np.array(["a", "a", "b", "b", "c", "d", "d"])
    lo, hi = bootstrap_ci(values, clusters=clusters, n_boot=200, seed=4)
    ids = ["a", "b", "c", "d"]  # np.unique order; every cluster has a defined value
    draws = np.random.default_rng(4).integers(0, 4, size=(200, 4))
    means = []
    for row in draws:
        picked = [v for i in row for v, c in zip(values, clusters) if c == ids[i] and not np.isnan(v)]
        means.append(sum(picked) / len(picked))
    assert (lo, hi) == pytest.approx((np.quantile(means, 0.025), np.quantile(means, 0.975)))


def test_paired_interval_sees_a_difference_that_separate_intervals_hide():
    rng = np.random.default_rng(3)
    base = rng.normal(scale=1.0, size=40)  # large between-example spread, shared by both methods
    a, b = base + 0.2 + rng.normal(scale=0.05, size=40), base
    clusters = np.arange(40) // 2
    lo_a, hi_a = bootstrap_ci(a, clusters=clusters)
    lo_b, hi_b = bootstrap_ci(b, clusters=clusters)
    assert lo_a < hi_b  # the two methods' own intervals overlap ...
    mean, lo, hi = paired_interval(a, b, clusters)
    assert mean == pytest.approx(0.2, abs=0.05) and lo > 0  # ... the paired one excludes 0


def test_group_difference_fast_path_agrees_with_the_literal_loop():
    from advdla.scoring.stats import group_difference_reference
    rng = np.random.default_rng(5)
    for seed in range(25):
        n = int(rng.integers(4, 30))
        values = rng.normal(size=n)
        values[rng.random(n) < 0.1] = np.nan
        in_a = rng.random(n) < 0.5
        in_a[:2], values[:2] = (True, False), (1.0, 0.0)  # both groups present
        clusters = rng.integers(0, max(2, n // 3), n).astype(str)
        fast = group_difference(values, in_a, clusters, n_boot=200, seed=seed)
        assert fast == pytest.approx(group_difference_reference(values, in_a, clusters, n_boot=200, seed=seed),
                                     abs=1e-12)


def test_group_difference_shifts_with_group_a_and_sees_a_real_gap():
    rng = np.random.default_rng(7)
    values, in_a = rng.normal(size=60), np.arange(60) % 2 == 0
    clusters = np.arange(60) // 4  # each document holds adversarial and natural examples
    d0, lo0, hi0 = group_difference(values, in_a, clusters)
    d1, lo1, hi1 = group_difference(values + 0.8 * in_a, in_a, clusters)
    assert (d1 - d0, lo1 - lo0, hi1 - hi0) == pytest.approx((0.8, 0.8, 0.8))
    assert lo0 < d0 < hi0 and lo1 > 0  # a gap of 0.8 against unit noise over 15 documents is seen
    assert all(math.isnan(x) for x in group_difference(values, np.ones(60, bool), clusters))


def test_bootstrap_is_seeded_and_brackets_the_mean():
    v = np.random.default_rng(0).normal(size=50)
    lo, hi = bootstrap_ci(v, seed=3)
    assert (lo, hi) == bootstrap_ci(v, seed=3) and lo < v.mean() < hi
    assert all(math.isnan(x) for x in bootstrap_ci(np.array([np.nan])))


def test_one_document_gives_no_interval_not_a_zero_width_one():
    """Six examples from one document (a search that settled on one context): no interval; from two: one."""
    v = np.array([0.1, 0.3, 0.2, 0.6, 0.4, 0.5])
    assert all(math.isnan(x) for x in bootstrap_ci(v, clusters=np.zeros(6, int)))
    assert all(math.isnan(x) for x in bootstrap_ci(np.array([0.5])))
    assert all(math.isnan(x) for x in paired_interval(v, v - 0.2, np.zeros(6, int))[1:])
    lo, hi = bootstrap_ci(v, clusters=np.array([0, 0, 0, 1, 1, 1]))
    assert lo == pytest.approx(0.2) and hi == pytest.approx(0.5)  # the two documents' means bound it


@pytest.fixture(scope="module")
def scored(planted, planted_suite):
    examples = [e.with_split("all") for e in planted_suite.examples]
    frame, runs = run_methods(planted, ["exact-te", "random", "dla", "dla-erasure-aware"], examples, seed=0)
    assert not any(r.error for r in runs)
    return frame


def _value(frame, method, metric, kind="all", against="te"):
    sel = frame[(frame.method == method) & (frame.metric == metric) & (frame.kind == kind) & (frame.against == against)]
    assert len(sel) == 1
    return sel.iloc[0]


def test_frame_is_tidy(scored):
    assert list(scored.columns) == FRAME_COLUMNS
    assert {"adversarial", "natural", "all"} <= set(scored["kind"]) <= {"adversarial", "natural", "all", "compensation",
                                                                         "baseline", "mixed", "none"}
    against = scored.groupby("method")["against"].agg(set)  # each method against what it claims, and against TE
    assert all(against[m] == set(AGAINST[available_methods()[m].estimand]) for m in against.index)
    assert against["dla"] == {"te", "de"} and against["exact-te"] == {"te"}
    dla = scored[(scored.method == "dla") & (scored.metric == "rank_full") & (scored.against == "te")]
    n = dla.set_index("kind")["n"]
    mechanisms = [g for g in ("compensation", "baseline", "mixed", "none") if g in n]
    assert sum(n[g] for g in mechanisms) == n["adversarial"] and n["adversarial"] + n["natural"] == n["all"]
    has = scored["lo"].notna() & scored["hi"].notna()  # no interval only where fewer than 2 documents define it
    assert has[scored["kind"].isin(["adversarial", "natural", "all"]) & (scored["n"] >= 2)].all()  # a doc each here
    assert (scored["n"] < 2)[~has].all()
    s = scored[has]
    assert (s["lo"] <= s["value"] + 1e-12).all() and (s["value"] <= s["hi"] + 1e-12).all()


def test_oracle_is_perfect(scored):
    for kind in ("adversarial", "natural", "all"):
        for metric in ("mcc", "rank_full", "topk_recall", "sign_agreement", "auprc", "auroc"):
            assert _value(scored, "exact-te", metric, kind).value == pytest.approx(1.0, abs=1e-6)
        for metric in ("target_error", "false_alarm", "mae_norm"):
            assert _value(scored, "exact-te", metric, kind).value == pytest.approx(0.0, abs=1e-6)


def test_random_is_about_chance(scored):
    for metric in ("mcc", "rank_full", "auroc", "auprc", "precision"):  # 16 examples: loose; test_metrics is strict
        row = _value(scored, "random", metric)
        assert abs(row.value - row.chance) < 0.3, (metric, row.value, row.chance)


def test_dla_false_alarms_on_the_planted_writer_and_erasure_aware_dla_less(scored):
    dla = _value(scored, "dla", "false_alarm", "adversarial").value
    aware = _value(scored, "dla-erasure-aware", "false_alarm", "adversarial").value
    assert dla >= 0.75 and aware < dla
    dla_error = _value(scored, "dla", "target_error", "adversarial").value
    assert _value(scored, "dla-erasure-aware", "target_error", "adversarial").value < 0.1 < 1.0 < dla_error


class _WrongShape(AttributionMethod):
    def attribute(self, model, batch):
        return torch.zeros(len(batch), batch.n_panel - 1)


class _NaN(AttributionMethod):
    def attribute(self, model, batch):
        return torch.full((len(batch), batch.n_panel), float("nan"))


class _Raises(AttributionMethod):
    def attribute(self, model, batch):
        raise RuntimeError("boom\nsecond line")


def test_harness_names_and_skips_bad_methods(planted, planted_suite, monkeypatch):
    from advdla.methods import registry

    scratch = Registry[registry.MethodSpec]("method")  # the bad methods vanish after the test
    for name, spec in registry.METHODS.items():
        scratch.add(name, spec)
    monkeypatch.setattr(registry, "METHODS", scratch)
    for name, cls in (("test-wrong-shape", _WrongShape), ("test-nan", _NaN), ("test-raises", _Raises)):
        register_method(name, version="1", description="a broken method (test only)")(cls)
    warnings = []
    examples = planted_suite.examples[:4]
    frame, runs = run_methods(
        planted, ["test-wrong-shape", "dla", "test-nan", "test-raises"], examples, warn=warnings.append
    )
    assert set(frame["method"]) == {"dla"}
    assert len(warnings) == 3 and all("\n" not in w for w in warnings)
    assert "'test-wrong-shape' returned shape" in warnings[0] and "'test-nan' returned NaN" in warnings[1]
    assert "'test-raises' raised RuntimeError: boom" in warnings[2]


def _record(frame=None):
    nan = float("nan")
    metric = {"kind": "all", "metric": "rank_full", "against": "te", "value": nan, "lo": nan, "hi": nan, "n": 0,
              "higher_is_better": True, "chance": 0.5}
    per = [{"example_id": "e1", "kind": "adversarial", "mechanism": "compensation", "cluster": "doc3",
            "rank_full@te": nan, "false_alarm@te": 1.0}]
    return ResultRecord(method={"name": "dla", "version": "1", "params": {"seed": 0}},
                        suite={"name": "s", "version": "1", "fingerprint": "f", "model": "planted-erasure"},
                        split="dev", k=3, n_examples=2, metrics=[metric], per_example=per,
                        environment={"git_commit": None, "versions": {}, "device": "cpu"}, wall_time_s=0.1,
                        created="now")


def test_records_round_trip_through_json(tmp_path):
    path = tmp_path / "out" / "records.json"
    write_records(path, [_record()])
    raw = json.loads(path.read_text())
    assert raw[0]["metrics"][0]["value"] is None and raw[0]["schema_version"] == SCHEMA_VERSION == 3
    assert raw[0]["per_example"][0]["rank_full@te"] is None and raw[0]["per_example"][0]["cluster"] == "doc3"
    back = read_records(path)[0]
    assert back.method == _record().method and math.isnan(back.metrics[0]["value"])
    assert math.isnan(back.per_example[0]["rank_full@te"]) and back.per_example[0]["false_alarm@te"] == 1.0
    assert list(back.frame().columns) == FRAME_COLUMNS
    assert [p.name for p in path.parent.iterdir()] == ["records.json"]  # no temp file left behind


@pytest.fixture
def fake_suite_module(monkeypatch, planted, planted_suite):
    """The scoring harness with a stand-in suite: load_suite returns the planted suite, verify can be made to fail."""
    import advdla.scoring.harness as harness
    from advdla.errors import AdvdlaError

    state = {"bad": False, "sample": None}

    def verify_suite(path, bridge=None, sample=3):
        state["sample"] = sample
        if state["bad"]:
            raise AdvdlaError(f"suite {path} fails verification: fingerprint mismatch")

    def load_suite(path):
        return types.SimpleNamespace(
            manifest=planted_suite.manifest,
            examples=lambda split=None: [e for e in planted_suite.examples if split in (None, e.split)],
        )

    monkeypatch.setattr(harness, "verify_suite", verify_suite)
    monkeypatch.setattr(harness, "load_suite", load_suite)
    monkeypatch.setattr(harness, "load_model", lambda name, device="cpu": planted)
    return types.SimpleNamespace(state=state)


def test_score_cli_writes_one_record_per_method(tmp_path, fake_suite_module, capsys):
    from advdla.cli import main

    out = tmp_path / "records.json"
    rc = main(
        [
            "score",
            "--suite",
            str(tmp_path),
            "--methods",
            "dla,exact-te",
            "--split",
            "dev",
            "--out",
            str(out),
            "--format",
            "json",
            "--verify-sample",
            "0",
        ]
    )
    assert rc == 0 and fake_suite_module.state["sample"] == 0
    records = read_records(out)
    assert [r.method["name"] for r in records] == ["dla", "exact-te"]
    assert records[0].suite["fingerprint"] == "test-0-16" and records[0].split == "dev" and records[0].n_examples == 8
    assert {"adversarial", "natural", "all"} <= {m["kind"] for m in records[0].metrics}
    keys = {"cluster", "mechanism", "spearman_w@te", "spearman_w@de"}  # DLA is also scored against its own estimand
    assert len(records[0].per_example) == 8 and keys <= set(records[0].per_example[0])
    assert records[0].environment["versions"]["torch"] == torch.__version__
    assert json.loads(capsys.readouterr().out)["records"][1]["method"]["name"] == "exact-te"
    assert [p.name for p in tmp_path.iterdir()] == ["records.json"]  # the checkpoints went with the records


def test_a_killed_scoring_run_resumes_from_its_checkpoint(tmp_path, planted, planted_suite):
    from advdla.scoring import run_method
    from advdla.scoring.checkpoint import checkpoint_for

    examples = planted_suite.examples[:6]

    def checkpoint(run):
        return checkpoint_for(tmp_path / "r.json", run.name, version=run.version, params=run.params,
                              manifest=planted_suite.manifest, split="dev")

    def killed_after_two_batches(step):
        if step.done == 4:
            raise KeyboardInterrupt

    whole = run_method(planted, "atp", examples, batch_size=2)
    with pytest.raises(KeyboardInterrupt):
        run_method(planted, "atp", examples, batch_size=2, checkpoint=checkpoint, progress=killed_after_two_batches)
    done = []
    resumed = run_method(planted, "atp", examples, batch_size=2, checkpoint=checkpoint,
                         progress=lambda step: done.append(step.done))
    assert done == [4, 6]  # the first report says where it resumed; only the third batch was computed again
    assert resumed.estimates.keys() == whole.estimates.keys()
    for eid, values in whole.estimates.items():
        assert torch.allclose(torch.tensor(resumed.estimates[eid]), torch.tensor(values), atol=1e-6)
    done.clear()
    run_method(planted, "atp", examples, batch_size=2, seed=1, checkpoint=checkpoint,
               progress=lambda step: done.append(step.done))
    assert done == [0, 2, 4, 6]  # another seed: another key, so the checkpoint is not used


def test_score_cli_rejects_a_bad_suite_and_an_unknown_method(tmp_path, fake_suite_module, capsys):
    from advdla.cli import main

    fake_suite_module.state["bad"] = True
    assert main(["score", "--suite", str(tmp_path), "--methods", "dla"]) == 2
    err = capsys.readouterr().err.strip()
    assert "fingerprint mismatch" in err and len(err.splitlines()) == 1
    assert main(["score", "--suite", str(tmp_path), "--methods", "dla,atpstar"]) == 2
    assert "Did you mean 'atp-star'" in capsys.readouterr().err
    assert main(["score", "--suite", str(tmp_path / "missing"), "--methods", "dla"]) == 2
