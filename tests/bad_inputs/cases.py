"""The bad-input corpus, as data: every case is a command line that must be refused, and what the refusal says.

Context: each ``Case`` is one bad input to one subcommand (an unknown name, an out-of-range number, a missing,
malformed, tampered, unreadable or read-only file or folder). The test runs it against the world (``world.py``)
and checks that it is refused with exit status 2 and one stderr line that contains every fragment of ``match``:
the problem first, then the fix. ``CONTROLS`` are good inputs at the same places, which must still be accepted, so
the checks cannot pass by refusing everything. ``TRUE_SUBPROCESS`` names the few cases that run the installed
``advdla`` script itself rather than through the driver (``driver.py``).

Intuition: a case is written the way a user would type it (``C("id", "score --suite {W}/empty", "manifest.json",
"suite")``), with placeholders for the places that exist only once the world is built. The suite configs the
``suite build`` cases point at (``CONFIGS``) are bad inputs too, so they stand here; the world writes them out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["CASES", "CONFIGS", "CONTROLS", "GOOD_CONFIG", "ROOT", "TRUE_SUBPROCESS", "C", "Case"]

ROOT = Path(__file__).resolve().parents[2]  # the repository (tests/bad_inputs/cases.py)


@dataclass(frozen=True)
class Case:
    """``argv`` may use {W} (the world folder), {CWD} (the case's empty working folder) and {PY} (sys.executable).

    ``match``: fragments the one stderr line must contain (case-insensitive), the problem first, then the fix.
    ``group``: "main" (driver as the current user) or "perm" (permission cases: as root, without its file-mode
    override).
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


# The suite configs the `suite build` cases point at ({W}/configs/NAME); good.yaml builds the world's suite.
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
