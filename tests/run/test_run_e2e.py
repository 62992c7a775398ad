"""End to end: ``advdla run`` on the planted-erasure model, then the leaderboard it wrote.

The planted writer L0H1 has a large DLA that L1H2 erases (see :mod:`advdla.models.planted`), so on the
planted suite DLA must be fooled (the writer in its top k, its true effect not) while the oracle ranks
components perfectly and the random baseline not at all.
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from advdla.cli import main
from advdla.errors import AdvdlaError
from advdla.leaderboard import MIN_VERDICT_DOCS, adv_vs_natural, groups, load_board, ranked_rows, run_verdict
from advdla.pipeline import STAGES, plan_run, run_pipeline
from advdla.search import read_search, verified_examples


def _plan(out):
    # the --quick sizes, smaller still (6 adversarial dev examples: enough for the Spearman order to be stable)
    plan = plan_run("planted-erasure", out=str(out), quick=True, shipped="none")  # the run's own rows only
    return dataclasses.replace(plan, prompts=4, trials=16, batch=8, n_dev=6, n_test=2, n_natural=2,
                               methods="oracle,dla,dla-erasure-aware,atp,random",
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


def test_leaderboard_ranks_oracle_over_dla_over_random(run_out):
    out, _ = run_out
    board = load_board(out / "leaderboard")
    assert not board.problems and not board.stale
    rows = {r["method"]: r for r in ranked_rows(board.current, sort="spearman")}
    assert {"oracle", "dla", "random", "dla-erasure-aware", "atp"} <= set(rows)
    assert rows["oracle"]["spearman_adv"] == pytest.approx(1.0)
    assert rows["oracle"]["rank"] == "sanity"  # it reads the truth: a sanity row, outside the ranking
    ranked = sorted((r for r in rows.values() if r["role"] == "method"), key=lambda r: r["rank"])
    assert [r["rank"] for r in ranked] == list(range(1, len(ranked) + 1))
    assert all(a["spearman_adv"] >= b["spearman_adv"] for a, b in zip(ranked, ranked[1:]))
    assert rows["oracle"]["spearman_adv"] > rows["dla"]["spearman_adv"] > rows["random"]["spearman_adv"]
    assert rows["dla"]["fooled_adv"] >= 0.9  # DLA puts the erased writer in its top k on (nearly) every example
    assert rows["oracle"]["fooled_adv"] == 0.0
    md = (out / "leaderboard" / "LEADERBOARD.md").read_text()
    assert "planted-erasure-run v1, dev split" in md and "| oracle" in md and "| random" in md


def test_leaderboard_cli_on_the_run(run_out, capsys):
    out, _ = run_out
    assert main(["leaderboard", "--dir", str(out / "leaderboard"), "--format", "json", "--sort", "fooled"]) == 0
    payload = json.loads(capsys.readouterr().out)
    (board,) = payload["boards"]
    methods = [r for r in board["rows"] if r["role"] == "method"]  # the oracle sanity row comes after them
    assert board["suite"] == "planted-erasure-run" and methods[-1]["fooled_adv"] >= 0.9


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


def test_run_verdict_states_intervals(run_out):
    out, _ = run_out
    board = load_board(out / "leaderboard")
    (entries,) = groups(board.current).values()
    gap_line, best_line, sentence = run_verdict(entries)
    dla = next(e for e in entries if e.method == "dla")
    rho, fooled = adv_vs_natural(dla, "spearman"), adv_vs_natural(dla, "fooled")
    assert rho[1] <= rho[0] <= rho[2] and fooled[1] <= fooled[0] <= fooled[2]
    assert gap_line.startswith(f"DLA, adversarial minus natural examples: Spearman {rho[0]:+.2f} [{rho[1]:+.2f}, ")
    assert best_line.split(" ")[0] in {"dla-erasure-aware", "atp", "random"}  # never the oracle (a sanity row)
    docs = {r["cluster"] for r in dla.record["per_example"] if r["kind"] == "adversarial"}
    if len(docs) < MIN_VERDICT_DOCS:  # too few documents for an interval to mean anything: no verdict
        assert sentence.startswith(f"Verdict: none yet: the adversarial examples come from {len(docs)} base")
        return
    misled = rho[2] < 0 or fooled[1] > 0  # the sentence follows the intervals
    assert sentence.startswith("Verdict: DLA misleads measurably more" if misled else "Verdict: DLA does not")
