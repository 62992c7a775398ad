"""The leaderboard: records in, ranked tables out; stale and broken records apart; concurrent adds lose nothing."""

from __future__ import annotations

import json
import multiprocessing as mp
from pathlib import Path

import pytest

from advdla.cli import main
from advdla.errors import AdvdlaError
from advdla.leaderboard import add_record, load_board, parse_record, ranked_rows, record_filename, render_markdown

FP = "a" * 64


def make_suite(root: Path, name: str = "toy", version: int = 1, fingerprint: str = FP) -> Path:
    """A suite folder holding only the manifest fields the leaderboard reads."""
    d = root / "suites" / name
    d.mkdir(parents=True, exist_ok=True)
    (d / "manifest.json").write_text(json.dumps({"name": name, "version": version, "fingerprint": fingerprint}))
    return d


def make_record(method: str, spearman_adv: float, spearman_nat: float, *, suite: str = "toy", version: int = 1,
                fingerprint: str = FP, split: str = "dev", method_version: str = "1", fooled_adv: float = 0.5) -> dict:
    """A result record in the scoring module's schema (nested method / suite, metrics per kind with intervals)."""
    def m(v: float) -> dict:
        return {"value": v, "low": v - 0.1, "high": v + 0.1}

    return {"method": {"name": method, "version": method_version},
            "suite": {"name": suite, "version": version, "fingerprint": fingerprint}, "split": split,
            "metrics": {"adversarial": {"spearman": m(spearman_adv), "fooled_rate": m(fooled_adv), "n": 10},
                        "natural": {"spearman": m(spearman_nat), "fooled_rate": m(0.1), "n": 12}},
            "git_commit": "0" * 40, "versions": {"advdla": "0.1.0"}, "device": "cpu", "wall_seconds": 1.0}


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
    # fooled rate: lower is better, so ranking by it puts the least-fooled first
    rows = ranked_rows(load_board(lb).current, sort="fooled_rate")
    assert rows[0]["method"] in {"oracle", "dla", "random"} and rows[0]["fooled_rate_adv"] == min(r["fooled_rate_adv"] for r in rows)


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
    with pytest.raises(AdvdlaError, match="no .split."):
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
    (lb / "noschema.json").write_text(json.dumps({"method": "x"}))
    (lb / "elsewhere.json").write_text(json.dumps(make_record("dla", 0.2, 0.8, suite="gone")))
    board = load_board(lb)
    assert [e.method for e in board.current] == ["dla"]
    assert len(board.problems) == 3 and all("\n" not in p for p in board.problems)
    assert any("broken.json: not valid JSON" in p for p in board.problems)
    assert any("elsewhere.json: unknown suite 'gone'" in p for p in board.problems)
    assert main(["leaderboard", "--dir", str(lb)]) == 0
    out, err = capsys.readouterr()
    assert "dla v1" in out and err.count("skipped") == 3


def test_empty_and_missing_folder(lb, tmp_path, capsys):
    lb.mkdir()
    assert main(["leaderboard", "--dir", str(lb)]) == 0
    assert "no current records" in capsys.readouterr().err
    assert main(["leaderboard", "--dir", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no leaderboard folder" in err


def test_cli_add_json_markdown_and_render(lb, tmp_path, capsys):
    f = tmp_path / "rec.json"
    f.write_text(json.dumps(make_record("dla", 0.2, 0.8)))
    assert main(["leaderboard", "add", str(f), "--dir", str(lb)]) == 0
    assert main(["leaderboard", "--dir", str(lb), "--format", "json", "--split", "dev"]) == 0
    out = capsys.readouterr().out
    payload = json.loads(out.split("\n", 1)[1])  # first line: the path `add` printed
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
    ctx = mp.get_context("spawn")
    with ctx.Pool(4) as pool:
        pool.map(_add_many, [(lb, tmp_path / "suites", w) for w in range(4)])
    board = load_board(lb)
    assert len(board.current) == 20 and not board.problems
    assert {e.method for e in board.current} == {f"m{w}-{i}" for w in range(4) for i in range(5)}
    assert not list(lb.glob(".*.tmp"))
