"""Bad input, everywhere: every subcommand against a corpus of bad inputs, each refused with exit status 2 and
one stderr line that names the problem and the fix, no traceback, nothing on stdout, and nothing created,
removed or changed on disk (issue 16).

How it runs (to stay fast on a small, shared CPU machine): a fresh process that imports torch and
transformer_lens costs ~5 s, so most cases run in two *driver* subprocesses (this file run as a script), each
calling ``advdla.cli.main(argv)`` once per case with file descriptors 1 and 2 redirected to files (so whatever a
command or a library prints is caught, not only ``sys.stderr``), warnings shown every time, the watched folders
snapshotted before and after (every entry's name, kind, size and mode, and each file's mtime; a folder's own
mtime is left out, since an atomic write's temporary file or a failed run's clean-up changes it), and any
exception that escapes ``main`` caught (the real command would show it as a traceback). A case still running
after ``CASE_LIMIT_S`` did not refuse its input: it is stopped and fails. ``TRUE_SUBPROCESS`` cases run the
installed ``advdla`` script itself, one fresh process each. The permission cases (unreadable files and folders,
read-only folders) run in the second driver; as root, which ignores file modes, that driver is started by
``setpriv`` without root's file-mode override (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH). ``CONTROLS`` are good
inputs at the same places, which must still be accepted.

The world (models, a suite built on planted-erasure with a stub search, tampered copies of it, configs, result
records, a leaderboard) is built once per session in a temporary folder; nothing is fetched (ADVDLA_HOME points
into it, HF offline). Run a few cases with ``pytest tests/test_bad_inputs.py -k ID``: only those run.
"""

from __future__ import annotations

import contextlib
import gc
import io
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOBODY = 65534  # uid/gid of `nobody`, for the permission cases when the tests run as root
CASE_LIMIT_S = 60  # a case still running after this long did not refuse its input: it is stopped and fails


# ============================================================================ the driver (runs in a subprocess)


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
    changes = [f"created {p}" for p in after if p not in before]
    changes += [f"removed {p}" for p in before if p not in after]
    changes += [f"changed {p}: {before[p]} -> {after[p]}" for p in before if p in after and before[p] != after[p]]
    return sorted(changes)


class CaseTimeout(Exception):
    pass


def _alarm(signum, frame):
    raise CaseTimeout(f"still running after {CASE_LIMIT_S} s: the command did not refuse its input")


def run_case(case: dict, scratch: str) -> dict:
    """Run one case in this process: exit status, stdout, stderr, what changed on disk, an escaped exception."""
    import warnings

    from advdla.cli import main

    warnings.simplefilter("always")  # a warning a fresh process would print must show here too
    out_file, err_file = os.path.join(scratch, "stdout"), os.path.join(scratch, "stderr")
    old_env = {k: os.environ.get(k) for k in case.get("env", {})}
    os.environ.update(case.get("env", {}))
    cwd = os.getcwd()
    os.chdir(case["cwd"])
    before = snapshot(case["watch"], tuple(case["skip"]))
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    crash, rc = None, None
    t0 = time.perf_counter()
    with open(out_file, "wb") as fo, open(err_file, "wb") as fe:
        os.dup2(fo.fileno(), 1)
        os.dup2(fe.fileno(), 2)
        signal.signal(signal.SIGALRM, _alarm)
        signal.alarm(CASE_LIMIT_S)
        try:
            rc = main(case["argv"])
        except SystemExit as exc:  # argparse
            rc = exc.code if isinstance(exc.code, int) else 1
        except BaseException:  # what the real command would show as a traceback
            crash = traceback.format_exc()
        finally:
            signal.alarm(0)
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
    seconds = time.perf_counter() - t0
    gc.collect()  # what the case left open (a database connection) is closed now, and counted as its own doing
    after = snapshot(case["watch"], tuple(case["skip"]))
    os.chdir(cwd)
    for k, v in old_env.items():
        os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    return {"id": case["id"], "rc": rc, "stdout": Path(out_file).read_text(errors="replace"),
            "stderr": Path(err_file).read_text(errors="replace"), "crash": crash, "changes": diff(before, after),
            "seconds": round(seconds, 2)}


def drive(spec_file: str, result_file: str) -> None:
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


# ============================================================================================ the cases

import pytest  # noqa: E402  (the driver above needs only the standard library and advdla)


@dataclass(frozen=True)
class Case:
    """``argv`` may use {W} (the world folder), {CWD} (the case's empty working folder) and {PY} (sys.executable).

    ``match``: fragments the one stderr line must contain (case-insensitive), the problem first, then the fix.
    ``group``: "main" (driver as the current user) or "perm" (permission cases: as ``nobody`` when root).
    ``watch``: extra folders to snapshot besides the world folder (and the case's working folder).
    """

    id: str
    argv: tuple[str, ...]
    match: tuple[str, ...]
    group: str = "main"
    env: tuple[tuple[str, str], ...] = ()
    watch: tuple[str, ...] = ()
    ok: bool = False  # a control: good input that must still be accepted (exit 0), so the checks refuse no more


