"""Verdict v2: pre-registered hypotheses, tested on dev and test, Holm-corrected, counted in source files.

Each test plants an effect in synthetic per-example records and checks that the verdict finds exactly what was
planted: an effect on both splits holds, an effect on dev only does not replicate, a split from too few source files
gets no test, and the best method is chosen on dev (not on test).
"""

from __future__ import annotations

import numpy as np
import pytest

from advdla.leaderboard import DEFAULT_HYPOTHESES, Hypothesis, evaluate_hypotheses, hypotheses_for, registration_hash
from advdla.leaderboard.records import parse_record
from advdla.leaderboard.verdict import MIN_SOURCES, verdict
from advdla.scoring import ResultRecord
from advdla.scoring.stats import holm, holm_reference, paired_p

FP = "b" * 64


def _rows(split: str, n_files: int, per_file: int, values, seed: int) -> list[dict]:
    """Per-example rows: half compensation examples, half natural controls, ``per_file`` of each per source file."""
    rng = np.random.default_rng(seed)
    rows = []
    for f in range(n_files):
        for _ in range(per_file):
            for kind, mech in (("adversarial", "compensation"), ("natural", "none")):
                i = len(rows)
                mcc, fa = values(kind, rng)
                rows.append({"example_id": f"{split}{i}", "kind": kind, "mechanism": mech, "cluster": f"file{f}",
                             "mcc@te": mcc, "false_alarm@te": fa})
    return rows


def _record(method: str, split: str, rows: list[dict], *, role: str = "method") -> object:
    rec = ResultRecord(method={"name": method, "version": "1", "params": {}, "estimand": "total", "role": role},
                       suite={"name": "toy", "version": 1, "fingerprint": FP, "model": "planted-erasure"},
                       split=split, k=3, n_examples=len(rows), metrics=[], per_example=rows, wall_time_s=1.0,
                       environment={}, created="2026-01-01T00:00:00Z")
    return parse_record(rec.to_dict())


def _board(effects: dict[str, dict[str, float]], *, n_files: int = 8, fa_gap: dict[str, float] | None = None):
    """Records of dla and rivals on dev and test: a rival's MCC is DLA's plus ``effects[method][split]`` (+ noise);
    DLA's false alarm on compensation examples exceeds natural by ``fa_gap[split]``."""
    entries = []
    for s_i, split in enumerate(("dev", "test")):
        rate = {"adversarial": 0.2 + (fa_gap or {}).get(split, 0.0), "natural": 0.2}
        base = _rows(split, n_files, 3, lambda kind, rng, rate=rate: (rng.normal(0.3, 0.1),
                                                                      float(rng.random() < rate[kind])), seed=s_i)
        entries.append(_record("dla", split, base))
        for m_i, (method, eff) in enumerate(effects.items()):
            rng = np.random.default_rng(100 + 10 * s_i + m_i)
            rows = [{**r, "mcc@te": r["mcc@te"] + eff[split] + rng.normal(0, 0.05)} for r in base]
            entries.append(_record(method, split, rows))
    return entries


def _result(tested, method: str | None = None, hid: str = "methods"):
    return next(r for r in tested["results"] if r["hypothesis"].id == hid and (method is None or r["method"] == method))


def test_a_planted_improvement_on_both_splits_holds():
    tested = evaluate_hypotheses(_board({"good": {"dev": 0.3, "test": 0.3}, "same": {"dev": 0.0, "test": 0.0}}))
    assert _result(tested, "good")["outcome"] == "holds"
    assert _result(tested, "good")["best_on_dev"]
    assert _result(tested, "same")["outcome"] == "not supported"


def test_an_improvement_on_dev_only_does_not_replicate():
    tested = evaluate_hypotheses(_board({"lucky": {"dev": 0.3, "test": 0.0}}))
    res = _result(tested, "lucky")
    assert res["outcome"] == "not replicated"
    assert res["dev"]["p"] < 0.05 < res["test"]["p"]


