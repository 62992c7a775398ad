"""Bad input, everywhere: every subcommand against a corpus of bad inputs, each refused with exit status 2 and
one stderr line that names the problem and the fix, no traceback, nothing on stdout, and nothing created,
removed or changed on disk (issue 16).

The parts: ``cases.py`` is the corpus (what to type, what the refusal must say), ``world.py`` builds the places the
cases point at, ``driver.py`` runs cases and records what they printed and changed, and this module runs the
drivers and checks each result.

How it runs (to stay fast on a small, shared CPU machine): most cases run in two driver subprocesses
(``driver.py`` run as a script, one ``advdla.cli.main(argv)`` call per case): the main group, then the permission
cases (unreadable files and folders, read-only folders). As root, which ignores file modes, the permission driver
is started by ``setpriv`` without root's file-mode override (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH).
``TRUE_SUBPROCESS`` cases run the installed ``advdla`` script itself, one fresh process each. ``CONTROLS`` are good
inputs at the same places, which must still be accepted.

The world is built once per session in a temporary folder of its own; nothing is fetched (ADVDLA_HOME points into
it, HF offline). Run a few cases with ``pytest tests/bad_inputs -k ID``: only those run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import driver
import pytest
from cases import CASES, CONTROLS, TRUE_SUBPROCESS, Case
from world import build_world, unlock


@pytest.fixture(scope="session")
def world():
    """The world folder, its own temporary folder outside pytest's."""
    w = Path(tempfile.mkdtemp(prefix="advdla-bad-inputs-"))
    try:
        build_world(w)
        yield w
    finally:
        unlock(w)
        shutil.rmtree(w, ignore_errors=True)


@pytest.fixture(scope="session")
def results(world, request):
    """Run the selected driver cases: the main group, then the permission group."""
    selected = {item.callspec.params["case"].id for item in request.session.items
                if getattr(item, "callspec", None) and "case" in item.callspec.params}
    todo = [c for c in CASES + CONTROLS if c.id in selected and c.id not in TRUE_SUBPROCESS]
    out = run_driver([c for c in todo if c.group == "main"], world, [])
    prefix = _perm_prefix()
    if prefix is not None:
        out |= run_driver([c for c in todo if c.group == "perm"], world, prefix)
    return out


def _as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _perm_prefix() -> list[str] | None:
    """How to start the permission driver: as is, or (as root) without root's override of file modes; None when
    that cannot be done here."""
    if not _as_root():
        return []
    setpriv = shutil.which("setpriv")
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search"] if setpriv else None


def case_env(w: Path, case: Case | None = None) -> dict[str, str]:
    """The environment a case runs with: ADVDLA_HOME in the world, every download offline, none of the caller's
    advdla settings, then the case's own variables."""
    env = dict(os.environ)
    env.update(ADVDLA_HOME=str(w / "home"), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               PYTHONDONTWRITEBYTECODE="1", COLUMNS="200")
    for name in ("ADVDLA_GELU4L_DIR", "ADVDLA_DEBUG"):
        env.pop(name, None)
    if case is not None:
        env.update({k: sub(v, w) for k, v in case.env})
    return env


def sub(text: str, w: Path, cwd: Path | None = None) -> str:
    """``text`` with its placeholders filled in: {W} the world, {CWD} the case's working folder, {PY} python."""
    return text.replace("{W}", str(w)).replace("{CWD}", str(cwd or w / "cwd")).replace("{PY}", sys.executable)


def spec(case: Case, w: Path) -> dict:
    """What the driver reads for one case: its argv, working folder, variables, and the folders to watch."""
    cwd = w / "cwd" / case.id
    return {"id": case.id, "argv": [sub(a, w, cwd) for a in case.argv], "cwd": str(cwd),
            "env": {k: sub(v, w) for k, v in case.env}, "skip": [str(w / "cwd")],
            "watch": [str(w), str(cwd), *(sub(p, w, cwd) for p in case.watch)]}


