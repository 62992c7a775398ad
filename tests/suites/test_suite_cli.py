"""``advdla suite build | info | verify | regenerate-test`` end to end; bad input is one line and exit 2.

Builds use a stub finder (corpus windows, patched in for the search) so the CLI tests stay fast.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from advdla.cli import main
from advdla.suites.build import Candidate

SHIPPED = Path(__file__).resolve().parents[2] / "suites"


def corpus_finder(bridge, target, *, cfg, seed, n, windows, out_dir, exclude_docs=frozenset(), progress=None,
                  precision=None):
    """Stub search: n corpus windows (each from its own document, none of the excluded ones); ``precision`` (the
    screens' dtype, which the build passes to the real search) changes nothing here."""
    tokens, docs = windows.sample(cfg.seq_len, n, seed=seed + 99, exclude=set(exclude_docs))
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
    ("name: x\nresamples: -1\n", "resamples must be an integer >= 2"),
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


KILL_CONFIG = """\
name: killed
model: planted-erasure
seq_len: 12
targets: [L0H1]
search: {trials: 4, batch: 8}
resamples: 2
method_resamples: 2
thresholds: {margin: 0.5}
splits: {n_dev: 3, n_test: 2, n_natural: 2, natural_scan: 200}
"""


def test_a_build_killed_with_sigkill_resumes_to_the_same_fingerprint(tmp_path):
    """SIGKILL a real build (search included) once some examples are written; the rerun computes only the rest and
    ends with the fingerprint of an uninterrupted build."""
    import os
    import signal
    import subprocess
    import sys
    import time

    config = tmp_path / "killed.yaml"
    config.write_text(KILL_CONFIG)
    cmd = [sys.executable, "-m", "advdla.cli", "suite", "build", str(config), "--out"]
    env = {**os.environ, "ADVDLA_HOME": os.environ.get("ADVDLA_HOME", str(Path.home() / ".cache/advdla"))}
    proc = subprocess.Popen([*cmd, str(tmp_path / "k")], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    done = tmp_path / ".k.partial" / "examples"
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None and len(list(done.glob("*.json"))) < 3:
        time.sleep(0.2)
    assert proc.poll() is None, "the build finished before it could be killed: make it bigger"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = {p.name: p.stat().st_mtime_ns for p in done.glob("*.json")}
    assert len(before) >= 3 and not (tmp_path / "k").exists()
    subprocess.run([*cmd, str(tmp_path / "k")], env=env, check=True, capture_output=True)
    subprocess.run([*cmd, str(tmp_path / "ref")], env=env, check=True, capture_output=True)
    resumed = json.loads((tmp_path / "k" / "manifest.json").read_text())
    reference = json.loads((tmp_path / "ref" / "manifest.json").read_text())
    assert resumed["fingerprint"] == reference["fingerprint"]
    assert not (tmp_path / ".k.partial").exists() and not (tmp_path / ".ref.partial").exists()


def test_resume_recomputes_nothing_finished(tmp_path, planted, monkeypatch):
    """In process: a build stopped after its fourth example (Ctrl-C) computes exactly the remaining ones on rerun."""
    import advdla.suites.build as build
    from advdla.suites import build_suite, config_from_dict

    cfg = config_from_dict({"name": "r", "model": "planted-erasure", "seq_len": 12, "targets": ["L0H1"],
                            "resamples": 2, "method_resamples": 2, "thresholds": {"margin": 0.5},
                            "splits": {"n_dev": 2, "n_test": 2, "n_natural": 1, "natural_scan": 200}})
    computed, real = [], build._truth_example

    def counting(ctx, split, kind, cand, eid):
        if len(computed) == 4 and not ctx.partial.root.joinpath("resumed").exists():
            ctx.partial.root.joinpath("resumed").touch()
            raise KeyboardInterrupt
        computed.append(eid)
        return real(ctx, split, kind, cand, eid)

    monkeypatch.setattr(build, "_truth_example", counting)
    with pytest.raises(KeyboardInterrupt):
        build_suite(cfg, tmp_path / "r", find=corpus_finder, bridge=planted)
    assert len(computed) == 4 and (tmp_path / ".r.partial").is_dir()
    build_suite(cfg, tmp_path / "r", find=corpus_finder, bridge=planted)
    assert len(computed) == len(set(computed))  # nothing computed twice
    monkeypatch.setattr(build, "_truth_example", real)
    reference = build_suite(cfg, tmp_path / "ref", find=corpus_finder, bridge=planted)
    fingerprint = json.loads((tmp_path / "r" / "manifest.json").read_text())["fingerprint"]
    assert fingerprint == json.loads((reference / "manifest.json").read_text())["fingerprint"]


def three_candidates(bridge, target, *, cfg, seed, n, windows, out_dir, exclude_docs=frozenset(), progress=None):
    """Stub search that finds 3 candidates however many are asked for."""
    return corpus_finder(bridge, target, cfg=cfg, seed=seed, n=3, windows=windows, out_dir=out_dir,
                         exclude_docs=exclude_docs)


def test_a_build_short_of_examples_keeps_its_truth_for_a_smaller_rerun(tmp_path, planted, monkeypatch):
    """A build that stops for want of examples keeps every example's truth; rerun with a lower count (another
    config key) it computes nothing twice and ends with the fingerprint of a fresh build of that config."""
    import advdla.suites.build as build
    from advdla.errors import AdvdlaError
    from advdla.suites import build_suite, config_from_dict

    base = {"name": "s", "model": "planted-erasure", "seq_len": 12, "targets": ["L0H1"], "resamples": 2,
            "method_resamples": 2, "thresholds": {"margin": 0.5}}
    big = config_from_dict({**base, "splits": {"n_dev": 6, "n_test": 1, "n_natural": 1, "natural_scan": 200}})
    small = config_from_dict({**base, "splits": {"n_dev": 2, "n_test": 1, "n_natural": 1, "natural_scan": 200}})
    computed, real = [], build._truth_example

    def counting(ctx, split, kind, cand, eid):
        computed.append(eid)
        return real(ctx, split, kind, cand, eid)

    monkeypatch.setattr(build, "_truth_example", counting)
    with pytest.raises(AdvdlaError, match="candidates hold on the final truth"):
        build_suite(big, tmp_path / "s", find=three_candidates, bridge=planted)
    first = list(computed)
    assert len(first) == 3 and (tmp_path / ".s.partial" / "examples").is_dir()  # kept for the rerun
    build_suite(small, tmp_path / "s", find=three_candidates, bridge=planted)
    assert len(computed) == len(set(computed)) and set(first) & set(computed[3:]) == set()
    monkeypatch.setattr(build, "_truth_example", real)
    reference = build_suite(small, tmp_path / "ref", find=three_candidates, bridge=planted)
    fingerprint = json.loads((tmp_path / "s" / "manifest.json").read_text())["fingerprint"]
    assert fingerprint == json.loads((reference / "manifest.json").read_text())["fingerprint"]
    monkeypatch.setattr(build, "_truth_example", counting)  # other truth settings: nothing of the old state fits
    with pytest.raises(AdvdlaError, match="candidates hold"):
        build_suite(big, tmp_path / "u", find=three_candidates, bridge=planted)
    failed = computed[-3:]
    computed.clear()
    build_suite(small.with_(resamples=3), tmp_path / "u", find=three_candidates, bridge=planted)
    assert failed[0] in computed  # the same first prompt's truth computed again, now over 3 resamples