def test_the_best_method_is_chosen_on_dev_not_on_test():
    tested = evaluate_hypotheses(_board({"dev-best": {"dev": 0.4, "test": 0.1},
                                         "test-best": {"dev": 0.1, "test": 0.5}}))
    assert _result(tested, "dev-best")["best_on_dev"] and not _result(tested, "test-best")["best_on_dev"]


def test_too_few_source_files_gets_no_test():
    tested = evaluate_hypotheses(_board({"good": {"dev": 0.3, "test": 0.3}}, n_files=MIN_SOURCES - 1))
    res = _result(tested, "good")
    assert res["outcome"].startswith("no test") and f"{MIN_SOURCES - 1} source file" in res["outcome"]
    lines = verdict(_board({"good": {"dev": 0.3, "test": 0.3}}, n_files=MIN_SOURCES - 1))
    assert lines[-1] == "Verdict: no pre-registered claim holds on both splits."


def test_the_group_hypothesis_sees_a_planted_false_alarm_gap():
    tested = evaluate_hypotheses(_board({}, n_files=10, fa_gap={"dev": 0.6, "test": 0.6}))
    assert _result(tested, hid="compensation")["outcome"] == "holds"
    tested = evaluate_hypotheses(_board({}, n_files=10, fa_gap={"dev": 0.0, "test": 0.0}))
    assert _result(tested, hid="compensation")["outcome"] == "not supported"


def test_holm_correction_is_applied_over_the_methods():
    tested = evaluate_hypotheses(_board({f"m{i}": {"dev": 0.02, "test": 0.02} for i in range(5)}))
    tests = [r["test"] for r in tested["results"] if r["hypothesis"].id == "methods"]
    assert all(t["p"] >= t["p_raw"] for t in tests)
    assert [t["p"] for t in tests] == pytest.approx(holm([t["p_raw"] for t in tests]))


def test_holm_matches_its_reference_on_random_inputs():
    rng = np.random.default_rng(0)
    for _ in range(300):
        p = list(rng.random(rng.integers(1, 12)))
        if rng.random() < 0.3:
            p[int(rng.integers(len(p)))] = float("nan")
        np.testing.assert_allclose(holm(p), holm_reference(p), equal_nan=True)


def test_the_one_sided_p_value_is_calibrated_under_the_null():
    """With no difference, p < 0.05 about 5% of the time (never far more: the test would claim effects that are
    not there); with a real difference it is tiny."""
    rng = np.random.default_rng(1)
    clusters = np.repeat(np.arange(20), 3)
    ps = [paired_p(rng.normal(size=60), rng.normal(size=60), clusters, n_boot=400, seed=i) for i in range(200)]
    assert np.mean(np.array(ps) < 0.05) < 0.12
    assert paired_p(rng.normal(1.0, 1.0, 60), rng.normal(size=60), clusters) < 0.01


def test_hypotheses_come_from_the_suite_config(tmp_path):
    assert hypotheses_for("toy", tmp_path) == (DEFAULT_HYPOTHESES, "advdla's defaults")
    (tmp_path / "toy.yaml").write_text(
        "name: toy\nhypotheses:\n  - {id: mine, kind: beats, statement: s, metric: target_error@te, group: all,"
        " greater: false}\n")
    hyps, where = hypotheses_for("toy", tmp_path)
    assert hyps == (Hypothesis("mine", "beats", "s", metric="target_error@te", group="all", greater=False),)
    assert where.endswith("toy.yaml") and registration_hash(hyps) != registration_hash(DEFAULT_HYPOTHESES)
    (tmp_path / "toy.yaml").write_text("name: toy\nhypotheses:\n  - {id: bad, kind: maybe, statement: s, "
                                       "metric: mcc, group: all}\n")
    with pytest.raises(Exception, match="kind in"):
        hypotheses_for("toy", tmp_path)
