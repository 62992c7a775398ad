"""The leaderboard: records in, ranked tables out; stale and broken records apart; concurrent adds lose nothing."""

from __future__ import annotations

import json
import multiprocessing as mp
from pathlib import Path

import pytest

from advdla.cli import main
from advdla.errors import AdvdlaError
from advdla.leaderboard import add_record, load_board, parse_record, ranked_rows, record_filename, render_markdown
from advdla.scoring import ResultRecord

FP = "a" * 64


def make_suite(root: Path, name: str = "toy", version: int = 1, fingerprint: str = FP) -> Path:
    """A suite folder holding only the manifest fields the leaderboard reads."""
    d = root / "suites" / name
    d.mkdir(parents=True, exist_ok=True)
    (d / "manifest.json").write_text(json.dumps({"name": name, "version": version, "fingerprint": fingerprint}))
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
    fooled_adv: float = 0.5,
) -> dict:
    """A result record as advdla.scoring writes it."""

    def m(kind: str, metric: str, v: float, n: int, hib: bool = True) -> dict:
        return {
            "kind": kind,
            "metric": metric,
            "value": v,
            "lo": v - 0.1,
            "hi": v + 0.1,
            "n": n,
            "higher_is_better": hib,
        }

    metrics = [
        m("adversarial", "spearman", spearman_adv, 10),
        m("natural", "spearman", spearman_nat, 12),
        m("adversarial", "fooled", fooled_adv, 10, False),
        m("natural", "fooled", 0.1, 12, False),
    ]
    return ResultRecord(
        method={"name": method, "version": method_version, "params": {"seed": 0}},
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


def test_ranking_and_drop(lb):
    for rec in (make_record("dla", 0.2, 0.8), make_record("oracle", 1.0, 1.0), make_record("random", 0.0, 0.0)):
        add_record(rec, lb)
    rows = ranked_rows(load_board(lb).current)
    assert [r["method"] for r in rows] == ["oracle", "dla", "random"]
    assert rows[1]["drop_spearman"] == pytest.approx(0.6)
    assert rows[1]["spearman_adv_ci"] == pytest.approx([0.1, 0.3])
    # the fooled rate is lower-is-better (the record says so), so ranking by it puts the least-fooled first
    add_record(make_record("oracle", 1.0, 1.0, fooled_adv=0.0), lb)
    rows = ranked_rows(load_board(lb).current, sort="fooled")
    assert [r["method"] for r in rows] == ["oracle", "random", "dla"] or rows[0]["method"] == "oracle"
    assert rows[0]["fooled_adv"] == 0.0 and rows[-1]["fooled_adv"] == 0.5


def test_file_name_and_replacement(lb):
    p1 = add_record(make_record("dla", 0.2, 0.8), lb)
    assert p1.name == record_filename(parse_record(make_record("dla", 0.2, 0.8))) == "toy-v1-dev-dla-v1.json"
    p2 = add_record(make_record("dla", 0.3, 0.8), lb)  # re-scoring the same method replaces its record
    assert p1 == p2 and len(list(lb.glob("*.json"))) == 1
    assert load_board(lb).current[0].value("adversarial", "spearman") == 0.3
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
    add_record(make_record("oracle", 1.0, 1.0), lb)
    make_suite(tmp_path, version=2, fingerprint="c" * 64)  # the suite was rebuilt
    add_record(make_record("random", 0.0, 0.0, version=2, fingerprint="c" * 64), lb)
    board = load_board(lb)
    assert [e.method for e in board.current] == ["random"]
    assert sorted(e.method for e, _ in board.stale) == ["dla", "oracle"]
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


def test_empty_and_missing_folder(lb, tmp_path, capsys):
    lb.mkdir()
    assert main(["leaderboard", "--dir", str(lb)]) == 0
    assert "no current records" in capsys.readouterr().err
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
    assert payload["boards"][0]["rows"][0]["method"] == "dla" and payload["boards"][0]["fingerprint"] == FP
    assert main(["leaderboard", "--dir", str(lb), "--split", "test", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["boards"] == []
    assert main(["leaderboard", "render", "--dir", str(lb)]) == 0
    assert "| 1 | dla v1 |" in (lb / "LEADERBOARD.md").read_text()
    assert main(["leaderboard", "--dir", str(lb), "--sort", "spearmann"]) == 2
    assert "Did you mean 'spearman'" in capsys.readouterr().err
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
