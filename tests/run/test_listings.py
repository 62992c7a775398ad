"""The first hour's commands on the shipped planted suite: listings (methods, suites, a suite's examples), names that
resolve from any folder, tables that fit 80 and 120 columns without cutting a number, did-you-mean for method
parameters, and argument errors that come before the heavy imports."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from advdla import report
from advdla.cli import build_parser, main
from advdla.commands import names

pytestmark = pytest.mark.usefixtures("one_thread")
ROOT = Path(__file__).resolve().parents[2]
build_parser()  # imports every command module, so that run_cli can point their consoles at its terminal


def run_cli(argv, monkeypatch, width=100):
    """``advdla ARGV`` in this process with a terminal ``width`` wide: (exit status, stdout)."""
    out = io.StringIO()
    console = Console(file=out, width=width, color_system=None)
    monkeypatch.setattr(report, "console", console)
    for name, module in list(sys.modules.items()):  # the commands that imported the console by name
        if name.startswith("advdla.commands.") and hasattr(module, "console"):
            monkeypatch.setattr(module, "console", console)
    monkeypatch.setattr(sys, "stdout", out)  # print() (json, csv) lands there too
    rc = main(argv)
    return rc, out.getvalue()


def assert_fits(text, width):
    assert text.strip()
    assert "…" not in text, text
    assert max(len(line) for line in text.splitlines()) <= width, text


@pytest.mark.parametrize("width", [80, 120])
@pytest.mark.parametrize("argv", [
    ["methods", "list"],
    ["methods", "info", "ig"],
    ["suite", "list"],
    ["suite", "show", "planted-erasure", "--split", "dev"],
    ["suite", "show", "planted-erasure", "--split", "test", "--example", "0"],
    ["models", "info", "planted-erasure"],
    ["leaderboard", "--suite", "planted-erasure", "--split", "dev"],
], ids=lambda a: " ".join(a) if isinstance(a, list) else str(a))
def test_tables_fit_without_a_cut_number(argv, width, monkeypatch):
    if "--example" in argv:  # the first test example's id, whatever it is
        import pyarrow.parquet as pq

        first = pq.read_table(ROOT / "suites/planted-erasure/data/test.parquet").column("example_id")[0].as_py()
        argv = [*argv[:-1], first[:6]]
    rc, text = run_cli(argv, monkeypatch, width)
    assert rc == 0
    assert_fits(text, width)


def test_score_fits_80_and_120_and_limit_mixes_kinds(monkeypatch):
    for width in (80, 120):
        rc, text = run_cli(["score", "--suite", "planted-erasure", "--methods", "dla,atp", "--limit", "4",
                            "--verify-sample", "0"], monkeypatch, width)
        assert rc == 0
        assert_fits(text, width)
        assert "4 examples (--limit 4" in " ".join(text.split())
    rc, text = run_cli(["score", "--suite", "planted-erasure", "--methods", "dla", "--limit", "4", "--verify-sample",
                        "0", "--format", "json"], monkeypatch)
    record = json.loads(text)["records"][0]
    assert record["n_examples"] == 4
    n = {m["kind"]: m["n"] for m in record["metrics"] if m["metric"] == "mcc" and m["against"] == "te"}
    assert n["adversarial"] == 2 and n["natural"] == 2


def test_methods_list_names_every_registered_method_with_its_parameters(monkeypatch):
    from advdla.methods.registry import available_methods

    rc, text = run_cli(["methods", "list", "--format", "json"], monkeypatch)
    listed = {m["name"]: m for m in json.loads(text)["methods"]}
    assert rc == 0 and set(listed) == set(available_methods())
    assert listed["ig"]["params"]["steps"] == available_methods()["ig"].params.get("steps", 16)
    assert listed["exact-patching"]["cost"] == "patching" and listed["dla"]["cost"] == "forward"


def test_suite_show_example_lists_the_target_and_top_components_by_dla(monkeypatch):
    import pyarrow.parquet as pq

    row = pq.read_table(ROOT / "suites/planted-erasure/data/dev.parquet").slice(0, 1).to_pylist()[0]
    rc, text = run_cli(["suite", "show", "planted-erasure", "--example", row["example_id"][:8], "--top", "3",
                        "--format", "json"], monkeypatch)
    shown = json.loads(text)
    assert rc == 0 and shown["target"] == row["target"] and shown["id"] == row["example_id"]
    top = sorted(range(len(row["panel"])), key=lambda i: -abs(row["dla"][i]))[:3]
    assert [c["component"].split()[0] for c in shown["components"]] == [row["panel"][i] for i in top]
    assert [float(c["TE"]) for c in shown["components"]] == pytest.approx([row["te_mean"][i] for i in top], abs=1e-3)


def test_suite_show_example_decodes_t1_and_t2(monkeypatch):
    """The logit difference's two tokens are shown as text too: the planted model's tokenizer reads bytes, so an
    ASCII id is its character."""
    import pyarrow.parquet as pq

    from advdla.commands.suite_show import token_texts

    rows = pq.read_table(ROOT / "suites/planted-erasure/data/dev.parquet").to_pylist()
    row = next(r for r in rows if all(33 <= r[t] < 127 for t in ("t1", "t2")))
    rc, text = run_cli(["suite", "show", "planted-erasure", "--example", row["example_id"][:8], "--format", "json"],
                       monkeypatch)
    shown = json.loads(text)
    assert rc == 0 and (shown["t1"], shown["t2"]) == (row["t1"], row["t2"])
    assert (shown["t1 text"], shown["t2 text"]) == (repr(chr(row["t1"])), repr(chr(row["t2"])))
    assert token_texts("not-a-registered-model", [1, 2]) is None  # then only the ids are shown


def test_suite_names_resolve_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert names.resolve_suite("planted-erasure") == ROOT / "suites" / "planted-erasure"
    with pytest.raises(Exception, match="Did you mean 'planted-erasure'"):
        names.resolve_suite("planted-erasur")
    extra = tmp_path / "more" / "my-suite"
    extra.mkdir(parents=True)
    (extra / "manifest.json").write_text(json.dumps({"name": "my-suite", "version": 1, "model": "tiny-gpt2"}))
    monkeypatch.setenv("ADVDLA_SUITES", str(tmp_path / "more"))
    assert names.resolve_suite("my-suite") == extra
    assert "my-suite" in [p.name for p, _ in names.shipped_suites()]


def test_leaderboard_folder_defaults_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ADVDLA_LEADERBOARD", raising=False)
    assert names.leaderboard_dir(None) == ROOT / "leaderboard"
    assert names.leaderboard_dir(None, create=True) == ROOT / "leaderboard"
    monkeypatch.setenv("ADVDLA_LEADERBOARD", str(tmp_path / "none"))
    with pytest.raises(Exception, match="looked in .*none.*--dir"):
        names.leaderboard_dir(None)
    assert names.suites_dir_for(tmp_path / "board") == ROOT / "suites"


def test_param_typo_gets_a_suggestion(monkeypatch, capsys):
    rc = main(["score", "--suite", "planted-erasure", "--methods", "ig", "--param", "ig.step=2"])
    err = capsys.readouterr().err
    assert rc == 2 and "Did you mean 'steps'?" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("argv", [
    ["score", "--suite", "no-such-suite"],
    ["score", "--suite", "planted-erasure", "--split", "dve"],
    ["score", "--suite", "planted-erasure", "--limit", "0"],
    ["score", "--suite", "planted-erasure", "--limit", "3", "--out", "x.json"],
    ["suite", "show", "no-such-suite"],
])
def test_argument_errors_come_before_torch_is_imported(argv, tmp_path):
    code = ("import sys; from advdla.cli import main; rc = main(sys.argv[1:]); "
            "print(rc, 'torch' in sys.modules, file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    *message, status = done.stderr.strip().splitlines()
    assert status == "2 False", done.stderr
    assert len(message) == 1 and "error:" in message[0]


@pytest.mark.parametrize(("command", "func", "argv"), [
    ("run", "cmd_run", ["run"]), ("score", "cmd_score", ["score", "--suite", "x"]),
    ("suite", "cmd_build", ["suite", "build", "x.yaml"]), ("search", "cmd_search", ["search"]),
])
def test_ctrl_c_says_what_resumes(command, func, argv, monkeypatch, capsys):
    import importlib

    def interrupted(args):
        raise KeyboardInterrupt

    # main() builds its parser anew, and each command registers the function its module holds then
    monkeypatch.setattr(importlib.import_module(f"advdla.commands.{command}"), func, interrupted)
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert err.startswith(f"advdla {command}: interrupted: ") and "resume" in err
