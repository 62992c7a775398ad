"""The leaderboard: records in, ranked tables out; stale and broken records apart; concurrent adds lose nothing."""

from __future__ import annotations

import json
import math
import multiprocessing as mp
from pathlib import Path

import numpy as np
import pytest

from advdla.cli import main
from advdla.errors import AdvdlaError
from advdla.leaderboard import (
                                add_record,
                                display_rows,
                                load_board,
                                parse_record,
                                ranked_rows,
                                record_filename,
                                render_markdown,
)
from advdla.scoring import ResultRecord
from advdla.suites.store import SCHEMA_VERSION

FP = "a" * 64


def make_suite(root: Path, name: str = "toy", version: int = 1, fingerprint: str = FP) -> Path:
    """A suite folder holding only a manifest: the fields advdla.suites.read_manifest requires (no data files)."""
    d = root / "suites" / name
    d.mkdir(parents=True, exist_ok=True)
    manifest = {"schema_version": SCHEMA_VERSION, "name": name, "version": version, "fingerprint": fingerprint,
                "fingerprints": {"examples": fingerprint}, "files": {}, "model": "planted-erasure"}
    (d / "manifest.json").write_text(json.dumps(manifest))
    return d


def make_record(
    method: str,
    spearman_adv: float,
    spearman_nat: float,
    *,
    suite: str = "toy",
    version: int = 1,
    fingerprint: str = FP,
    split: str = "dev",
    method_version: str = "1",
    error_adv: float = 0.5,
    role: str = "method",
) -> dict:
    """A result record as advdla.scoring writes it: ``spearman_adv``/``_nat`` become importance MCC against the TE,
    ``error_adv`` the target error (lower is better)."""

    def m(kind: str, metric: str, v: float, n: int, hib: bool = True) -> dict:
        return {
            "kind": kind,
            "metric": metric,
            "against": "te",
            "chance": 0.0,
            "value": v,
            "lo": v - 0.1,
            "hi": v + 0.1,
            "n": n,
            "higher_is_better": hib,
        }

    metrics = [
        m("adversarial", "mcc", spearman_adv, 10),
        m("natural", "mcc", spearman_nat, 12),
        m("adversarial", "target_error", error_adv, 10, False),
        m("natural", "target_error", 0.1, 12, False),
    ]
    return ResultRecord(
        method={"name": method, "version": method_version, "params": {"seed": 0}, "estimand": "total", "role": role},
        suite={"name": suite, "version": version, "fingerprint": fingerprint, "model": "planted-erasure"},
        split=split,
        k=3,
        n_examples=22,
        metrics=metrics,
        wall_time_s=1.0,
        created="2026-01-01T00:00:00Z",
        environment={"git_commit": None, "versions": {}, "device": "cpu", "platform": "x"},
    ).to_dict()


@pytest.fixture
def lb(tmp_path):
    make_suite(tmp_path)
    return tmp_path / "leaderboard"


def test_ranking(lb):
    for rec in (make_record("dla", 0.2, 0.8), make_record("exact-te", 1.0, 1.0, role="reference"),
                make_record("random", 0.0, 0.0), make_record("split-half", 0.9, 0.9, role="ceiling")):
        add_record(rec, lb)
    rows = ranked_rows(load_board(lb).current)
    # the ceiling on top (not ranked), the methods ranked, the reference rows (they read the truth), then chance
    assert [(r["rank"], r["method"]) for r in rows] == [("ceiling", "split-half"), (1, "dla"), (2, "random"),
                                                        ("reference", "exact-te"), ("chance", "chance")]
    assert rows[1]["mcc@te_adv_ci"] == pytest.approx([0.1, 0.3])
    assert rows[-1]["mcc@te_adv"] == 0.0  # the chance row: what the records say an uninformed estimator scores
    # the target error is lower-is-better (the record says so), so ranking by it puts the smallest error first
    add_record(make_record("random", 0.0, 0.0, error_adv=0.0), lb)
    rows = ranked_rows(load_board(lb).current, sort="target_error")
    assert [r["method"] for r in rows if r["role"] == "method"] == ["random", "dla"]