def C(id: str, cmd: str, *match: str, group: str = "main", env: dict | None = None, watch: tuple = (),
      ok: bool = False) -> Case:
    """A case from a command line split on spaces ('~' stands for a space inside an argument)."""
    argv = tuple("" if a == "''" else a.replace("~", " ") for a in cmd.split())
    return Case(id, argv, tuple(match), group=group, env=tuple((env or {}).items()), watch=watch, ok=ok)


TINY = "--model tiny-gpt2"
PLANTED = "--model planted-erasure"
SHORT = "--model {W}/models/short-ctx"  # a GPT-2 with a context of 8 positions
VOCAB = "--model {W}/models/tiny-vocab"  # a GPT-2 with a 4-token vocabulary
SUITE = "{W}/suites/bad-inputs"  # built by the world fixture (planted-erasure, target L0H1)
PG = "postgresql://nobody@127.0.0.1:1/x"

CASES: list[Case] = [
    # ------------------------------------------------------------------------------------------------ models
    C("models-info-unknown", "models info gpt2-tiny", "gpt2-tiny", "known models"),
    C("models-fetch-unknown", "models fetch smollm3-135m", "smollm3-135m", "did you mean"),
    C("models-info-cuda", "models info tiny-gpt2 --device cuda", "cuda", "--device cpu"),
    C("models-info-bad-device", "models info tiny-gpt2 --device tpu", "tpu", "cpu"),
    C("models-info-empty-dir", "models info {W}/models/empty", "is not a model", "config.json"),
    C("models-info-missing-dir", "models info {W}/models/missing/", "no such model", "{W}/models/missing"),
    C("models-info-bad-config", "models info {W}/models/bad-config", "bad-config", "config.json"),
    C("models-info-bad-weights", "models info {W}/models/bad-weights", "bad-weights", "transformers"),
    C("models-fetch-hub-offline", "models fetch nobody-advdla/no-such-model", "no-such-model", "local directory"),
    C("models-info-file", "models info {W}/afile.txt", "afile.txt", "config.json"),
    C("models-fetch-home-unwritable", "models fetch smollm2-135m", "/sys/advdla-home", "ADVDLA_HOME",
      env={"ADVDLA_HOME": "/sys/advdla-home"}),
    C("models-list-format", "models list --format xml", "xml", "table"),
    C("models-no-action", "models", "ACTION", "--help"),
    C("models-info-gelu-dir-missing", "models info gelu-4l", "ADVDLA_GELU4L_DIR", "directory",
      env={"ADVDLA_GELU4L_DIR": "{W}/no-such-gelu"}),
    # ----------------------------------------------------------------------------------------------- predict
    C("predict-unknown-model", "predict --model smollm-135m hello", "smollm-135m", "did you mean"),
    C("predict-top-k-zero", f"predict {TINY} hello --top-k 0", "--top-k", "at least 1"),
    C("predict-top-k-negative", f"predict {TINY} hello --top-k -3", "--top-k", "at least 1"),
    C("predict-top-k-over-vocab", f"predict {VOCAB} the~a --top-k 10", "--top-k 10", "at most 4"),
    C("predict-top-k-not-int", f"predict {TINY} hello --top-k many", "--top-k", "many"),
    C("predict-text-over-context", f"predict {SHORT} a~long~text~of~more~than~eight~bytes", "context of 8",
      "shorter"),
    C("predict-empty-text", f"predict {TINY} ''", "empty", "text"),
    C("predict-cuda", f"predict {TINY} hello --device cuda", "cuda", "--device cpu"),
    C("predict-bad-device", f"predict {TINY} hello --device gpu0", "gpu0", "cpu"),
    C("predict-format", f"predict {TINY} hello --format yaml", "yaml", "json"),
    # ------------------------------------------------------------------------------------------------- score
    C("score-suite-missing", "score --suite {W}/suites/no-such-suite", "no-such-suite", "advdla suite build"),
    C("score-suite-empty-dir", "score --suite {W}/empty", "manifest.json", "suite"),
    C("score-suite-is-file", "score --suite {W}/afile.txt", "afile.txt", "suite build"),
    C("score-unknown-method", f"score --suite {SUITE} --methods dla,atq", "atq", "did you mean 'atp'"),
    C("score-empty-methods", f"score --suite {SUITE} --methods ,", "--methods", "dla,atp"),
    C("score-unknown-split", f"score --suite {SUITE} --split val", "val", "dev"),
    C("score-batch-size-zero", f"score --suite {SUITE} --batch-size 0", "--batch-size", "at least 1"),
    C("score-top-k-zero", f"score --suite {SUITE} --top-k 0", "--top-k", "at least 1"),
    C("score-verify-sample-negative", f"score --suite {SUITE} --verify-sample -1", "--verify-sample", "at least 0"),
    C("score-top-k-over-panel", f"score --suite {SUITE} --top-k 500", "--top-k 500", "panel"),
    C("score-out-uncreatable", f"score --suite {SUITE} --methods dla --out {{W}}/afile.txt/out.json",
      "afile.txt", "--out"),
    C("score-out-is-dir", f"score --suite {SUITE} --methods dla --out {{W}}/empty", "is a folder", "--out"),
    C("score-out-sys", f"score --suite {SUITE} --methods dla --out /sys/advdla-results/dev.json", "/sys", "--out"),
    C("score-tampered-manifest", "score --suite {W}/suites/bad-manifest", "manifest.json", "JSON"),
    C("score-tampered-parquet", "score --suite {W}/suites/bad-sha", "dev.parquet", "rebuild"),
    C("score-cuda", f"score --suite {SUITE} --device cuda", "cuda", "--device cpu"),
    C("score-bad-device", f"score --suite {SUITE} --device tpu", "tpu", "cpu"),
    C("score-param-shape", f"score --suite {SUITE} --methods ig --param ig.steps", "ig.steps", "METHOD.KEY=VALUE"),
    C("score-param-unknown-key", f"score --suite {SUITE} --methods ig --param ig.stepz=2", "stepz", "parameters"),
    C("score-param-other-method", f"score --suite {SUITE} --methods dla --param ig.steps=2", "'ig'", "dla"),
    C("score-param-bad-value", f"score --suite {SUITE} --methods ig --param ig.steps=0", "steps", ">= 1"),
    # ------------------------------------------------------------------------------------------------- suite
    C("suite-build-missing-config", "suite build {W}/configs/no-such.yaml", "not found", "suites/"),
    C("suite-build-malformed-yaml", "suite build {W}/configs/malformed.yaml", "YAML", "malformed.yaml"),
    C("suite-build-empty-yaml", "suite build {W}/configs/empty.yaml", "empty.yaml", "mapping"),
    C("suite-build-unknown-key", "suite build {W}/configs/unknown-key.yaml", "seqlen", "seq_len"),
    C("suite-build-unknown-model", "suite build {W}/configs/unknown-model.yaml", "planted-erasur", "did you mean"),
    C("suite-build-seq-len-zero", "suite build {W}/configs/seq-len-zero.yaml", "seq_len", ">= "),
    C("suite-build-seq-len-over-context", "suite build {W}/configs/seq-len-long.yaml", "500", "context of 128"),
    C("suite-build-target-out-of-range", "suite build {W}/configs/target-range.yaml", "L7H0", "layers"),
    C("suite-build-target-malformed", "suite build {W}/configs/target-bad.yaml", "head-one", "L<layer>H<head>"),
    C("suite-build-unknown-sampler", "suite build {W}/configs/sampler.yaml", "tpx", "tpe"),
    C("suite-build-unknown-objective", "suite build {W}/configs/objective.yaml", "compensate", "did you mean"),
    C("suite-build-yaml-list", "suite build {W}/configs/list.yaml", "list.yaml", "mapping"),
    C("suite-build-splits-zero", "suite build {W}/configs/splits-zero.yaml", "n_dev", ">= 1"),
    C("suite-build-threshold-zero", "suite build {W}/configs/top-k-zero.yaml", "top_k", ">= 1"),
    C("suite-build-config-is-dir", "suite build {W}/configs", "configs", "YAML"),
    C("suite-build-out-uncreatable", "suite build {W}/configs/good.yaml --out {W}/afile.txt/suite", "afile.txt",
      "--out"),
    C("suite-build-out-sys", "suite build {W}/configs/good.yaml --out /sys/advdla-suite", "/sys", "--out"),
    C("suite-build-exists", f"suite build {{W}}/configs/good.yaml --out {SUITE}", "already exists", "--force"),
    C("suite-build-workers-zero", "suite build {W}/configs/good.yaml --workers 0", "--workers", ">= 1"),
    C("suite-build-workers-word", "suite build {W}/configs/good.yaml --workers two", "'two'", ">= 1"),
    C("suite-build-db-malformed", "suite build {W}/configs/good.yaml --db not-a-url", "not-a-url", "sqlite:///"),
    C("suite-build-db-unsupported", "suite build {W}/configs/good.yaml --db mysql://u@h/db", "mysql",
      "postgresql://"),
    C("suite-build-db-no-folder", "suite build {W}/configs/good.yaml --db sqlite:///{W}/no-such-dir/b.db",
      "no-such-dir", "create it"),
    C("suite-build-db-unreachable", f"suite build {{W}}/configs/good.yaml --db {PG}", "127.0.0.1", "reachable"),
    C("suite-build-cuda", "suite build {W}/configs/good.yaml --device cuda:7", "cuda:7", "--device cpu"),
    C("suite-verify-missing", "suite verify {W}/suites/no-such-suite", "no such directory", "suite build"),
    C("suite-verify-sample-negative", f"suite verify {SUITE} --sample -1", "--sample", ">= 0"),
    C("suite-verify-sample-over", f"suite verify {SUITE} --sample 1000", "--sample 1000", "at most"),
    C("suite-verify-tampered-parquet", "suite verify {W}/suites/bad-sha", "sha256", "rebuild"),
    C("suite-verify-truncated-parquet", "suite verify {W}/suites/truncated", "dev.parquet", "rebuild"),
    C("suite-verify-missing-data", "suite verify {W}/suites/no-data", "dev.parquet", "rebuild"),
    C("suite-verify-manifest-model", "suite verify {W}/suites/other-model", "planted-erasur", "did you mean"),
    C("suite-info-empty-dir", "suite info {W}/empty", "manifest.json", "suite"),
    C("suite-info-manifest-fields", "suite info {W}/suites/manifest-fields", "manifest", "rebuild"),
    C("suite-info-truncated-parquet", "suite info {W}/suites/truncated", "dev.parquet", "rebuild"),
    C("suite-regenerate-missing", "suite regenerate-test {W}/suites/no-such-suite --seed 5", "no such directory",
      "suite build"),
    C("suite-regenerate-same-seed", f"suite regenerate-test {SUITE} --seed 0", "seed 0", "new --seed"),
    C("suite-regenerate-tampered", "suite regenerate-test {W}/suites/bad-sha --seed 5", "sha256", "rebuild"),
    C("suite-no-action", "suite", "ACTION", "--help"),
    # ------------------------------------------------------------------------------------------------ search
    C("search-unknown-model", "search --model gpt3 --out {CWD}/s", "gpt3", "known models"),
    C("search-unknown-sampler", f"search {PLANTED} --sampler tpx --out {{CWD}}/s", "tpx", "did you mean 'tpe'"),
    C("search-target-out-of-range", f"search {PLANTED} --target L9H0 --out {{CWD}}/s", "L9H0", "layers"),
    C("search-target-malformed", f"search {PLANTED} --target head1 --out {{CWD}}/s", "head1", "L<layer>H<head>"),
    C("search-trials-zero", f"search {PLANTED} --trials 0 --out {{CWD}}/s", "--trials", "at least 1"),
    C("search-batch-negative", f"search {PLANTED} --batch -1 --out {{CWD}}/s", "--batch", "at least 1"),
    C("search-resamples-zero", f"search {PLANTED} --resamples 0 --out {{CWD}}/s", "--resamples", "at least 1"),
    C("search-seq-len-zero", f"search {PLANTED} --seq-len 0 --out {{CWD}}/s", "--seq-len", "at least 4"),
    C("search-seq-len-over-context", f"search {PLANTED} --seq-len 100000 --target L0H1 --out {{CWD}}/s",
      "100000", "128"),
    C("search-short-context", f"search {SHORT} --target L0H1 --seq-len 16 --out {{CWD}}/s", "16", "context of 8"),
    C("search-prescreen-over-context", f"search {SHORT} --target L0H1 --seq-len 6 --out {{CWD}}/s", "2 x 6",
      "context of 8"),
    C("search-registry-short-context", "search --model planted-words --target L0H1 --seq-len 24 --out {CWD}/s",
      "48", "context of 32"),
    C("search-storage-unreachable", f"search {PLANTED} --storage {PG} --out {{CWD}}/s", "127.0.0.1", "storage"),
    C("search-storage-sqlite-uncreatable", f"search {PLANTED} --storage sqlite:///{{W}}/afile.txt/study.db "
      "--out {CWD}/s", "afile.txt", "--storage"),
    C("search-storage-not-a-database", f"search {PLANTED} --target L0H1 --storage sqlite:///{{W}}/afile.txt "
      "--out {CWD}/s", "afile.txt", "storage"),
    C("search-storage-then-bad-model", "search --model gpt3 --storage sqlite:///{CWD}/shared.db --out {CWD}/s",
      "gpt3", "known models"),
    C("search-journal-then-bad-target", f"search {PLANTED} --target L9H9 --storage journal:{{CWD}}/study.log "
      "--out {CWD}/s", "L9H9", "layers"),
    C("search-unknown-objective", f"search {PLANTED} --objective compensate --out {{CWD}}/s", "compensate",
      "did you mean"),
    C("search-storage-scheme", f"search {PLANTED} --storage ftp://x/y --out {{CWD}}/s", "ftp", "sqlite"),
    C("search-out-is-file", f"search {PLANTED} --target L0H1 --out {{W}}/afile.txt", "afile.txt", "--out"),
    C("search-out-sys", f"search {PLANTED} --target L0H1 --out /sys/advdla-search", "/sys", "--out"),
    C("search-cuda", f"search {PLANTED} --device cuda --out {{CWD}}/s", "cuda", "--device cpu"),
    C("search-corpus-missing", f"search {PLANTED} --target L0H1 --corpus {{W}}/no-corpus --out {{CWD}}/s",
      "no-corpus", "builtin"),
    C("search-corpus-empty-dir", f"search {PLANTED} --target L0H1 --corpus {{W}}/empty --out {{CWD}}/s",
      "found none", ".txt"),
    C("search-threads-zero", f"search {PLANTED} --threads 0 --out {{CWD}}/s", "--threads", "at least 1"),
    C("search-max-examples-zero", f"search {PLANTED} --max-examples 0 --out {{CWD}}/s", "--max-examples", "at least 1"),
    C("search-tiny-vocab", f"search {VOCAB} --target L0H1 --out {{CWD}}/s", "vocabulary", "4"),
    # ----------------------------------------------------------------------------------------------- analyze
    C("analyze-writer-out-of-range", f"analyze {PLANTED} --writer L0H9", "L0H9", "heads"),
    C("analyze-writer-malformed", f"analyze {PLANTED} --writer writer", "writer", "L<layer>H<head>"),
    C("analyze-prompts-zero", f"analyze {PLANTED} --prompts 0", "--prompts", "at least 1"),
    C("analyze-seq-len-negative", f"analyze {PLANTED} --seq-len -4", "--seq-len", "at least"),
    C("analyze-short-context", f"analyze {SHORT} --seq-len 32", "32", "context of 8"),
    C("analyze-registry-short-context", "analyze --model planted-words --seq-len 40", "40", "context of 32"),
    C("analyze-n-writers-over", f"analyze {PLANTED} --n-writers 500", "--n-writers 500", "at most"),
    C("analyze-corpus-missing", f"analyze {PLANTED} --corpus {{W}}/no-corpus", "no-corpus", "builtin"),
    C("analyze-plot-dir-uncreatable", f"analyze {PLANTED} --plot-dir {{W}}/afile.txt/figs", "afile.txt",
      "--plot-dir"),
    C("analyze-cuda", f"analyze {PLANTED} --device cuda", "cuda", "--device cpu"),
    # --------------------------------------------------------------------------------------------------- run
    C("run-out-uncreatable", "run --out {W}/afile.txt/run", "afile.txt", "--out"),
    C("run-out-sys", "run --out /sys/advdla-run", "/sys", "--out"),
    C("run-unknown-method", "run --methods dla,atq --out {CWD}/r", "atq", "did you mean 'atp'"),
    C("run-empty-methods", "run --methods , --out {CWD}/r", "--methods", "dla,atp"),
    C("run-unknown-model", "run --model planted-erasur --out {CWD}/r", "planted-erasur", "did you mean"),
    C("run-empty-model-dir", "run --model {W}/models/empty --out {CWD}/r", "is not a model", "config.json"),
    C("run-short-context", f"run {SHORT} --quick --out {{CWD}}/r", "16", "context of 8"),
    C("run-tiny-vocab", f"run {VOCAB} --quick --out {{CWD}}/r", "vocabulary", "4"),
    C("run-existing-suite", f"run {PLANTED} --out {{W}}/old-run", "already exists", "--force"),
    C("run-shipped-missing", f"run {PLANTED} --shipped {{W}}/suites/none --out {{CWD}}/r", "no such directory",
      "suite build"),
    C("run-shipped-other-model", f"run --model tiny-gpt2 --shipped {ROOT}/suites/planted-erasure --out {{CWD}}/r",
      "planted-erasure, not of tiny-gpt2", "--shipped none"),
    # ------------------------------------------------------------------------------------------- leaderboard
    C("leaderboard-unknown-suite", "leaderboard --dir {W}/board --suite bad-input", "bad-input",
      "did you mean 'bad-inputs'"),
    C("leaderboard-split-matches-nothing", "leaderboard --dir {W}/board --split test", "test", "did you mean 'dev'"),
    C("leaderboard-unknown-split", "leaderboard --dir {W}/board --split val", "val", "dev"),
    C("leaderboard-unknown-sort", "leaderboard --dir {W}/board --sort spearmann", "spearmann", "did you mean"),
    C("leaderboard-sort-kind", "leaderboard --dir {W}/board --sort natral.spearman", "natral",
      "did you mean 'natural'"),
    C("leaderboard-dir-missing", "leaderboard --dir {W}/no-board", "no-board", "leaderboard add"),
    C("leaderboard-dir-empty", "leaderboard --dir {W}/empty", "no records", "leaderboard add"),
    C("leaderboard-show-with-files", "leaderboard show {W}/records/good.json --dir {W}/board", "add", "good.json"),
    C("leaderboard-format", "leaderboard --dir {W}/board --format xml", "xml", "markdown"),
    C("leaderboard-add-no-files", "leaderboard add --dir {W}/board", "FILE", "leaderboard add"),
    C("leaderboard-add-missing-file", "leaderboard add {W}/records/no-such.json --dir {W}/board", "no-such.json",
      "score --out"),
    C("leaderboard-add-not-json", "leaderboard add {W}/records/not-json.json --dir {W}/board", "not valid JSON",
      "score --out"),
    C("leaderboard-add-wrong-schema", "leaderboard add {W}/records/no-metrics.json --dir {W}/board", "metrics",
      "ResultRecord"),
    C("leaderboard-add-unknown-suite", "leaderboard add {W}/records/unknown-suite.json --dir {W}/board",
      "no-such-suite", "Known suites"),
    C("leaderboard-add-stale", "leaderboard add {W}/records/stale.json --dir {W}/board", "fingerprint", "re-score"),
    C("leaderboard-add-empty-list", "leaderboard add {W}/records/empty-list.json --dir {W}/board",
      "empty-list.json", "score --out"),
    C("leaderboard-add-bad-value", "leaderboard add {W}/records/bad-value.json --dir {W}/board", "bad-value.json",
      "ResultRecord"),
    C("leaderboard-add-half-bad", "leaderboard add {W}/records/good.json {W}/records/no-metrics.json "
      "--dir {W}/fresh-board --suites {W}/suites", "no-metrics.json", "ResultRecord"),
    C("leaderboard-add-dir-uncreatable", "leaderboard add {W}/records/good.json --dir {W}/afile.txt/board "
      "--suites {W}/suites", "afile.txt", "--dir"),
    C("leaderboard-add-suites-missing", "leaderboard add {W}/records/good.json --dir {W}/board --suites {W}/nope",
      "nope", "--suites"),
    C("leaderboard-render-missing", "leaderboard render --dir {W}/no-board", "no-board", "leaderboard add"),
    C("leaderboard-render-sys", "leaderboard render --dir /sys/advdla-board", "/sys", "--dir"),
    # ------------------------------------------------- permissions: unreadable and read-only folders and files
    C("perm-score-suite-unreadable", "score --suite {W}/locked/suite", "locked", "permission", group="perm"),
    C("perm-score-out-readonly", f"score --suite {SUITE} --methods dla --out {{W}}/readonly/dev.json",
      "readonly", "--out", group="perm"),
    C("perm-suite-info-unreadable", "suite info {W}/locked/suite", "locked", "permission", group="perm"),
    C("perm-suite-build-config-unreadable", "suite build {W}/locked-config.yaml", "locked-config.yaml",
      "permission", group="perm"),
    C("perm-suite-build-out-readonly", "suite build {W}/configs/good.yaml --out {W}/readonly/suite", "readonly",
      "--out", group="perm"),
    C("perm-search-out-readonly", f"search {PLANTED} --target L0H1 --out {{W}}/readonly/search", "readonly",
      "--out", group="perm"),
    C("perm-run-out-readonly", f"run {PLANTED} --out {{W}}/readonly/run", "readonly", "--out", group="perm"),
    C("perm-analyze-plot-dir-readonly", f"analyze {PLANTED} --plot-dir {{W}}/readonly/figs", "readonly",
      "--plot-dir", group="perm"),
    C("perm-leaderboard-add-readonly", "leaderboard add {W}/records/good.json --dir {W}/readonly-board",
      "readonly-board", "--dir", group="perm"),
    C("perm-leaderboard-render-readonly", "leaderboard render --dir {W}/readonly-board", "readonly-board", "--dir",
      group="perm"),
    C("perm-leaderboard-add-unreadable-record", "leaderboard add {W}/locked-record.json --dir {W}/board",
      "locked-record.json", "permission", group="perm"),
]

