"""Three ``advdla search`` workers on one study, one SIGKILLed mid-run, then resumed: on a real PostgreSQL
server and on a journal file.

What the search loop promises (advdla/search/loop.py, ``StoredStudyMirror`` and ``run_batch``): every trial reaches the
storage whole, in one ``Study.add_trial`` (one transaction on an RDB, one journal record), so the storage
only ever holds COMPLETE trials and a killed worker loses its unfinished batch and nothing else; trial
numbers are assigned by the storage; and a worker stores a finished batch only up to what is still free of
the budget, as seen by its last read of the study just before storing.

The bound on the budget. A worker's store of a batch takes at most ``trials - c`` trials, where ``c`` is the
complete count it read just before. Take the last store that wrote anything: it read ``c`` (which includes
every store finished before that read) and wrote at most ``trials - c``; what else can land afterwards is
the rest of the stores other workers were in the middle of at that read, at most one batch each. So with
at most W workers alive at once the study ends with ``trials <= complete <= trials + (W - 1) * batch``.
Here W = 3 (the killed worker dies before anything else starts), so the bound is ``trials + 2 * batch``;
a single worker resuming alone must stop at the budget exactly.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import optuna
import pytest
from optuna.trial import TrialState
from pg_server import postgres_url  # noqa: F401  (the fixture: a throwaway PostgreSQL server)

from advdla.errors import AdvdlaError
from advdla.search.storage import open_storage

BATCH = 8
BUDGET = 96  # the three workers' budget
RESUMED_BUDGET = BUDGET + 4 * BATCH  # the resumed worker's: above what the three can overshoot to, so it has work
WORKERS = 3
ARGS = ["--model", "planted-erasure", "--target", "L0H1", "--batch", str(BATCH), "--resamples", "2", "--seq-len", "16",
        "--threads", "1", "--no-progress", "--max-verify", "2", "--verify-resamples", "1", "--format", "json"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
STUDY = "scale-out"
# How long after a worker's first stored trial it is killed. On PostgreSQL storing one trial takes tens of ms, so
# 0.3 s later the worker is typically inside a later batch, often in the middle of storing it (a kill right at
# the first sighting tends to land between two stores). A journal write is one record: no delay needed.
KILL_DELAY = {"postgresql": 0.3, "journal": 0.0}


def _worker(url: str, out, trials: int) -> subprocess.Popen:
    argv = [*ARGS, "--trials", str(trials), "--storage", url, "--study", STUDY, "--out", str(out)]
    return subprocess.Popen([sys.executable, "-m", "advdla.cli", "search", *argv], env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _direct_storage(url: str):
    """The same storage opened by optuna itself, not through advdla (``postgresql+psycopg2``: the test driver)."""
    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        return JournalStorage(JournalFileBackend(url.removeprefix("journal:")))
    return optuna.storages.RDBStorage(url.replace("postgresql://", "postgresql+psycopg2://", 1))


def _all_trials(url: str) -> list:
    return optuna.load_study(study_name=STUDY, storage=_direct_storage(url)).get_trials(deepcopy=False)


class _Watcher:
    """Reads the study while the workers run (incrementally: one storage, one study object, opened once they exist)."""

    def __init__(self, url: str):
        self.url, self.storage, self.study = url, None, None

    def trials(self) -> list:
        try:
            if self.storage is None:
                self.storage = open_storage(self.url)  # advdla's opener: it retries the schema-creation race
            if self.study is None:
                self.study = optuna.load_study(study_name=STUDY, storage=self.storage)
        except (AdvdlaError, KeyError):  # no schema or no study yet: the workers are still starting
            return []
        return self.study.get_trials(deepcopy=False)


def _kill_one_mid_run(procs: list[subprocess.Popen], url: str, delay: float) -> tuple[subprocess.Popen, int]:
    """SIGKILL the first worker seen storing trials, ``delay`` seconds after that, while the study is still well
    short of the budget (so the worker is provably inside its ask/score/store loop, not starting up or verifying).
    Returns it and the complete count read just before the kill."""
    watcher, deadline, victim = _Watcher(url), time.time() + 240, None
    while time.time() < deadline:
        ended = [p for p in procs if p.poll() is not None]
        assert not ended, f"a worker ended before one could be killed: {ended[0].communicate()[1][-1500:]}"
        storing = {t.user_attrs.get("worker", {}).get("pid") for t in watcher.trials()}
        victim = next((p for p in procs if p.pid in storing), None)
        if victim is not None:
            break
        time.sleep(0.02)
    else:
        pytest.fail("no worker stored a trial within 240 s")
    time.sleep(delay)
    seen = len(watcher.trials())
    assert seen <= BUDGET - 2 * BATCH, f"the study reached {seen} trials before a kill mid-run"
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    return victim, seen


def _check_whole(trials: list) -> None:
    """Every stored trial is COMPLETE (no RUNNING, FAIL or WAITING left by the kill), numbered 0..n-1 once each."""
    states = {t.state for t in trials}
    assert states <= {TrialState.COMPLETE}, f"trials in states {sorted(s.name for s in states)} left in the storage"
    assert sorted(t.number for t in trials) == list(range(len(trials))), "trial numbers lost or given twice"
    assert len({t.user_attrs["uid"] for t in trials}) == len(trials), "a trial stored twice"


@pytest.mark.parametrize("backend", ["postgresql", "journal"])
def test_three_workers_one_killed_then_resumed(backend, request, tmp_path):
    url = request.getfixturevalue("postgres_url") if backend == "postgresql" else f"journal:{tmp_path / 'study.log'}"
    assert backend == "journal" or url.startswith("postgresql://")  # the bare URL a user types; advdla picks the driver
    outs = [tmp_path / f"worker{i}" for i in range(WORKERS)]
    procs = [_worker(url, out, BUDGET) for out in outs]
    try:
        victim, seen = _kill_one_mid_run(procs, url, KILL_DELAY[backend])
        assert victim.returncode == -signal.SIGKILL
        survivors = [p for p in procs if p is not victim]
        results = [p.communicate(timeout=300) for p in survivors]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert all(p.returncode == 0 for p in survivors), [r[1][-1500:] for r in results]
    summaries = [json.loads(r[0]) for r in results]

    # the three workers: the budget reached, overshot by at most one batch per other live worker, nothing lost
    trials = _all_trials(url)
    _check_whole(trials)
    assert BUDGET <= len(trials) <= BUDGET + (WORKERS - 1) * BATCH, len(trials)
    assert all(s["counts"]["study_complete_trials"] >= BUDGET for s in summaries)
    by_victim = sum(t.user_attrs["worker"]["pid"] == victim.pid for t in trials)
    assert 1 <= by_victim and by_victim <= seen + BATCH  # it stored, then died inside a batch
    stored = [s["counts"]["stored_by_this_worker"] for s in summaries]
    assert by_victim + sum(stored) == len(trials)  # every stored trial is accounted for by the worker that stored it
    assert {t.user_attrs["worker"]["pid"] for t in trials} <= {p.pid for p in procs}
    before = {t.number: (t.params, t.user_attrs["uid"]) for t in trials}

    # the killed worker's command again, with a raised budget: alone, it continues the study to the budget exactly
    victim_out = outs[procs.index(victim)]
    resumed = _worker(url, victim_out, RESUMED_BUDGET)
    stdout, stderr = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, stderr[-1500:]
    summary = json.loads(stdout)
    trials = _all_trials(url)
    _check_whole(trials)
    assert len(trials) == RESUMED_BUDGET
    assert summary["counts"]["stored_by_this_worker"] == RESUMED_BUDGET - len(before)
    assert summary["counts"]["study_complete_trials"] == RESUMED_BUDGET
    assert {t.number: (t.params, t.user_attrs["uid"]) for t in trials if t.number in before} == before  # untouched
    assert {t.user_attrs["worker"]["pid"] for t in trials if t.number not in before} == {resumed.pid}
    assert (victim_out / "examples.parquet").exists() and (victim_out / "search.json").exists()


def test_journal_lock_dies_with_its_holder(tmp_path):
    """A worker SIGKILLed while it holds the journal's lock leaves nothing that blocks the others (the kernel drops
    an flock with its holder; Optuna's default symlink lock would stall them 30 s, then race to break it)."""
    from advdla.search.storage import _journal_lock

    path = str(tmp_path / "study.log")
    code = ("import sys, time; from advdla.search.storage import _journal_lock; "
            f"lock = _journal_lock({path!r}); lock.acquire(); print('held', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        start = time.time()
        lock = _journal_lock(path)
        assert lock.acquire() and time.time() - start < 5
        lock.release()
    finally:
        if holder.poll() is None:
            holder.kill()
