"""The bad-input driver: runs cases one after another in this process and records what each printed and changed.

Context: a fresh process that imports torch and transformer_lens costs ~5 s, so running each of the ~170 cases as
its own ``advdla`` process would take far too long on a small, shared CPU machine. Instead the test starts this file
as a script, ``python driver.py SPEC RESULT``, once for the main group and once for the permission group; it calls
``advdla.cli.main(argv)`` once per case.

Intuition: to see what the real command would show a user, each call is made to look like a fresh process:
- file descriptors 1 and 2 point at files while it runs, so whatever a command *or a library* prints is caught, not
  only what goes through ``sys.stderr``;
- warnings are shown every time (a fresh process shows a warning once, which here would be once for all cases);
- an exception that escapes ``main`` is caught and kept: the real command would show it as a traceback;
- a case still running after ``CASE_LIMIT_S`` did not refuse its input: an alarm stops it, and it fails;
- the watched folders are snapshotted before and after, so a created, removed or changed file is seen.

SPEC is a JSON list of case specs ``{id, argv, cwd, env, skip, watch}`` (see ``test_bad_inputs.spec``); RESULT is
rewritten after every case with the results so far, so a driver that hangs or dies still reports what finished.
Only the standard library and advdla are needed here.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import shutil
import signal
import stat
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Iterator
from pathlib import Path

from advdla.cli import main

__all__ = ["CASE_LIMIT_S", "CaseTimeout", "diff", "drive", "run_case", "snapshot"]

CASE_LIMIT_S = 60  # a case still running after this long did not refuse its input: it is stopped and fails


def snapshot(paths: list[str], skip: tuple[str, ...] = ()) -> dict[str, list]:
    """{path: [kind, size, mode, mtime_ns]} for every entry under ``paths`` except ``skip`` (symlinks not followed).

    A folder's own mtime is left out: it changes whenever an entry is created in it, even one removed again (the
    temporary files of an atomic write, a run that cleans up after it failed); its listing is what counts.
    """
    out: dict[str, list] = {}

    def visit(p: str) -> None:
        if p in skip and p not in paths:
            return
        try:
            st = os.lstat(p)
        except FileNotFoundError:
            return
        kind = "d" if stat.S_ISDIR(st.st_mode) else "l" if stat.S_ISLNK(st.st_mode) else "f"
        size, mtime = (st.st_size, st.st_mtime_ns) if kind != "d" else (0, 0)
        out[p] = [kind, size, stat.S_IMODE(st.st_mode), mtime]
        if kind == "d":
            try:
                names = sorted(os.listdir(p))
            except OSError:
                out[p].append("unlistable")
                return
            for name in names:
                visit(os.path.join(p, name))

    for p in paths:
        visit(p)
    return out


def diff(before: dict[str, list], after: dict[str, list]) -> list[str]:
    """What differs between two snapshots, one sorted line per entry created, removed or changed."""
    changes = [f"created {p}" for p in after if p not in before]
    changes += [f"removed {p}" for p in before if p not in after]
    changes += [f"changed {p}: {before[p]} -> {after[p]}" for p in before if p in after and before[p] != after[p]]
    return sorted(changes)


class CaseTimeout(Exception):
    """Raised by the alarm in a case that ran past ``CASE_LIMIT_S``."""


def _alarm(signum, frame):
    raise CaseTimeout(f"still running after {CASE_LIMIT_S} s: the command did not refuse its input")


@contextlib.contextmanager
def _within(env: dict[str, str], cwd: str) -> Iterator[None]:
    """The case's environment variables and working folder while it runs; the driver's own put back afterwards,
    so the next case starts from the same state."""
    old_env = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    old_cwd = os.getcwd()
    os.chdir(cwd)
    try:
        yield
    finally:
        os.chdir(old_cwd)
        for k, v in old_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def _fds_to(out_file: str, err_file: str) -> Iterator[None]:
    """File descriptors 1 and 2 point at the two files: what a library writes straight to the descriptor (not
    through ``sys.stdout``) is caught too."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(out_file, "wb") as fo, open(err_file, "wb") as fe:
        os.dup2(fo.fileno(), 1)
        os.dup2(fe.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def _call_main(argv: list[str]) -> tuple[int | None, str | None]:
    """(exit status, None), or (None, the traceback) for an exception that escaped ``main``; stopped by the alarm
    after ``CASE_LIMIT_S``."""
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(CASE_LIMIT_S)
    try:
        return main(argv), None
    except SystemExit as exc:  # argparse
        return (exc.code if isinstance(exc.code, int) else 1), None
    except BaseException:  # what the real command would show as a traceback
        return None, traceback.format_exc()
    finally:
        signal.alarm(0)


def run_case(case: dict, scratch: str) -> dict:
    """Run one case in this process: exit status, stdout, stderr, what changed on disk, an escaped exception."""
    warnings.simplefilter("always")  # a warning a fresh process would print must show here too
    out_file, err_file = os.path.join(scratch, "stdout"), os.path.join(scratch, "stderr")
    with _within(case.get("env", {}), case["cwd"]):
        before = snapshot(case["watch"], tuple(case["skip"]))
        t0 = time.perf_counter()
        with _fds_to(out_file, err_file):
            rc, crash = _call_main(case["argv"])
        seconds = time.perf_counter() - t0
        gc.collect()  # what the case left open (a database connection) is closed now, and counted as its own doing
        after = snapshot(case["watch"], tuple(case["skip"]))
    return {"id": case["id"], "rc": rc, "stdout": Path(out_file).read_text(errors="replace"),
            "stderr": Path(err_file).read_text(errors="replace"), "crash": crash, "changes": diff(before, after),
            "seconds": round(seconds, 2)}


def drive(spec_file: str, result_file: str) -> None:
    """Run every case in ``spec_file`` in order, writing the results so far to ``result_file`` after each."""
    cases = json.loads(Path(spec_file).read_text())
    scratch = tempfile.mkdtemp(prefix="advdla-bad-inputs-driver-")
    results = []
    try:
        for case in cases:
            results.append(run_case(case, scratch))
            Path(result_file).write_text(json.dumps(results))  # what finished, should a later case hang
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    drive(sys.argv[1], sys.argv[2])
    sys.exit(0)