# Controls: the same places with good input are still accepted (the checks above refuse nothing more).
CONTROLS: list[Case] = [
    C("ok-predict", f"predict {TINY} hello --top-k 3", ok=True),
    C("ok-suite-verify", f"suite verify {SUITE}", ok=True),
    C("ok-leaderboard-filters", "leaderboard --dir {W}/board --suite bad-inputs --split dev", ok=True),
    C("ok-score-out", f"score --suite {SUITE} --methods dla --out {{CWD}}/new/dev.json", ok=True),
]

# A few cases run the installed `advdla` script itself, one fresh process each (the rest go through drivers).
TRUE_SUBPROCESS = {
    "models-list-format",
    "predict-cuda",
    "run-out-uncreatable",
    "search-storage-unreachable",
    "leaderboard-unknown-suite",
    "suite-build-malformed-yaml",
}


# ============================================================================================= the world

GOOD_CONFIG = """\
name: bad-inputs
model: planted-erasure
seq_len: 12
targets: [L0H1]
search: {trials: 4, batch: 4}
resamples: 2
splits: {n_dev: 1, n_test: 1, n_natural: 0}
"""

CONFIGS = {
    "good.yaml": GOOD_CONFIG,
    "malformed.yaml": "name: x\nmodel: [planted-erasure\n",
    "empty.yaml": "",
    "list.yaml": "- name: bad-inputs\n- model: planted-erasure\n",
    "unknown-key.yaml": GOOD_CONFIG + "seqlen: 12\n",
    "unknown-model.yaml": GOOD_CONFIG.replace("model: planted-erasure", "model: planted-erasur"),
    "seq-len-zero.yaml": GOOD_CONFIG.replace("seq_len: 12", "seq_len: 0"),
    "seq-len-long.yaml": GOOD_CONFIG.replace("seq_len: 12", "seq_len: 500"),
    "target-range.yaml": GOOD_CONFIG.replace("[L0H1]", "[L7H0]"),
    "target-bad.yaml": GOOD_CONFIG.replace("[L0H1]", "[head-one]"),
    "sampler.yaml": GOOD_CONFIG.replace("batch: 4}", "batch: 4, sampler: tpx}"),
    "objective.yaml": GOOD_CONFIG.replace("batch: 4}", "batch: 4, objective: compensate}"),
    "top-k-zero.yaml": GOOD_CONFIG + "thresholds: {top_k: 0}\n",
    "splits-zero.yaml": GOOD_CONFIG.replace("n_dev: 1", "n_dev: 0"),
}