def test_file_name_and_replacement(lb):
    p1 = add_record(make_record("dla", 0.2, 0.8), lb)
    assert p1.name == record_filename(parse_record(make_record("dla", 0.2, 0.8))) == "toy-v1-dev-dla-v1.json"
    p2 = add_record(make_record("dla", 0.3, 0.8), lb)  # re-scoring the same method replaces its record
    assert p1 == p2 and len(list(lb.glob("*.json"))) == 1
    assert load_board(lb).current[0].value("adversarial", "mcc@te") == 0.3
    assert not list(lb.glob(".*.tmp"))


def test_add_rejects_unknown_suite_and_wrong_fingerprint(lb):
    with pytest.raises(AdvdlaError, match="unknown suite 'toi'.*Did you mean 'toy'"):
        add_record(make_record("dla", 0.2, 0.8, suite="toi"), lb)
    with pytest.raises(AdvdlaError, match="re-score"):
        add_record(make_record("dla", 0.2, 0.8, fingerprint="b" * 64), lb)
    with pytest.raises(AdvdlaError, match="lacks the field 'split'"):
        add_record({k: v for k, v in make_record("dla", 0.2, 0.8).items() if k != "split"}, lb)
    assert not lb.exists() or not list(lb.glob("*.json"))


def test_stale_records_are_kept_apart(lb, tmp_path):
    add_record(make_record("dla", 0.2, 0.8), lb)
    add_record(make_record("exact-te", 1.0, 1.0, role="reference"), lb)
    make_suite(tmp_path, version=2, fingerprint="c" * 64)  # the suite was rebuilt
    add_record(make_record("random", 0.0, 0.0, version=2, fingerprint="c" * 64), lb)
    board = load_board(lb)
    assert [e.method for e in board.current] == ["random"]
    assert sorted(e.method for e, _ in board.stale) == ["dla", "exact-te"]
    md = render_markdown(board)
    assert "## Stale records" in md and md.index("| random") < md.index("## Stale")


def test_bad_records_are_one_line_each_and_the_rest_render(lb, capsys):
    add_record(make_record("dla", 0.2, 0.8), lb)
    (lb / "broken.json").write_text("{not json")
    (lb / "noschema.json").write_text(json.dumps({**make_record("x", 0, 0), "method": "x"}))
    (lb / "elsewhere.json").write_text(json.dumps(make_record("dla", 0.2, 0.8, suite="gone")))
    board = load_board(lb)
    assert [e.method for e in board.current] == ["dla"]
    assert len(board.problems) == 3 and all("\n" not in p for p in board.problems)
    assert any("broken.json: not valid JSON" in p for p in board.problems)
    assert any("elsewhere.json: unknown suite 'gone'" in p for p in board.problems)
    assert main(["leaderboard", "--dir", str(lb)]) == 0
    out, err = capsys.readouterr()
    assert "│ dla " in out and err.count("skipped") == 3


def test_a_suite_manifest_of_an_older_schema_is_a_problem_line(lb, tmp_path):
    """Manifests are read by advdla.suites.read_manifest: an outdated one is one problem line, not a crash."""
    add_record(make_record("dla", 0.2, 0.8), lb)
    manifest = tmp_path / "suites" / "toy" / "manifest.json"
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "schema_version": SCHEMA_VERSION - 1}))
    board = load_board(lb)
    assert not board.current and len(board.problems) == 1 and "schema version" in board.problems[0]