def run_driver(cases: list[Case], w: Path, prefix: list[str]) -> dict[str, dict]:
    """Run ``cases`` in one driver process (started with ``prefix``); {id: result}."""
    if not cases:
        return {}
    tmp = Path(tempfile.mkdtemp(prefix="advdla-bad-inputs-io-"))
    try:
        spec_file, result_file = tmp / "cases.json", tmp / "results.json"
        spec_file.write_text(json.dumps([spec(c, w) for c in cases]))
        try:
            proc = subprocess.run([*prefix, sys.executable, driver.__file__, str(spec_file), str(result_file)],
                                  env=case_env(w), cwd=str(w), capture_output=True, text=True,
                                  timeout=60 + 2 * driver.CASE_LIMIT_S * len(cases))
            died = f"driver exited {proc.returncode}: {proc.stderr[-3000:]}"
        except subprocess.TimeoutExpired as exc:
            died = f"driver timed out: {str(exc.stderr or '')[-3000:]}"
        done = {r["id"]: r for r in (json.loads(result_file.read_text()) if result_file.exists() else [])}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for c in cases:  # a driver that died: its unfinished cases fail with what it printed
        done.setdefault(c.id, {"id": c.id, "rc": None, "stdout": "", "stderr": "", "changes": [], "seconds": 0,
                               "crash": died})
    return done


def run_true_subprocess(case: Case, w: Path) -> dict:
    """One case through the installed ``advdla`` script in a fresh process."""
    s = spec(case, w)
    script = Path(sys.executable).with_name("advdla")
    argv = [str(script)] if script.exists() else [sys.executable, "-m", "advdla.cli"]
    before = driver.snapshot(s["watch"], tuple(s["skip"]))
    t0 = time.perf_counter()
    proc = subprocess.run(argv + s["argv"], cwd=s["cwd"], env=case_env(w, case), capture_output=True, text=True,
                          timeout=300)
    after = driver.snapshot(s["watch"], tuple(s["skip"]))
    return {"id": case.id, "rc": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr, "crash": None,
            "changes": driver.diff(before, after), "seconds": round(time.perf_counter() - t0, 2)}


def check_control(case: Case, r: dict) -> None:
    assert r["crash"] is None, f"{case.id}: an exception escaped:\n{r['crash']}"
    assert r["rc"] == 0, f"{case.id}: good input refused (exit {r['rc']}): {r['stderr'][-2000:]}"
    assert "Traceback" not in r["stderr"], r["stderr"]


def check(case: Case, r: dict, w: Path) -> None:
    """Exit status 2, one stderr line naming the problem and the fix, no traceback, nothing printed on stdout, and
    nothing created, removed or changed in the watched folders."""
    assert r["crash"] is None, f"{case.id}: an exception escaped (a traceback for the user):\n{r['crash']}"
    lines = [line for line in r["stderr"].splitlines() if line.strip()]
    assert r["rc"] == 2, f"{case.id}: exit status {r['rc']}, expected 2; stderr: {r['stderr'][-2000:]}"
    assert "Traceback" not in r["stderr"], r["stderr"]
    assert len(lines) == 1, f"{case.id}: expected one line on stderr, got {len(lines)}:\n{r['stderr'][-3000:]}"
    line = lines[0]
    assert line.startswith("advdla ") and ": error: " in line, line
    for fragment in case.match:
        assert sub(fragment, w).lower() in line.lower(), f"{case.id}: {fragment!r} not in: {line}"
    assert not r["stdout"].strip(), f"{case.id}: a refused command printed on stdout: {r['stdout'][:500]}"
    assert not r["changes"], f"{case.id}: files changed:\n" + "\n".join(r["changes"][:20])


def test_enough_cases():
    assert len(CASES) >= 60 and len({c.id for c in CASES}) == len(CASES)
    assert {c.argv[0] for c in CASES} >= {"run", "models", "predict", "analyze", "search", "suite", "score",
                                          "leaderboard"}
    assert TRUE_SUBPROCESS <= {c.id for c in CASES} and not {c.id for c in CASES} & {c.id for c in CONTROLS}


@pytest.mark.parametrize("case", CONTROLS, ids=[c.id for c in CONTROLS])
def test_good_input_still_accepted(case, world, results):
    check_control(case, results[case.id])


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case, world, results):
    if case.group == "perm" and case.id not in TRUE_SUBPROCESS and _perm_prefix() is None:
        pytest.skip("running as root without setpriv: file modes cannot be made to count")
    r = run_true_subprocess(case, world) if case.id in TRUE_SUBPROCESS else results[case.id]
    check(case, r, world)
