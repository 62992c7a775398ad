"""What ``advdla run`` decides before it starts, and what it keeps when it stops: a shipped suite that does not fit
the model is skipped (auto) or refused (named) while planning; a run that fails after a finished stage keeps that
stage; default lengths shrink to fit a small-context model, explicit ones do not."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from advdla.cli import main
from advdla.errors import AdvdlaError
from advdla.pipeline import RunState, fitting_seq_len, plan_run, stages
from advdla.pipeline import plan as planning
from advdla.pipeline.stages import stage_model

SHIPPED = Path(__file__).resolve().parents[2] / "suites" / "planted-erasure"


def _other_weights(monkeypatch):
    monkeypatch.setattr(planning, "expected_weights", lambda name: "0" * 64)


def test_auto_skips_a_shipped_suite_built_on_other_weights_with_a_note(monkeypatch):
    assert Path(plan_run("planted-erasure", out="x").shipped) == SHIPPED and not plan_run("planted-erasure",
                                                                                          out="x").notes
    _other_weights(monkeypatch)
    plan = plan_run("planted-erasure", out="x")
    assert plan.shipped == "none" and plan.n_test == 3  # the run's own sizes, as without a shipped suite
    assert any(f"skipped the shipped suite {SHIPPED}" in n and "weights 9d84e1a01233" in n and "000000000000" in n
               for n in plan.notes)


def test_a_named_suite_that_does_not_fit_stops_while_planning(monkeypatch):
    with pytest.raises(AdvdlaError, match="16-token prompts, the run 12"):
        plan_run("planted-erasure", out="x", shipped=str(SHIPPED), seq_len=12)
    _other_weights(monkeypatch)
    with pytest.raises(AdvdlaError, match="built on weights 9d84e1a01233.*--shipped none"):
        plan_run("planted-erasure", out="x", shipped=str(SHIPPED))


def test_the_model_stage_checks_the_loaded_weights_against_the_shipped_suite(monkeypatch, tmp_path):
    plan = plan_run("planted-erasure", out=str(tmp_path), shipped=str(SHIPPED))
    card = SimpleNamespace(weights_fingerprint="1" * 64, name="planted-erasure")
    monkeypatch.setattr(stages, "load_model", lambda name, device: SimpleNamespace(advdla_card=card))
    with pytest.raises(AdvdlaError, match="has weights 111111111111: pass --shipped none"):
        stage_model(plan, RunState(out=tmp_path), lambda msg: None)


def _run(out: Path, capsys) -> tuple[int, str]:
    code = main(["run", "--model", "planted-erasure", "--quick", "--shipped", "none", "--methods", "dla",
                 "--out", str(out)])
    return code, capsys.readouterr().err.strip().splitlines()[-1]


def test_a_failure_after_a_finished_stage_keeps_it_and_says_how_to_resume(monkeypatch, tmp_path, capsys):
    def broken(*args, **kwargs):
        raise AdvdlaError("the search broke")

    monkeypatch.setattr(stages, "stage_search", broken)
    code, err = _run(tmp_path / "run", capsys)
    assert code == 2 and "the search broke" in err and "the finished stages analysis" in err and "resumes" in err
    assert json.loads((tmp_path / "run" / "stages.json").read_text())["done"].keys() == {"analysis"}
    assert (tmp_path / "run" / "analysis.json").is_file()


def test_a_failure_before_any_stage_finished_leaves_nothing(monkeypatch, tmp_path, capsys):
    def broken(*args, **kwargs):
        raise AdvdlaError("the analysis broke")

    monkeypatch.setattr(stages, "stage_analysis", broken)
    code, err = _run(tmp_path / "run", capsys)
    assert code == 2 and err.endswith("the analysis broke") and not (tmp_path / "run").exists()


def _context(n_ctx: int) -> SimpleNamespace:
    return SimpleNamespace(cfg=SimpleNamespace(n_ctx=n_ctx))


def test_the_runs_default_prompt_length_fits_the_context():
    assert fitting_seq_len(_context(128)) == 16 and fitting_seq_len(_context(20)) == 10
    with pytest.raises(AdvdlaError, match="context of 8 positions is too short.*at least 8 tokens.*16 positions"):
        fitting_seq_len(_context(8))
    plan = plan_run("tiny-gpt2", out="x", seq_len=10)
    assert plan.seq_len == 10 and "does not fit tiny-gpt2" in plan.notes[0]


def test_analyze_default_length_fits_a_short_context(tmp_path, capsys):
    from advdla.models.tiny import byte_tokenizer, tiny_gpt2_hf

    tiny_gpt2_hf(seed=0, n_positions=20).save_pretrained(tmp_path / "m")
    byte_tokenizer().save_pretrained(tmp_path / "m")
    args = ["analyze", "--model", str(tmp_path / "m"), "--prompts", "2", "--te-prompts", "2", "--overrated-top", "2",
            "--n-writers", "1", "--format", "json"]
    assert main(args) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["seq_len"] == 20 and "using --seq-len 20" in out.err
    assert main([*args, "--seq-len", "32"]) == 2
    assert "needs 32 positions but the model has a context of 20" in capsys.readouterr().err
