"""The chance check: the cluster sign-flip test against a literal enumeration, then the whole check on synthetic
records scored with the real metrics: an estimator that knows nothing passes, one that knows something fails."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest

from advdla.cli import main
from advdla.leaderboard import add_record, load_board, parse_record
from advdla.leaderboard.chance import chance_cells, chance_lines, check_board
from advdla.scoring import METRICS, Context, ResultRecord
from advdla.scoring.chance import ChanceCell, chance_check, chance_side
from advdla.scoring.stats import signflip_min_p, signflip_p
from advdla.suites.store import SCHEMA_VERSION

FP = "c" * 64


def make_suite(root):
    """A suite folder holding only a manifest (what the board checks a record's fingerprint against)."""
    d = root / "suites" / "toy"
    d.mkdir(parents=True)
    (d / "manifest.json").write_text(json.dumps({"schema_version": SCHEMA_VERSION, "name": "toy", "version": 1,
                                                 "fingerprint": FP, "fingerprints": {"examples": FP}, "files": {},
                                                 "model": "planted-erasure"}))

# ------------------------------------------------------------------------------------------- the test itself


def _signflip_reference(values, clusters, null, side):
    """Every sign pattern over the clusters, counted one by one."""
    docs = sorted(set(clusters))
    dev = [sum(v - null for v, c in zip(values, clusters) if c == d) for d in docs]
    observed, hits, total = sum(dev), 0, 0
    for signs in itertools.product([1, -1], repeat=len(docs)):
        t = sum(s * x for s, x in zip(signs, dev))
        hits += {"two-sided": abs(t) >= abs(observed) - 1e-9, "greater": t >= observed - 1e-9,
                 "less": t <= observed + 1e-9}[side]
        total += 1
    return hits / total


@pytest.mark.parametrize("side", ["two-sided", "greater", "less"])
def test_signflip_matches_the_enumeration(side):
    rng = np.random.default_rng(3)
    for _ in range(20):
        n = int(rng.integers(4, 30))
        values, clusters = rng.normal(rng.normal(0, 0.5), 1, n), rng.integers(0, rng.integers(2, 9), n)
        null = float(rng.normal(0, 0.3))
        assert signflip_p(values, clusters, null=null, side=side) == pytest.approx(
            _signflip_reference(values.tolist(), clusters.tolist(), null, side), abs=1e-12)


def test_signflip_is_honest_with_few_clusters_and_drops_nans():
    """Two source files: 4 patterns, so p >= 0.5 however far from the null; one file: no test."""
    values, clusters = np.array([5.0, 5.1, 4.9, 5.2]), np.array([0, 0, 1, 1])
    assert signflip_p(values, clusters, null=0.0) == 0.5 == signflip_min_p(2)
    assert math.isnan(signflip_p(values[:2], clusters[:2], null=0.0))
    with_nan = np.array([5.0, np.nan, 4.9, 5.2])
    assert signflip_p(with_nan, clusters, null=0.0) == signflip_p(np.array([5.0, 4.9, 5.2]), clusters[[0, 2, 3]],
                                                                  null=0.0)


def test_signflip_monte_carlo_is_near_exact_and_reaches_its_floor():
    rng = np.random.default_rng(0)
    values, clusters = rng.normal(0.2, 1, 60), np.repeat(np.arange(12), 5)
    exact = signflip_p(values, clusters, null=0.0, n_perm=2 ** 12)
    assert signflip_p(values, clusters, null=0.0, n_perm=2 ** 12 - 1) == pytest.approx(exact, abs=0.03)
    far = np.repeat(np.arange(40), 2)
    assert signflip_p(np.full(80, 3.0) + rng.normal(0, 0.1, 80), far, null=0.0, n_perm=999) == 1 / 1000
    assert signflip_min_p(40, n_perm=999) == 1 / 1000


def test_sides_follow_what_chance_means():
    assert chance_side("mcc@te") == "two-sided" and chance_side("auroc@de") == "two-sided"
    assert chance_side("target_error@te") == "less" and chance_side("mae_norm") == "less"  # chance: the zero estimate
    assert chance_side("recall@te") is None and chance_side("false_alarm@te") is None  # no chance level


# --------------------------------------------------------------------------------- synthetic scored records

N_PANEL = 40


def _example(rng):
    ld = float(rng.uniform(1, 4))
    truth = rng.normal(0, ld, N_PANEL) * (rng.random(N_PANEL) < 0.3) + rng.normal(0, 0.02 * ld, N_PANEL)
    return truth, Context(target=int(rng.integers(N_PANEL)), ld=ld, late=np.arange(N_PANEL) >= 10)


ESTIMATORS = {
    "random": lambda truth, ctx, rng: rng.normal(0, abs(ctx.ld) * 0.3, N_PANEL),
    "constant": lambda truth, ctx, rng: np.full(N_PANEL, 1.0),
    "planted": lambda truth, ctx, rng: truth + rng.normal(0, abs(ctx.ld) * 0.5, N_PANEL),  # knows the truth
}


def _rows(method, rng, n_docs, per_doc):
    """Per-example rows (metric@te values) and per (kind, metric) the chance values of the defined examples."""
    rows, chance = [], {}
    for d, j, kind in itertools.product(range(n_docs), range(per_doc), ("adversarial", "natural")):
        truth, ctx = _example(rng)
        est = ESTIMATORS[method](truth, ctx, rng)
        row = {"example_id": f"{kind}-{d}-{j}", "kind": kind, "cluster": f"doc{d}",
               "mechanism": "compensation" if kind == "adversarial" else "none"}
        for name, spec in METRICS.items():
            v = float(spec.fn(est, truth, ctx))
            row[f"{name}@te"] = None if math.isnan(v) else v
            if not math.isnan(v) and spec.chance is not None:
                chance.setdefault((kind, name), []).append(float(spec.chance(truth, ctx)))
        rows.append(row)
    return rows, chance


def scored_record(method, *, seed=0, n_docs=20, per_doc=2, split="dev", label=None):
    """A result record of ``method``'s estimates on synthetic examples, scored with the registered metrics (what
    the harness writes, intervals left out: the check does not read them)."""
    rows, chance = _rows(method, np.random.default_rng(seed), n_docs, per_doc)
    metrics = []
    for (kind, name), c in chance.items():
        vals = [r[f"{name}@te"] for r in rows if r["kind"] == kind and r[f"{name}@te"] is not None]
        metrics.append({"kind": kind, "metric": name, "against": "te", "chance": float(np.nanmean(c)),
                        "value": float(np.mean(vals)), "lo": None, "hi": None, "n": len(vals),
                        "higher_is_better": METRICS[name].higher_is_better})
    return ResultRecord(
        method={"name": label or method, "version": "1", "params": {"seed": seed}, "estimand": "total",
                "role": "method"},
        suite={"name": "toy", "version": 1, "fingerprint": FP, "model": "planted-erasure"}, split=split, k=3,
        n_examples=len(rows), metrics=metrics, wall_time_s=1.0, created="2026-01-01T00:00:00Z",
        environment={"git_commit": None, "versions": {}, "device": "cpu", "platform": "x"},
        per_example=rows).to_dict()


@pytest.mark.parametrize("method", ["random", "constant"])
def test_an_uninformed_method_passes(method):
    """Over 10 independent boards (two splits each, about 44 cells), at most 2 fail: Holm keeps each board's chance
    of a false alarm at 5% (so about 0.5 failures expected), whatever the metrics' dependence."""
    fails = []
    for seed in range(10):
        entries = [parse_record(scored_record(method, seed=100 * seed + i, split=s))
                   for i, s in enumerate(("dev", "test"))]
        check = check_board(entries, n_perm=4000, seed=seed)
        assert len(check.tested) >= 30 and not check.skipped
        fails.append(not check.passes)
    assert sum(fails) <= 2, fails


def test_a_method_above_chance_fails_and_is_named():
    """A method that knows the truth, filed under the name ``random``, is beyond chance on the metrics it wins."""
    entries = [parse_record(scored_record("planted", seed=s, label="random", split=sp))
               for s, sp in ((1, "dev"), (2, "test"))]
    check = check_board(entries, n_perm=4000)
    beyond = {(r.labels["split"], r.labels["group"], r.metric) for r in check.beyond}
    assert not check.passes
    for split, group in itertools.product(("dev", "test"), ("adversarial", "natural")):
        assert {(split, group, "mcc@te"), (split, group, "rank_full@te"), (split, group, "auroc@te")} <= beyond
    assert any("Beyond chance after Holm: " + str(len(check.beyond)) in line for line in chance_lines(check))


def test_a_single_planted_cell_among_chance_ones_is_found():
    """One cell shifted above chance among the uninformed ones: Holm still finds it, and only it."""
    rng = np.random.default_rng(5)
    clusters = np.repeat(np.arange(30), 2)
    cells = [ChanceCell({"cell": str(i)}, "mcc@te", rng.normal(0, 0.2, 60), clusters, 0.0) for i in range(40)]
    cells.append(ChanceCell({"cell": "planted"}, "mcc@te", rng.normal(0.3, 0.2, 60), clusters, 0.0))
    check = chance_check(cells)
    assert [r.labels["cell"] for r in check.beyond] == ["planted"]


def test_errors_count_only_when_they_beat_the_zero_estimate():
    """Target error far above its chance (the zero estimate's) is not beyond chance; far below it is."""
    clusters = np.repeat(np.arange(20), 2)
    worse = ChanceCell({"c": "worse"}, "target_error@te", np.full(40, 2.0), clusters, 1.0)
    better = ChanceCell({"c": "better"}, "target_error@te", np.full(40, 0.1), clusters, 1.0)
    check = chance_check([worse, better])
    assert [r.labels["c"] for r in check.beyond] == ["better"]


def test_cells_are_the_disjoint_groups_of_the_uninformed_methods_only():
    entries = [parse_record(scored_record(m, seed=1, n_docs=4, per_doc=1)) for m in ("random", "planted")]
    cells = chance_cells(entries)
    assert {c.labels["method"] for c in cells} == {"random"}
    assert {c.labels["group"] for c in cells} == {"adversarial", "natural"}
    assert all(len(c.values) == 4 for c in cells)  # 4 documents, one example of each kind per document


def test_cli_chance_exit_status(tmp_path, capsys):
    make_suite(tmp_path)
    lb = tmp_path / "leaderboard"
    add_record(scored_record("random", seed=3), lb)
    assert main(["leaderboard", "chance", "--dir", str(lb)]) == 0
    assert "Beyond chance after Holm: 0 of" in capsys.readouterr().out
    assert main(["leaderboard", "render", "--dir", str(lb)]) == 0
    capsys.readouterr()  # the path it wrote
    page = (lb / "LEADERBOARD.md").read_text()
    assert "**Uninformed methods against chance.** random against chance" in page and "after Holm: 0 of" in page
    add_record(scored_record("planted", seed=4, label="constant"), lb)
    assert main(["leaderboard", "chance", "--dir", str(lb), "--format", "json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert not out["passes"] and out["beyond"] > 0
    assert all(c["method"] == "constant" for c in out["cells"] if c["beyond"])
    assert main(["leaderboard", "chance", "--dir", str(lb), "--methods", "nothing"]) == 2
    assert load_board(lb).current  # the check writes nothing