def test_empty_and_missing_folder(lb, tmp_path, capsys):
    lb.mkdir()
    assert main(["leaderboard", "--dir", str(lb)]) == 2  # an empty folder is an error with the way out
    assert "no records" in capsys.readouterr().err
    assert main(["leaderboard", "--dir", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no leaderboard folder" in err


def test_cli_add_json_markdown_and_render(lb, tmp_path, capsys):
    f = tmp_path / "rec.json"
    f.write_text(json.dumps([make_record("dla", 0.2, 0.8), make_record("random", 0.0, 0.0)]))  # score --out: a list
    assert main(["leaderboard", "add", str(f), "--dir", str(lb)]) == 0
    assert main(["leaderboard", "--dir", str(lb), "--format", "json", "--split", "dev"]) == 0
    out = capsys.readouterr().out
    payload = json.loads(out.split("\n", 2)[2])  # first lines: the paths `add` printed
    assert payload["boards"][0]["rows"][0]["method"] == "dla" and payload["verdicts"][0]["suite"] == "toy"
    assert main(["leaderboard", "--dir", str(lb), "--split", "test", "--format", "json"]) == 2  # matches nothing
    assert "Did you mean 'dev'" in capsys.readouterr().err
    assert main(["leaderboard", "render", "--dir", str(lb)]) == 0
    assert "| 1 | dla v1 |" in (lb / "LEADERBOARD.md").read_text()
    assert main(["leaderboard", "--dir", str(lb), "--sort", "mccc"]) == 2
    assert "Did you mean 'mcc@te'" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text("[1, 2]")
    assert main(["leaderboard", "add", str(tmp_path / "bad.json"), "--dir", str(lb)]) == 2


def _add_many(args):
    lb, suites, worker = args
    for i in range(5):
        add_record(make_record(f"m{worker}-{i}", 0.1 * i, 0.5), lb, suites_dir=suites)


def test_concurrent_adds_lose_nothing(lb, tmp_path):
    ctx = mp.get_context("fork")  # the children only parse JSON and write files: no torch work after the fork
    with ctx.Pool(4) as pool:
        pool.map(_add_many, [(lb, tmp_path / "suites", w) for w in range(4)])
    board = load_board(lb)
    assert len(board.current) == 20 and not board.problems
    assert {e.method for e in board.current} == {f"m{w}-{i}" for w in range(4) for i in range(5)}
    assert not list(lb.glob(".*.tmp"))


# --------------------------------------------------------------- groups, paired intervals, roles, columns


def _v2_record(method: str, per: dict[str, dict[str, float]], *, wall: float = 1.0, params: dict | None = None,
               split: str = "test", one_doc: str | None = None, role: str = "method") -> dict:
    """A record made by the real scoring code (aggregate + make_record) from hand-made per-example values.

    ``per``: example_id -> {metric: value} (scored against the TE); the examples' kinds and mechanisms come from
    :data:`EXAMPLES`. Each example is its own source file, except that ``one_doc`` puts every example of that
    mechanism in one.
    """
    from types import SimpleNamespace

    import pandas as pd

    from advdla.scoring import make_record as scoring_record
    from advdla.scoring.metrics import aggregate

    rows = [{"method": method, "example_id": i, "split": split, "kind": EXAMPLES[i][0], "mechanism": EXAMPLES[i][1],
             "cluster": f"doc{i}" if one_doc is None or EXAMPLES[i][1] != one_doc else "doc0", "metric": metric,
             "against": "te", "value": value, "chance": 0.0}
            for i, values in per.items() for metric, value in values.items()]
    per_frame = pd.DataFrame(rows)
    frame = aggregate(per_frame, n_boot=200)
    run = SimpleNamespace(name=method, version="1", params={"seed": 0, **(params or {})}, wall_time_s=wall,
                          per_example=per_frame)
    manifest = {"name": "toy", "version": 1, "fingerprint": FP, "model": "planted-erasure"}
    return scoring_record(run, frame, manifest, split=split, k=3, n_examples=len(per), device="cpu",
                          role=role).to_dict()


# 8 compensation and 4 baseline adversarial examples, 6 natural ones
EXAMPLES = {**{f"c{i}": ("adversarial", "compensation") for i in range(8)},
            **{f"b{i}": ("adversarial", "baseline") for i in range(4)},
            **{f"n{i}": ("natural", "none") for i in range(6)}}


def _values(mcc, alarm) -> dict[str, dict[str, float]]:
    """Per example {mcc, false_alarm}: ``mcc(i, kind, mechanism)``, ``alarm(i, kind, mechanism)``."""
    return {ex: {"mcc": mcc(i, *EXAMPLES[ex]), "false_alarm": alarm(i, *EXAMPLES[ex])}
            for i, ex in enumerate(EXAMPLES)}


def _noise(i: int) -> float:
    return ((i * 37) % 11 - 5) / 100  # deterministic, in [-0.05, 0.05]


def _dla_mcc(i, kind, mech):
    return {"compensation": 0.2, "baseline": 0.3, "none": 0.8}[mech] + _noise(i)


@pytest.fixture
def v2board(tmp_path):
    make_suite(tmp_path)
    lb = tmp_path / "leaderboard"
    records = {
        "dla": _values(_dla_mcc, lambda i, kind, mech: float(kind == "adversarial")),
        "atp": _values(lambda i, k, m: _dla_mcc(i, k, m) + (0.4 if m == "compensation" else 0.0) + _noise(i + 3),
                       lambda i, kind, mech: 0.0),
        "dla-relative": _values(lambda i, k, m: _dla_mcc(i, k, m) + _noise(i + 5),
                                lambda i, kind, mech: float(mech == "compensation" or (mech == "baseline" and i == 8))),
        "random": _values(lambda i, k, m: _noise(i), lambda i, kind, mech: float(i % 4 == 0)),
    }
    for method, per in records.items():
        add_record(_v2_record(method, per, params={"budget": 5} if method == "atp" else None), lb)
    add_record(_v2_record("split-half", _values(lambda i, k, m: 0.95, lambda *a: 0.0), role="ceiling"), lb)
    add_record(_v2_record("exact-te", _values(lambda i, k, m: 1.0, lambda *a: 0.0), role="reference"), lb)
    return lb


def test_rows_carry_groups_and_paired_differences_from_dla(v2board):
    rows = {r["method"]: r for r in ranked_rows(load_board(v2board).current)}
    assert rows["split-half"]["rank"] == "ceiling" and rows["exact-te"]["rank"] == "reference"
    atp, rel = rows["atp"], rows["dla-relative"]
    assert (atp["n_comp"], atp["n_base"], atp["n_nat"]) == (8, 4, 6)
    mean, lo, hi = atp["vs_dla_mcc@te_adv"]
    assert mean == pytest.approx(np.mean([0.4 * (i < 8) + _noise(i + 3) for i in range(12)])) and lo > 0
    _, lo, hi = rel["vs_dla_mcc@te_adv"]
    assert lo < 0 < hi  # no real difference: the interval straddles 0
    assert "vs_dla_mcc@te_adv" not in rows["dla"] and "vs_dla_mcc@te_adv" not in rows["exact-te"]
    assert atp["mcc@own_adv"] == atp["mcc@te_adv"]  # a total-effect method's own estimand is the TE


def test_paired_interval_is_narrower_than_the_two_separate_ones(v2board):
    """Same examples, a constant shift plus small noise: the separate intervals overlap, the paired one does not."""
    from advdla.leaderboard import beats

    board = {e.method: e for e in load_board(v2board).current}
    atp, dla = board["atp"], board["dla"]
    assert beats(atp, dla, "mcc@te", "compensation") is True
    assert beats(board["dla-relative"], dla, "mcc@te", "compensation") is False
    assert beats(atp, dla, "false_alarm@te", "compensation") is True  # lower is better for the false alarm
    assert beats(atp, dla, "mcc@te", "natural") is False


def test_examples_from_one_document_get_no_interval(v2board):
    """The baseline examples all cut from one source file (as a search that settles on one context leaves them): no
    interval on their column."""
    for method in ("dla", "dla-relative"):
        per = _values(_dla_mcc, lambda i, kind, mech, m=method: float(kind == "adversarial" and m == "dla"))
        add_record(_v2_record(method, per, one_doc="baseline"), v2board)
    rows = {r["method"]: r for r in ranked_rows(load_board(v2board).current)}
    assert all(math.isnan(x) for x in rows["dla"]["false_alarm@te_base_ci"]) and rows["dla"]["false_alarm@te_base"] == 1
    assert not any(math.isnan(x) for x in rows["dla"]["false_alarm@te_comp_ci"])  # eight files: an interval


def test_sort_by_a_mechanism_and_unknown_groups(v2board):
    entries = load_board(v2board).current
    rows = ranked_rows(entries, sort="compensation.false_alarm")
    assert rows[1]["method"] == "atp" and rows[1]["false_alarm@te_comp"] == 0.0
    with pytest.raises(AdvdlaError, match="unknown group 'compensaton'.*Did you mean 'compensation'"):
        ranked_rows(entries, sort="compensaton.mcc")


def test_cli_show_prints_the_verdict_and_json_carries_it(v2board, capsys):
    assert main(["leaderboard", "--dir", str(v2board)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "split-half" in out and "Pre-registered hypotheses" in out and "Verdict:" in out
    assert main(["leaderboard", "--dir", str(v2board), "--format", "json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["boards"][0]["rows"][0]["rank"] == "ceiling"
    assert payload["verdicts"][0]["results"][0]["outcome"].startswith("no test: not scored on dev")


def test_roles_come_from_the_record(v2board):
    """The ceiling and the reference rows are what their records say; a record without a role falls back to the
    method registry, and a method not registered here (an uninstalled plug-in) is ranked like any method."""
    from advdla.leaderboard import role

    roles = {e.method: role(e) for e in load_board(v2board).current}
    assert roles == {"dla": "method", "atp": "method", "dla-relative": "method", "random": "method",
                     "split-half": "ceiling", "exact-te": "reference"}
    unregistered = make_record("not-installed-plugin", 0.1, 0.2)
    del unregistered["method"]["role"]
    assert role(parse_record(unregistered)) == "method"


def test_a_column_is_one_entry(v2board):
    """Registering a Column adds it to the markdown table (and, with a compact title, the terminal's), in order."""
    from advdla.leaderboard import COLUMNS, Column, register_column
    from advdla.leaderboard.columns import estimate_cell

    rows = ranked_rows(load_board(v2board).current)
    before = list(display_rows(rows)[0])
    register_column(Column("Kendall adv", "kendall_adv", estimate_cell, compact_title="tau adv"))
    try:
        rows[0]["kendall_adv"], rows[0]["kendall_adv_ci"] = 0.5, [0.25, 0.75]
        assert list(display_rows(rows)[0]) == [*before, "Kendall adv"]
        assert display_rows(rows)[0]["Kendall adv"] == "0.50 [0.25, 0.75]"
        assert display_rows(rows, compact=True)[0]["tau adv"] == "0.50\n[0.25,0.75]"
        assert display_rows(rows)[1]["Kendall adv"] == "-"  # a row without the value
    finally:
        COLUMNS.remove("Kendall adv")
    assert list(display_rows(rows)[0]) == before


def test_the_board_fits_80_columns_without_cutting_a_number(v2board):
    """At COLUMNS=80 the default board (and its frontier) prints every line within 80 characters and no cell is cut
    (rich marks a cut cell with an ellipsis)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "COLUMNS": "80"}
    out = subprocess.run([sys.executable, "-c", "from advdla.cli import main; main()", "leaderboard", "--dir",
                          str(v2board), "--frontier"], capture_output=True, text=True, env=env, check=True).stdout
    assert "atp" in out and "0.95" in out
    assert "\u2026" not in out and max(len(line) for line in out.splitlines()) <= 80
