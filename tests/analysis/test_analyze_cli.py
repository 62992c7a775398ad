"""``advdla analyze``: the acceptance run on the planted model, PNGs, and one-line errors for bad input."""

from __future__ import annotations

import json

import pytest

from advdla import cli
from advdla.models.planted import PLANTED


def _run_json(capsys, *extra):
    assert cli.main(["analyze", "--model", "planted-erasure", "--format", "json", *extra]) == 0

    def no_nan(name):
        raise AssertionError(f"non-strict JSON constant {name}")

    return json.loads(capsys.readouterr().out, parse_constant=no_nan)


def test_acceptance_planted_writer_and_eraser(capsys):
    """`advdla analyze --model planted-erasure --writer auto --format json` names L0H1 and L1H2;
    V-comp removes the erasure."""
    out = _run_json(capsys, "--writer", "auto")
    analysed = [a["writer"] for a in out["analyses"]]
    # by mean |DLA|, the eraser writes as much as the writer (minus it); nothing else has a real share of LD
    assert analysed == [PLANTED.writer, PLANTED.eraser] and out["analyses"][1]["erasers"] == []
    wa = out["analyses"][0]
    assert wa["erasers"] == [PLANTED.eraser]
    eraser = next(r for r in wa["components"] if r["component"] == PLANTED.eraser)
    assert eraser["pr"]["median"] == pytest.approx(-1.0, abs=0.05)
    assert abs(eraser["pr_vcomp"]["median"]) < 0.05
    assert wa["fits"]["erasers"]["slope"] == pytest.approx(-1.0, abs=0.05)
    assert out["overrated"][0]["component"] == PLANTED.writer
    assert {"writers", "analyses", "overrated", "criteria", "erasers", "targets"} <= out.keys()
    assert out["writers"][0]["component"] == PLANTED.writer and out["targets"][0]["component"] == PLANTED.writer
    assert [(e["writer"], e["eraser"]) for e in out["erasers"]] == [(PLANTED.writer, PLANTED.eraser)]


def test_planted_words_32_positions_word_level_scan(capsys):
    """The word-level model with 32 positions, a writer whose signed mean DLA is negative and a decoy: --scan names
    writer -> eraser (and never the decoy), and the auto target is the writer."""
    from advdla.models.planted import PLANTED_WORDS

    assert cli.main(["analyze", "--model", "planted-words", "--scan", "--prompts", "16", "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert PLANTED_WORDS.writer in [w["component"] for w in out["writers"][:2]]
    pairs = {(e["writer"], e["eraser"]) for e in out["erasers"]}
    assert pairs == {(PLANTED_WORDS.writer, PLANTED_WORDS.eraser)}
    assert {e["source"] for e in out["erasers"]} == {"writer", "scan"} and out["scan"]["pairs_tested"] >= 2
    assert out["targets"][0]["component"] == PLANTED_WORDS.writer
    # 64 tokens do not fit 32 positions: one line naming both numbers
    assert cli.main(["analyze", "--model", "planted-words", "--seq-len", "64"]) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and "64" in err[0] and "32" in err[0]


def test_search_on_planted_words(capsys, tmp_path):
    """An explicit --seq-len 24 needs pre-screen windows of 48 positions: one line, exit 2, nothing written. The
    default (24) shrinks to 16 on the 32-position model, with a note, and finds the writer's examples."""
    from advdla.models.planted import PLANTED_WORDS

    out = tmp_path / "s"
    base = ["search", "--model", "planted-words", "--no-progress", "--out", str(out), "--threads", "1"]
    assert cli.main([*base, "--seq-len", "24"]) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and "48" in err[0] and "32" in err[0] and not out.exists()
    args = ["--trials", "16", "--batch", "8", "--resamples", "2", "--max-verify", "2", "--format", "json"]
    assert cli.main([*base, *args]) == 0
    captured = capsys.readouterr()
    assert "the default --seq-len 24 needs 48 positions" in captured.err and "using --seq-len 16" in captured.err
    summary = json.loads(captured.out)
    assert summary["config"]["seq_len"] == 16
    assert summary["target"] == PLANTED_WORDS.writer and summary["objective"] == "compensation"
    assert summary["counts"]["verified_examples"] >= 1


def test_table_and_plots(capsys, tmp_path):
    plots = tmp_path / "plots"
    assert (
        cli.main(
            [
                "analyze",
                "--model",
                "planted-erasure",
                "--writer",
                "L0H1",
                "--prompts",
                "4",
                "--seq-len",
                "12",
                "--te-prompts",
                "2",
                "--overrated-top",
                "3",
                "--plot-dir",
                str(plots),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "erasers L1H2" in text and "DLA overstatement" in text
    names = sorted(p.name for p in plots.iterdir())
    assert names == [
        "fig1_residual_pr_L0H1.png",
        "fig2_component_pr_L0H1.png",
        "fig3_dla_vs_te.png",
        "fig4_writer_vs_erasers_L0H1.png",
    ]
    assert all((plots / n).read_bytes()[:4] == b"\x89PNG" for n in names)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--writer", "L5H0"], "does not exist"),
        (["--writer", "L0H9"], "does not exist"),
        (["--writer", "L2H0"], "last layer"),
        (["--writer", "MLP2"], "last layer"),
        (["--seq-len", "500"], "context"),
        (["--seq-len", "1"], "at least 2 tokens"),
        (["--prompts", "0"], "at least 1"),
    ],
)
def test_bad_input_is_one_line_exit_2(capsys, args, message):
    assert cli.main(["analyze", "--model", "planted-erasure", "--format", "json", *args]) == 2
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0] and lines[0].startswith("advdla analyze: error:")
    assert captured.out == ""
