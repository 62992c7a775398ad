"""``advdla suite build | info | verify | regenerate-test`` end to end; bad input is one line and exit 2.

Builds use a stub finder (corpus windows, patched in for the search) so the CLI tests stay fast.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from advdla.cli import main
from advdla.suites.build import Candidate

SHIPPED = Path(__file__).resolve().parents[1] / "suites"


def corpus_finder(bridge, target, *, cfg, seed, n, windows, out_dir, progress=None):
    """Stub search: n corpus windows (each from its own document)."""
    tokens, docs = windows.sample(cfg.seq_len, n, seed=seed + 99)
    return [Candidate(tuple(t.tolist()), target.name, d) for t, d in zip(tokens, docs)], {"engine": "stub"}

CONFIG = """\
name: cli-suite
model: planted-erasure
seq_len: 12
targets: [L0H1]
search: {trials: 4, batch: 8}
resamples: 2
splits: {n_dev: 2, n_test: 1, n_natural: 1}
"""


@pytest.fixture
def stub_search(monkeypatch, planted):
    import advdla.suites.build
    import advdla.suites.verify

    def load(name, **kw):
        return planted if name == "planted-erasure" else _no(name)

    monkeypatch.setattr(advdla.suites.build, "search_candidates", corpus_finder)
    for module in (advdla.suites.build, advdla.suites.verify):
        monkeypatch.setattr(module, "load_model", load)


def _no(name):
    raise AssertionError(f"unexpected model load {name}")


def one_error_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1, err
    return err[0]


def test_build_info_verify_regenerate(tmp_path, capsys, stub_search):
    cfg = tmp_path / "cli-suite.yaml"
    cfg.write_text(CONFIG)
    assert main(["suite", "build", str(cfg)]) == 0
    out = tmp_path / "cli-suite"
    assert "built" in capsys.readouterr().out and (out / "manifest.json").is_file()

    assert main(["suite", "info", str(out), "--format", "json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["counts"] == {"dev": {"adversarial": 2, "natural": 1}, "test": {"adversarial": 1, "natural": 1}}
    assert info["targets"] == ["L0H1"] and info["thresholds"]["top_k"] == 3
    assert [f["step"] for f in info["fingerprints"]][-1] == "examples"
    assert main(["suite", "info", str(out)]) == 0 and "fingerprint chain" in capsys.readouterr().out

    assert main(["suite", "verify", str(out), "--sample", "1", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True

    assert main(["suite", "build", str(cfg)]) == 2
    assert "already exists: pass --force" in one_error_line(capsys)

    assert main(["suite", "regenerate-test", str(out), "--seed", "3"]) == 0
    capsys.readouterr()
    assert main(["suite", "info", str(out), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["test_seed"] == 3

    (out / "README.md").write_text("edited\n")
    assert main(["suite", "verify", str(out), "--sample", "0"]) == 2
    assert "README.md was modified" in one_error_line(capsys)


@pytest.mark.parametrize("text, message", [
    ("name: x\nmodel: planted-erasure\nbogus: 1\n", "unknown key 'bogus'; allowed keys:"),
    ("name: x\nresamples: -1\n", "resamples must be an integer >= 1"),
    ("name: [unclosed\n", "not valid YAML"),
])
def test_bad_config_exits_2_with_one_line(tmp_path, capsys, text, message):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(text)
    assert main(["suite", "build", str(cfg), "--out", str(tmp_path / "o")]) == 2
    assert message in one_error_line(capsys)
    assert not (tmp_path / "o").exists()


def test_bad_paths_exit_2(tmp_path, capsys):
    assert main(["suite", "info", str(tmp_path / "missing")]) == 2
    assert "no such directory" in one_error_line(capsys)
    (tmp_path / "empty").mkdir()
    assert main(["suite", "verify", str(tmp_path / "empty")]) == 2
    assert "manifest.json is missing" in one_error_line(capsys)
    assert main(["suite", "build", str(tmp_path / "none.yaml")]) == 2
    assert "not found" in one_error_line(capsys)


@pytest.mark.slow
def test_shipped_smollm2_suite_verifies_one_example(capsys):
    path = SHIPPED / "smollm2-135m-erasure"
    if not path.exists():
        pytest.skip("suites/smollm2-135m-erasure has not been built yet")
    assert main(["suite", "verify", str(path), "--sample", "1", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True
