"""End to end: ``advdla run`` on the planted-erasure model, then the leaderboard it wrote.

The planted writer L0H1 has a large DLA that L1H2 erases (see :mod:`advdla.models.planted`), so on the
planted suite DLA must raise false alarms (the erased writer called important, its true effect not) while exact-te ranks
components perfectly and the random baseline not at all.
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from advdla.cli import main
from advdla.errors import AdvdlaError
from advdla.leaderboard import MIN_SOURCES, evaluate_hypotheses, load_board, ranked_rows, run_verdict, suite_versions
from advdla.pipeline import STAGES, plan_run, run_pipeline
from advdla.search import read_search, verified_examples


def _plan(out):
    # the --quick sizes, smaller still (6 adversarial dev examples: enough for the Spearman order to be stable)
    plan = plan_run("planted-erasure", out=str(out), quick=True, shipped="none")  # the run's own rows only
    return dataclasses.replace(plan, prompts=4, trials=16, batch=8, n_dev=6, n_test=2, n_natural=2,
                               methods="exact-te,dla,dla-erasure-aware,atp,random",
                               n_base=64, pool_size=96, verify_resamples=8)  # the search's own defaults


@pytest.fixture(scope="module")
def run_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    outputs = run_pipeline(_plan(out))
    return out, outputs


def test_every_stage_ran_and_wrote(run_out):
    out, outputs = run_out
    assert list(outputs.seconds) == list(STAGES)
    for key in ("analysis", "search", "suite", "results", "leaderboard", "leaderboard_md"):
        assert outputs.paths[key].exists(), key
    assert json.loads((out / "analysis.json").read_text())["model"] == "planted-erasure"
    assert all((out / "search" / split / "examples.parquet").is_file() for split in ("dev", "test"))
    manifest = json.loads((outputs.paths["suite"] / "manifest.json").read_text())
    assert manifest["targets"] == ["L0H1"]  # the analysis picked the planted writer as the most overrated head
    verified = len(verified_examples(read_search(out / "search" / "dev").examples))
    # the suite asks for every verified example up to n_dev and keeps those that hold on the truth's resamples
    build = manifest["build"]["dev"]
    assert build["adversarial_asked"] == min(6, verified)
    assert 3 <= manifest["splits"]["dev"]["adversarial"] <= build["adversarial_asked"]


def test_leaderboard_ranks_exact_te_over_dla_over_random(run_out):
    out, _ = run_out
    board = load_board(out / "leaderboard")
    assert not board.problems and not board.stale
    rows = {r["method"]: r for r in ranked_rows([e for e in board.current if e.split == "dev"])}
    assert {"exact-te", "dla", "random", "dla-erasure-aware", "atp", "split-half"} <= set(rows)
    assert rows["exact-te"]["mcc@te_adv"] == pytest.approx(1.0)
    assert rows["exact-te"]["rank"] == "reference"  # it reads the truth: outside the ranking
    assert rows["split-half"]["rank"] == "ceiling"
    ranked = sorted((r for r in rows.values() if r["role"] == "method"), key=lambda r: r["rank"])
    assert [r["rank"] for r in ranked] == list(range(1, len(ranked) + 1))
    assert all(a["mcc@te_adv"] >= b["mcc@te_adv"] for a, b in zip(ranked, ranked[1:]))
    assert rows["exact-te"]["mcc@te_adv"] > rows["dla"]["mcc@te_adv"] > rows["random"]["mcc@te_adv"]
    assert rows["dla"]["false_alarm@te_adv"] >= 0.9  # DLA calls the erased writer important on every example
    assert rows["exact-te"]["false_alarm@te_adv"] == 0.0
    md = (out / "leaderboard" / "LEADERBOARD.md").read_text()
    assert "planted-erasure-run v1, dev split" in md and "| exact-te" in md and "| random" in md
    assert "frontier-planted-erasure-run-v1.png" in md and (out / "leaderboard" / "frontier-planted-erasure-run-v1.png"
                                                            ).is_file()


def test_leaderboard_cli_on_the_run(run_out, capsys):
    out, _ = run_out
    assert main(["leaderboard", "--dir", str(out / "leaderboard"), "--format", "json", "--sort", "false_alarm",
                 "--split", "dev"]) == 0
    payload = json.loads(capsys.readouterr().out)
    (board,) = payload["boards"]
    methods = [r for r in board["rows"] if r["role"] == "method"]  # the reference rows come after them
    assert board["suite"] == "planted-erasure-run" and methods[-1]["false_alarm@te_adv"] >= 0.9


def test_run_refuses_to_overwrite_a_suite(run_out, capsys):
    out, _ = run_out
    assert main(["run", "--model", "planted-erasure", "--quick", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "already exists" in err[-1] or "--force" in err[-1]


def test_run_bad_input_is_one_line(tmp_path, capsys):
    assert main(["run", "--model", "planted-erasur", "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "unknown model 'planted-erasur'" in err and "Did you mean 'planted-erasure'" in err
    assert main(["run", "--model", "planted-erasure", "--methods", "dla,atpp", "--out", str(tmp_path / "b")]) == 2
    assert "unknown method 'atpp'" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()  # stopped before writing anything


def _trials(out):
    import optuna

    return {split: len(optuna.load_study(study_name="advdla-search", storage=f"sqlite:///{out}/search/{split}/study.db")
                       .trials) for split in ("dev", "test")}


def test_rerun_resumes_finished_stages(run_out):
    out, first = run_out
    trials, manifest = _trials(out), (first.paths["suite"] / "manifest.json").read_bytes()
    records = (out / "results" / "scores.json").read_bytes()
    again = run_pipeline(_plan(out))  # the same plan into the same folder: nothing is redone
    assert again.resumed == list(STAGES[1:])  # the model is loaded, every other stage read back
    assert _trials(out) == trials and (first.paths["suite"] / "manifest.json").read_bytes() == manifest
    assert (out / "results" / "scores.json").read_bytes() == records
    assert again.paths["suite"] == first.paths["suite"] and "resumed" in again.notes["search"]
    assert again.notes["rows"] == first.notes["rows"] and "adversarial from the dev search" in again.notes["rows"]


def test_rerun_of_an_unfinished_stage_picks_up_there(run_out):
    out, _ = run_out
    before = json.loads((out / "results" / "scores.json").read_text())
    stages = json.loads((out / "stages.json").read_text())
    del stages["done"]["scores"], stages["done"]["leaderboard"]  # as if killed while scoring
    (out / "stages.json").write_text(json.dumps(stages))
    again = run_pipeline(_plan(out))
    assert again.resumed == ["analysis", "search", "suite"]
    assert set(json.loads((out / "stages.json").read_text())["done"]) == set(STAGES[1:])  # the model: always loaded
    after = json.loads((out / "results" / "scores.json").read_text())
    assert [(r["method"], r["metrics"]) for r in after] == [(r["method"], r["metrics"]) for r in before]  # seeded


def test_rerun_with_other_settings_is_refused(run_out):
    out, _ = run_out
    with pytest.raises(AdvdlaError, match="other settings.*n_dev 6 .now 7.*--force"):
        run_pipeline(dataclasses.replace(_plan(out), n_dev=7))


def test_run_verdict_is_the_pre_registered_one(run_out):
    """The run ends with the board's verdict: the registered hypotheses, each tested on dev and test."""
    out, _ = run_out
    board = load_board(out / "leaderboard")
    (entries,) = suite_versions(board.current).values()
    lines = run_verdict(entries, suites_dir=out / "suites")
    assert lines[0].startswith("Pre-registered hypotheses") and lines[-1].startswith("Verdict: ")
    assert {e.split for e in entries} == {"dev", "test"}
    tested = evaluate_hypotheses(entries, suites_dir=out / "suites")
    for res in tested["results"]:
        files = [res[s]["sources"] for s in ("dev", "test") if res.get(s)]
        if any(f < MIN_SOURCES for f in files):  # too few source files: the hypothesis is not tested
            assert res["outcome"].startswith("no test")