def _stub_finder(bridge, target, *, cfg, seed, n, windows, exclude_docs=frozenset(), **_):
    """Stand-in for the search while building the world's suite: n corpus windows, each from its own document."""
    from advdla.suites.build import Candidate

    tokens, docs = windows.sample(cfg.seq_len, n, seed=seed + 99, exclude=set(exclude_docs))
    return [Candidate(tuple(t.tolist()), target.name, d) for t, d in zip(tokens, docs)], {"engine": "stub"}


def _save_model(path: Path, hf_model, tokenizer) -> None:
    hf_model.save_pretrained(path)
    tokenizer.save_pretrained(path)


def _set_file_sha(suite: Path, rel: str) -> None:
    """Record ``rel``'s current sha256 in the manifest's file list (a tampered file that passes the hash check)."""
    import hashlib

    manifest = json.loads((suite / "manifest.json").read_text())
    manifest["files"][rel] = hashlib.sha256((suite / rel).read_bytes()).hexdigest()
    (suite / "manifest.json").write_text(json.dumps(manifest, indent=2))


def _word_tokenizer():
    """A 4-token word-level tokenizer: <unk>, 'the', 'a', <eos>."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(vocab={"<unk>": 0, "the": 1, "a": 2, "<eos>": 3}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", eos_token="<eos>", bos_token="<eos>")


def build_world(w: Path) -> None:
    """Everything the cases point at: small local models, a freshly built suite and tampered copies of it, suite
    configs, result records scored on that suite, a leaderboard folder, and unreadable / read-only places."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from advdla.cli import main
    from advdla.models import load_model
    from advdla.models.tiny import byte_tokenizer
    from advdla.suites import build_suite, load_config

    (w / "home" / "models").mkdir(parents=True)
    cached = Path.home() / ".cache" / "advdla" / "models" / "smollm2-135m"
    if cached.is_dir():  # the default model, should a case reach it: never fetched here
        (w / "home" / "models" / "smollm2-135m").symlink_to(cached)
    (w / "empty").mkdir()
    (w / "afile.txt").write_text("a plain file\n")

    models = w / "models"
    torch.manual_seed(0)
    _save_model(models / "short-ctx", GPT2LMHeadModel(GPT2Config(
        n_layer=2, n_head=2, n_embd=32, n_positions=8, vocab_size=257, bos_token_id=256, eos_token_id=256)).eval(),
        byte_tokenizer())
    _save_model(models / "tiny-vocab", GPT2LMHeadModel(GPT2Config(
        n_layer=2, n_head=2, n_embd=32, n_positions=64, vocab_size=4, bos_token_id=3, eos_token_id=3)).eval(),
        _word_tokenizer())
    (models / "empty").mkdir()
    shutil.copytree(models / "short-ctx", models / "bad-config")
    (models / "bad-config" / "config.json").write_text('{"model_type": "gpt2", "n_layer": ')
    shutil.copytree(models / "short-ctx", models / "bad-weights")
    (models / "bad-weights" / "model.safetensors").write_bytes(b"\x00" * 64)

    configs = w / "configs"
    configs.mkdir()
    for name, text in CONFIGS.items():
        (configs / name).write_text(text)

    suites = w / "suites"
    good = suites / "bad-inputs"
    build_suite(load_config(configs / "good.yaml"), good, find=_stub_finder, bridge=load_model("planted-erasure"))
    shutil.copytree(good, suites / "bad-manifest")
    (suites / "bad-manifest" / "manifest.json").write_text('{"name": "bad-inputs", ')
    data = bytearray((good / "data" / "dev.parquet").read_bytes())
    shutil.copytree(good, suites / "bad-sha")
    data[len(data) // 2] ^= 0xFF
    (suites / "bad-sha" / "data" / "dev.parquet").write_bytes(bytes(data))
    shutil.copytree(good, suites / "truncated")
    (suites / "truncated" / "data" / "dev.parquet").write_bytes(bytes(data[: len(data) // 3]))
    _set_file_sha(suites / "truncated", "data/dev.parquet")
    shutil.copytree(good, suites / "no-data")
    (suites / "no-data" / "data" / "dev.parquet").unlink()
    manifest = json.loads((good / "manifest.json").read_text())
    shutil.copytree(good, suites / "other-model")
    (suites / "other-model" / "manifest.json").write_text(json.dumps({**manifest, "model": "planted-erasur"}))
    shutil.copytree(good, suites / "manifest-fields")
    for key in ("fingerprints", "fingerprint", "model"):
        manifest.pop(key, None)
    (suites / "manifest-fields" / "manifest.json").write_text(json.dumps(manifest, indent=2))

    records = w / "records"
    records.mkdir()
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["score", "--suite", str(good), "--methods", "dla,random", "--out", str(records / "good.json")
                     ]) == 0
        assert main(["leaderboard", "add", str(records / "good.json"), "--dir", str(w / "board")]) == 0
    record = json.loads((records / "good.json").read_text())[0]
    (records / "not-json.json").write_text('[{"method": ')
    (records / "no-metrics.json").write_text(json.dumps({k: v for k, v in record.items() if k != "metrics"}))
    (records / "unknown-suite.json").write_text(json.dumps({**record, "suite": {**record["suite"],
                                                                               "name": "no-such-suite"}}))
    (records / "empty-list.json").write_text("[]")
    metrics = [{**m, "value": "high"} for m in record["metrics"]]
    (records / "bad-value.json").write_text(json.dumps({**record, "metrics": metrics}))
    (records / "stale.json").write_text(json.dumps({**record, "suite": {**record["suite"], "fingerprint": "0" * 64}}))
    shutil.copytree(w / "board", w / "readonly-board")

    old_run = w / "old-run" / "suites" / "planted-erasure-run"
    old_run.mkdir(parents=True)
    (old_run / "manifest.json").write_text("{}")

    # the permission cases: effective for a user other than root, or for root without its file-mode override
    (w / "locked").mkdir()
    shutil.copytree(good, w / "locked" / "suite")
    (w / "locked-config.yaml").write_text(GOOD_CONFIG)
    (w / "locked-record.json").write_text((records / "good.json").read_text())
    (w / "readonly").mkdir()
    for path, mode in LOCKED.items():
        (w / path).chmod(mode)
    (w / "cwd").mkdir()
    for case in CASES + CONTROLS:
        (w / "cwd" / case.id).mkdir()


LOCKED = {"locked/suite": 0, "locked-config.yaml": 0, "locked-record.json": 0, "readonly": 0o555,
          "readonly-board": 0o555}


def _unlock(w: Path) -> None:
    for path in LOCKED:
        with contextlib.suppress(OSError):
            (w / path).chmod(0o755)


def _as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _perm_prefix() -> list[str] | None:
    """How to start the permission driver: as is, or (as root) without root's override of file modes; None when
    that cannot be done here."""
    if not _as_root():
        return []
    setpriv = shutil.which("setpriv")
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search"] if setpriv else None


@pytest.fixture(scope="session")
def world():
    """The world folder, its own temporary folder outside pytest's."""
    w = Path(tempfile.mkdtemp(prefix="advdla-bad-inputs-"))
    try:
        build_world(w)
        yield w
    finally:
        _unlock(w)
        shutil.rmtree(w, ignore_errors=True)


def case_env(w: Path, case: Case | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(ADVDLA_HOME=str(w / "home"), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               PYTHONDONTWRITEBYTECODE="1", COLUMNS="200")
    for name in ("ADVDLA_GELU4L_DIR", "ADVDLA_DEBUG"):
        env.pop(name, None)
    if case is not None:
        env.update({k: sub(v, w) for k, v in case.env})
    return env


def sub(text: str, w: Path, cwd: Path | None = None) -> str:
    return text.replace("{W}", str(w)).replace("{CWD}", str(cwd or w / "cwd")).replace("{PY}", sys.executable)


def spec(case: Case, w: Path) -> dict:
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
            proc = subprocess.run([*prefix, sys.executable, __file__, str(spec_file), str(result_file)],
                                  env=case_env(w), cwd=str(w), capture_output=True, text=True,
                                  timeout=60 + 2 * CASE_LIMIT_S * len(cases))
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


def run_true_subprocess(case: Case, w: Path) -> dict:
    """One case through the installed ``advdla`` script in a fresh process."""
    s = spec(case, w)
    script = Path(sys.executable).with_name("advdla")
    argv = [str(script)] if script.exists() else [sys.executable, "-m", "advdla.cli"]
    before = snapshot(s["watch"], tuple(s["skip"]))
    t0 = time.perf_counter()
    proc = subprocess.run(argv + s["argv"], cwd=s["cwd"], env=case_env(w, case), capture_output=True, text=True,
                          timeout=300)
    after = snapshot(s["watch"], tuple(s["skip"]))
    return {"id": case.id, "rc": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr, "crash": None,
            "changes": diff(before, after), "seconds": round(time.perf_counter() - t0, 2)}


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
