"""A suite build spread over several workers ends with the single-process build's fingerprint, on SQLite and on
a real PostgreSQL server, also when one worker is SIGKILLed in the middle of a unit (issue 15).

What :mod:`advdla.suites.workers` promises: every search and every example's truth is a unit that exactly one
live worker computes; a killed worker's claim is taken over (at once when it ran on this machine, after the
lease otherwise); results are assembled in the single-process order, so the rows, and the fingerprint, are the
same. The builds run a reduced copy of suites/planted-erasure.yaml with one CPU thread per process (two
workers on a two-core machine), each as the real ``advdla suite build`` command.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pg_server import postgres_url  # noqa: F401  (the fixture: a throwaway PostgreSQL server)
from sqlalchemy import select

from advdla.suites.workers import UNITS, SharedBuild, open_database

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TQDM_DISABLE": "1"}


def _small_config(path: Path) -> Path:
    """suites/planted-erasure.yaml with fewer examples (a build of about 12 s; its search is left as it is, so
    that it finds enough candidates)."""
    text = (ROOT / "suites" / "planted-erasure.yaml").read_text()
    for old, new in (("name: planted-erasure", "name: planted-workers"),
                     ("n_dev: 12, n_test: 12, n_natural: 12, natural_scan: 400",
                      "n_dev: 5, n_test: 5, n_natural: 3, natural_scan: 200")):
        assert old in text, f"suites/planted-erasure.yaml changed: {old!r} not found"
        text = text.replace(old, new)
    path.write_text(text)
    return path


def _build(config: Path, out: Path, *extra: str) -> subprocess.Popen:
    argv = [sys.executable, "-m", "advdla.cli", "suite", "build", str(config), "--out", str(out), *extra]
    return subprocess.Popen(argv, env=ENV, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _fingerprint(out: Path) -> str:
    return json.loads((out / "manifest.json").read_text())["fingerprint"]


def _finish(proc: subprocess.Popen) -> str:
    stdout, stderr = proc.communicate(timeout=400)
    assert proc.returncode == 0, stderr[-2000:]
    return stdout


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The small config and its single-process build's fingerprint."""
    root = tmp_path_factory.mktemp("workers")
    config = _small_config(root / "planted-workers.yaml")
    _finish(_build(config, root / "single"))
    return config, _fingerprint(root / "single")


def _units(url: str) -> list:
    engine = open_database(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(select(UNITS.c.name, UNITS.c.state, UNITS.c.owner)))
    finally:
        engine.dispose()


def _pid(row) -> int:
    return int(row.owner.split("/")[1])


def test_local_workers_give_the_single_process_fingerprint(reference, tmp_path):
    config, fingerprint = reference
    out = tmp_path / "suite"
    stdout = _finish(_build(config, out, "--workers", "2"))
    assert "by 2 workers" in stdout
    assert _fingerprint(out) == fingerprint
    assert not list(tmp_path.glob(".suite.workers*")), "the workers' database or scratch was left behind"


def _kill_mid_unit(procs: list[subprocess.Popen], url: str) -> tuple[subprocess.Popen, str]:
    """SIGKILL the first worker seen holding an example's claim after some example is done (mid-build, inside a
    unit). Returns it and the unit it held."""
    deadline = time.time() + 300
    while time.time() < deadline:
        ended = [p for p in procs if p.poll() is not None]
        assert not ended, f"a worker ended before one could be killed: {ended[0].communicate()[1][-1500:]}"
        try:
            rows = _units(url)
        except Exception:  # the schema is being created by the workers
            rows = []
        done = any(r.state == "done" and r.name.startswith("example/") for r in rows)
        held = [r for r in rows if r.state == "claimed" and r.name.startswith("example/")]
        victim = next((p for r in held for p in procs if done and _pid(r) == p.pid), None)
        if victim is not None:
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            return victim, next(r.name for r in held if _pid(r) == victim.pid)
        time.sleep(0.01)
    pytest.fail("no worker held an example's claim within 300 s")


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_two_workers_one_killed_mid_unit(backend, reference, tmp_path, request):
    """Two workers on one --db; one is SIGKILLed while it computes an example: the other takes its claim over and
    finishes the build, with the single-process fingerprint; every unit is done once, none is left claimed."""
    config, fingerprint = reference
    url = request.getfixturevalue("postgres_url") if backend == "postgresql" else f"sqlite:///{tmp_path / 'b.db'}"
    out = tmp_path / "suite"
    procs = [_build(config, out, "--db", url) for _ in range(2)]
    try:
        victim, held = _kill_mid_unit(procs, url)
        survivor = next(p for p in procs if p is not victim)
        _finish(survivor)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert victim.returncode == -signal.SIGKILL
    assert _fingerprint(out) == fingerprint
    rows = {r.name: r for r in _units(url)}
    assert all(r.state == "done" for r in rows.values()), "a unit was left claimed"
    assert _pid(rows[held]) == survivor.pid, "the killed worker's unit was not taken over"
    assert {_pid(r) for r in rows.values()} == {victim.pid, survivor.pid}, "not both workers did units"
    assert sum(name.startswith("save/") for name in rows) == 1  # the suite was written once


def test_claims_expire_only_when_not_renewed(tmp_path):
    """A live worker's claim survives past its lease (its heartbeat renews it); a claim from another machine that
    nobody renews is taken over once the lease has run out."""
    url, dest = f"sqlite:///{tmp_path / 'b.db'}", tmp_path / "suite"
    holder = SharedBuild(url, dest, {"build": 1}, lease=0.4, poll=0.05)
    other = SharedBuild(url, dest, {"build": 1}, lease=0.4, poll=0.05)
    try:
        assert holder._claim("step/live")
        time.sleep(1.2)  # three leases: only the heartbeat keeps the claim
        assert not other._claim("step/live")
        with other.engine.begin() as conn:  # a worker on another machine that claimed a unit and went silent
            conn.execute(UNITS.insert().values(build=other.build, name="step/silent", state="claimed",
                                               owner="elsewhere/1/dead", heartbeat=time.time()))
        assert not other._claim("step/silent")
        assert other.step("silent", lambda: {"value": 7}) == {"value": 7}  # waits out the lease, then computes
        assert holder.step("silent", lambda: pytest.fail("computed twice")) == {"value": 7}
    finally:
        holder.close()
        other.close()
