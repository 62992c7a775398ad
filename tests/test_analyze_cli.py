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
    assert analysed == [PLANTED.writer]  # the only component with a real share of LD and a real norm
    wa = out["analyses"][0]
    assert wa["erasers"] == [PLANTED.eraser]
    eraser = next(r for r in wa["components"] if r["component"] == PLANTED.eraser)
    assert eraser["pr"]["median"] == pytest.approx(-1.0, abs=0.05)
    assert abs(eraser["pr_vcomp"]["median"]) < 0.05
    assert wa["fits"]["erasers"]["slope"] == pytest.approx(-1.0, abs=0.05)
    assert out["overrated"][0]["component"] == PLANTED.writer
    assert {"writers", "analyses", "overrated", "criteria"} <= out.keys()


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
