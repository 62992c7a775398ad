"""``advdla search`` as a process: killed with SIGKILL and resumed, two workers on one storage, one-line errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import optuna
import pytest

from advdla.models.planted import PLANTED
from advdla.search.storage import open_storage

ARGS = [
    "--model",
    "planted-erasure",
    "--target",
    PLANTED.writer,
    "--batch",
    "8",
    "--resamples",
    "2",
    "--seq-len",
    "16",
    "--threads",
    "1",
    "--no-progress",
]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}


def _search(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "advdla.cli", "search", *ARGS, *args],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def _trials(storage: str, study: str = "advdla-search") -> list:
    try:
        return optuna.load_study(study_name=study, storage=open_storage(storage)).get_trials(deepcopy=False)
    except KeyError:  # the study does not exist yet
        return []


def test_sigkill_mid_run_then_resume_loses_and_repeats_nothing(tmp_path):
    out = tmp_path / "out"
    url = f"sqlite:///{out / 'study.db'}"
    proc = _search("--trials", "120", "--out", str(out))
    deadline = time.time() + 240
    while (
        time.time() < deadline and proc.poll() is None and len(_trials(url) if (out / "study.db").exists() else []) < 16
    ):
        time.sleep(0.2)
    assert proc.poll() is None, f"the search ended before it could be killed: {proc.communicate()[1][-500:]}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = {t.number: t.params for t in _trials(url)}
    assert 16 <= len(before) < 120
    proc = _search("--trials", "120", "--out", str(out), "--format", "json")
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr[-800:]
    after = _trials(url)
    assert sorted(t.number for t in after) == list(range(120))  # no number lost, none twice
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in after)
    assert {t.number: t.params for t in after if t.number in before} == before  # the stored trials are untouched
    assert len({t.user_attrs["uid"] for t in after}) == 120
    summary = json.loads(stdout)
    assert (
        summary["counts"]["stored_by_this_worker"] == 120 - len(before)
        and summary["counts"]["study_complete_trials"] == 120
    )


def _stop_outside_lock(proc: subprocess.Popen, lock: str) -> None:
    """SIGSTOP ``proc`` at a moment it does not hold the journal's lock (so the other worker is never blocked)."""
    while True:
        proc.send_signal(signal.SIGSTOP)
        if not os.path.lexists(lock):
            return
        proc.send_signal(signal.SIGCONT)
        time.sleep(0.01)


def _wait_for(condition, what: str, timeout: float = 300.0) -> None:
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, f"timed out waiting until {what}"
        time.sleep(0.05)


def test_two_workers_share_one_journal_storage(tmp_path):
    """Two workers on one journal: both store trials, no number twice, the budget holds.

    The overlap is forced, not left to timing: worker A is paused (outside the journal lock) after its first
    stored trial and resumed once worker B has stored one, so on any machine both workers really share the study.
    """
    log = tmp_path / "study.log"
    url = f"journal:{log}"

    def worker(i: int) -> subprocess.Popen:
        return _search("--trials", "64", "--out", str(tmp_path / f"w{i}"), "--storage", url, "--study", "shared",
                       "--format", "json")

    def stored_by(proc: subprocess.Popen) -> int:
        trials = _trials(url, "shared") if log.exists() else []
        done = optuna.trial.TrialState.COMPLETE
        return sum(t.state == done and t.user_attrs.get("worker", {}).get("pid") == proc.pid for t in trials)

    first = worker(0)
    _wait_for(lambda: first.poll() is not None or stored_by(first) >= 1, "worker A stored a trial")
    assert first.poll() is None, f"worker A ended early: {first.communicate()[1][-800:]}"
    _stop_outside_lock(first, f"{log}.lock")
    assert stored_by(first) < 64, "worker A used the whole budget before it could be paused"
    second = worker(1)
    try:
        _wait_for(lambda: second.poll() is not None or stored_by(second) >= 1, "worker B stored a trial")
    finally:
        first.send_signal(signal.SIGCONT)
    procs = [first, second]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-800:] for o in outs]
    stored = [json.loads(o[0])["counts"]["stored_by_this_worker"] for o in outs]
    trials = _trials(url, "shared")
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers)) == sum(stored)  # the workers' counts add up, no number twice
    assert 64 <= len(trials) <= 64 + 8  # the budget, up to one racing batch
    assert all(s > 0 for s in stored)  # both did work
    assert {t.user_attrs["worker"]["pid"] for t in trials} == {first.pid, second.pid}


@pytest.mark.parametrize(
    "args, message",
    [
        (["--trials", "0"], "--trials must be at least 1"),
        (["--target", "L7H1"], "does not exist"),
        (["--target", "L0H1x"], "unknown component"),
        (["--target", "MLP2"], "no downstream component"),
        (["--storage", "sqlite:////no/such/dir/study.db"], "cannot open storage"),
        (["--storage", "postgresql://nobody@127.0.0.1:1/advdla"], "cannot open storage"),
        (["--objective", "compensatoin"], "unknown objective 'compensatoin'"),
        (["--seq-len", "100"], "needs 200 positions but the model has a context of 128"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    argv = [a for a in ARGS if a not in ("--target", PLANTED.writer)] if "--target" in args else ARGS
    proc = subprocess.run(
        [sys.executable, "-m", "advdla.cli", "search", *argv, "--out", str(tmp_path / "o"), *args],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and "Warning" not in ln and not ln.startswith(" ")]
    assert len(lines) == 1 and message in lines[0], proc.stderr[-800:]
    assert not (tmp_path / "o" / "examples.parquet").exists()


def test_yield_table_in_process(capsys, tmp_path):
    """``advdla search --yield``: three arms at equal budgets per seed, verified per 100 with intervals, as JSON."""
    from advdla import cli

    argv = ["search", *ARGS, "--yield", "--seeds", "0", "--trials", "16", "--max-verify", "4", "--objectives",
            "compensation", "--out", str(tmp_path / "y"), "--format", "json"]
    assert cli.main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    arms = {(r["objective"], r["arm"]) for r in out["yield"]}
    assert arms == {("compensation", a) for a in ("tpe", "random", "natural")}
    for r in out["yield"]:
        assert r["candidates"] == 16 and 0 <= r["ci_low"] <= r["per_100"] <= r["ci_high"] <= 100
    assert all(r["target"] == PLANTED.writer for r in out["runs"]) and (tmp_path / "y" / "yield.csv").exists()
    assert cli.main([*argv[:-4], "--seeds", "x", "--out", str(tmp_path / "z")]) == 2
    assert "--seeds" in capsys.readouterr().err and not (tmp_path / "z").exists()
