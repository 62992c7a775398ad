"""The leaderboard: a folder of result records, validated on the way in, ranked and judged on the way out.

Context: ``advdla score`` writes one self-describing result record per attribution method (see
:mod:`advdla.scoring`): which method and version with which parameters, which suite (name, version,
fingerprint) and split, its metrics with cluster-bootstrap intervals per group of examples (adversarial,
natural, all, and the adversarial examples' mechanisms: compensation, baseline, mixed), and its per-example
values. The leaderboard is nothing but those records, one JSON file per (suite, suite version, split, method,
method version), in a folder (``leaderboard/`` in the repository), plus ``LEADERBOARD.md`` rendered from them.

Intuition: a score means something only for the exact suite it was computed on. Every record carries that
suite's fingerprint; when the suite on disk (``suites/<name>/manifest.json``) is rebuilt, its fingerprint
moves and the old records become *stale*: they are listed apart, never ranked next to current ones.

What a table shows (:func:`ranked_rows`): the *noise ceiling* on top, marked and not ranked: ``output-patching``
run on the method resamples is exact, and differs from the truth only because the truth averages over other
resamples, so no method can be expected to beat it; then the methods, ranked; then sanity rows that read the
truth (``oracle``), not ranked. Per method: rank agreement and fooled rate per mechanism and on natural
examples, the |TE|-weighted Spearman and the AUROC, and its *paired* difference from DLA on the same examples
(:func:`paired`: a cluster bootstrap over base documents of the per-example differences, which is what tells a
real improvement from overlapping intervals). :func:`verdict` turns those numbers into the three or four
sentences that open ``LEADERBOARD.md``; no number in them is written by hand.

Adding a record (:func:`add_record`) validates it (schema, known suite, matching fingerprint) and writes
it atomically (temporary file + ``os.replace``) under a file lock, so concurrent ``advdla score`` runs
lose nothing. Reading (:func:`load_board`) never stops at a bad file: each one becomes one line in
``Board.problems`` and the rest still render.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from advdla.atomic import jsonable, write_json_atomic, write_text_atomic
from advdla.errors import AdvdlaError, did_you_mean
from advdla.methods import METHODS
from advdla.scoring import METRICS, ResultRecord, group_difference, paired_interval
from advdla.suites import KINDS

__all__ = ["Entry", "Board", "parse_record", "record_filename", "add_record", "load_board", "groups", "role",
           "paired", "beats", "ranked_rows", "display_rows", "verdict", "run_verdict", "render_markdown",
           "write_markdown", "suite_fingerprint", "check_current", "KINDS", "GROUPS", "CEILING", "BASELINE"]

LOCK_NAME = ".leaderboard.lock"
MARKDOWN_NAME = "LEADERBOARD.md"
# The groups of examples a record scores, with the abbreviation of their columns (``spearman_comp`` ...).
GROUPS = {"adversarial": "adv", "compensation": "comp", "baseline": "base", "mixed": "mixed", "natural": "nat",
          "all": "all"}
CEILING = "output-patching"  # exact on the method resamples: the noise ceiling
HIDDEN_PARAMS = {"seed", "batch_size"}  # knobs that do not change a method's numbers: not shown with its name
BASELINE = "dla"  # what every method is compared with, pairwise
RELATIVE = "dla-relative"  # the verdict asks whether it fixes baseline examples
MIN_VERDICT_DOCS = 5  # run_verdict speaks only when the adversarial examples span this many base documents
COMPARED = (("spearman", "adversarial"), ("fooled", "adversarial"), ("spearman", "compensation"),
            ("fooled", "compensation"), ("spearman", "baseline"), ("fooled", "baseline"), ("spearman", "natural"),
            ("fooled", "natural"))  # (metric, group) pairs each row carries a paired difference from DLA for


@dataclass
class Entry:
    """One result record, reduced to what the leaderboard ranks. ``metrics[kind][metric] = (value, low, high)``."""

    method: str
    method_version: str
    suite: str
    suite_version: int
    suite_fingerprint: str
    split: str
    metrics: dict[str, dict[str, tuple[float, float, float]]]
    n: dict[str, int] = field(default_factory=dict)
    higher_is_better: dict[str, bool] = field(default_factory=dict)
    record: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def key(self) -> tuple[str, int, str, str, str]:
        return (self.suite, self.suite_version, self.split, self.method, self.method_version)

    def value(self, kind: str, metric: str) -> float:
        return self.metrics.get(kind, {}).get(metric, (math.nan,) * 3)[0]


@dataclass
class Board:
    """What a leaderboard folder holds: current entries, stale ones (with the reason), and unreadable files."""

    current: list[Entry]
    stale: list[tuple[Entry, str]]
    problems: list[str]


# ----------------------------------------------------------------------------------------------- records


def parse_record(record: Any) -> Entry:
    """The :class:`Entry` of a result record dict (:class:`advdla.scoring.ResultRecord` schema, read through its
    ``from_dict``); :class:`AdvdlaError` (one line) when a field is missing or has the wrong type."""

    if not isinstance(record, dict):
        raise AdvdlaError(f"a result record must be a JSON object, got {type(record).__name__}")
    try:
        rec = ResultRecord.from_dict(record)
        entry = Entry(
            method=_text(rec.method["name"]),
            method_version=_text(rec.method["version"]),
            suite=_text(rec.suite["name"]),
            suite_version=int(rec.suite["version"]),
            suite_fingerprint=_text(rec.suite["fingerprint"]),
            split=_text(rec.split),
            metrics={},
            record=rec.to_dict(),
        )
        for m in rec.metrics:
            entry.metrics.setdefault(m["kind"], {})[m["metric"]] = (_num(m["value"]), _num(m["lo"]), _num(m["hi"]))
            entry.n[m["kind"]] = max(entry.n.get(m["kind"], 0), int(m.get("n") or 0))
            entry.higher_is_better[m["metric"]] = bool(m.get("higher_is_better", _higher_is_better(m["metric"])))
    except KeyError as exc:
        raise AdvdlaError(
            f"result record lacks the field {exc.args[0]!r} (schema: advdla.scoring.ResultRecord)"
        ) from None
    except (TypeError, ValueError, AttributeError) as exc:
        raise AdvdlaError(
            f"result record has a field of the wrong type ({exc}); schema: advdla.scoring.ResultRecord"
        ) from None
    if entry.split not in ("dev", "test", "all"):
        raise AdvdlaError(f"result record's split {entry.split!r} is not dev, test or all")
    return entry


def _text(x: Any) -> str:
    if not isinstance(x, (str, int)) or isinstance(x, bool) or x == "":
        raise TypeError(f"expected a non-empty string, got {x!r}")
    return str(x)


def _num(x: Any) -> float:
    return math.nan if x is None else float(x)


def record_filename(entry: Entry) -> str:
    """``<suite>-v<version>-<split>-<method>-v<method version>.json``, with unsafe characters replaced."""
    parts = [entry.suite, f"v{entry.suite_version}", entry.split, entry.method, f"v{entry.method_version}"]
    return "-".join(re.sub(r"[^A-Za-z0-9_.]+", "_", p) for p in parts) + ".json"


# ------------------------------------------------------------------------------------------------ suites


def suite_fingerprint(name: str, suites_dir: Path) -> tuple[int, str]:
    """(version, fingerprint) of ``suites_dir/<name>/manifest.json``; AdvdlaError if there is no such suite."""
    manifest_path = Path(suites_dir) / name / "manifest.json"
    if not manifest_path.is_file():
        known = sorted(p.parent.name for p in Path(suites_dir).glob("*/manifest.json"))
        hint = f" Known suites: {', '.join(known)}.{did_you_mean(name, known)}" if known else ""
        raise AdvdlaError(f"unknown suite {name!r}: no {manifest_path}.{hint}")
    try:
        manifest = json.loads(manifest_path.read_text())
        return int(manifest["version"]), _manifest_fingerprint(manifest)
    except (ValueError, KeyError, TypeError) as exc:
        raise AdvdlaError(f"suite manifest {manifest_path} is unreadable ({exc}): rebuild the suite") from None


def _manifest_fingerprint(manifest: dict[str, Any]) -> str:
    """The suite's final fingerprint: ``fingerprint`` as a string, or the last link of a fingerprint chain."""
    fp = manifest["fingerprint"]
    if isinstance(fp, dict):
        fp = fp.get("suite") or fp.get("examples") or list(fp.values())[-1]
    if not isinstance(fp, str):
        raise TypeError("fingerprint is not a string")
    return fp


def _default_suites_dir(leaderboard_dir: Path) -> Path:
    """``suites/`` next to the leaderboard folder (the repository layout, and ``advdla run --out``'s)."""
    return Path(leaderboard_dir).resolve().parent / "suites"


def check_current(entry: Entry, suites_dir: Path) -> str | None:
    """None when the entry's suite is on disk with the same fingerprint, else why it is stale (one line)."""
    version, fp = suite_fingerprint(entry.suite, suites_dir)
    if fp != entry.suite_fingerprint:
        return (
            f"scored on {entry.suite} v{entry.suite_version} (fingerprint {entry.suite_fingerprint[:12]}), "
            f"the suite on disk is v{version} ({fp[:12]}): re-score it"
        )
    return None


# ---------------------------------------------------------------------------------------------- writing


def add_record(
    record: dict[str, Any],
    directory: str | os.PathLike,
    *,
    suites_dir: str | os.PathLike | None = None,
    allow_stale: bool = False,
) -> Path:
    """Validate ``record`` and write it into the leaderboard folder atomically, under a lock; returns its path.

    Validation: the schema (:func:`parse_record`), a known suite (``suites_dir/<name>/manifest.json``) and a
    fingerprint that matches it (unless ``allow_stale``). A record with the same (suite, version, split,
    method, method version) replaces the old one: re-scoring a method updates its row.
    """
    from filelock import FileLock

    entry = parse_record(json.loads(json.dumps(record, default=jsonable)))  # what will be read back
    directory = Path(directory)
    reason = check_current(entry, Path(suites_dir) if suites_dir else _default_suites_dir(directory))
    if reason and not allow_stale:
        raise AdvdlaError(f"record for {entry.method} not added: {reason}")
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / record_filename(entry)
    with FileLock(str(directory / LOCK_NAME), timeout=60):
        write_json_atomic(target, entry.record, sort_keys=True)
    return target


# ---------------------------------------------------------------------------------------------- reading


def load_board(
    directory: str | os.PathLike,
    *,
    suites_dir: str | os.PathLike | None = None,
    suite: str | None = None,
    split: str | None = None,
) -> Board:
    """Every record in ``directory``, sorted into current and stale; each unreadable file is one problem line."""
    directory = Path(directory)
    if not directory.is_dir():
        raise AdvdlaError(
            f"no leaderboard folder {directory}: score a suite with `advdla score --suite PATH --out FILE`, "
            f"then `advdla leaderboard add FILE --dir {directory}`"
        )
    sdir = Path(suites_dir) if suites_dir else _default_suites_dir(directory)
    board = Board(current=[], stale=[], problems=[])
    for path in sorted(p for p in directory.glob("*.json") if not p.name.startswith(".")):
        try:
            entry = parse_record(json.loads(path.read_text()))
            entry.path = path
            if (suite and entry.suite != suite) or (split and entry.split != split):
                continue
            reason = check_current(entry, sdir)
        except (AdvdlaError, ValueError, OSError) as exc:
            board.problems.append(f"{path.name}: {_one_line(exc)}")
            continue
        (board.stale.append((entry, reason)) if reason else board.current.append(entry))
    return board


def _one_line(exc: Exception) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"not valid JSON ({exc.msg} at line {exc.lineno}): fix or delete the file"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _higher_is_better(metric: str) -> bool:
    """The scoring registry's direction for ``metric`` (records carry it too; this is for older records)."""

    spec = METRICS.get(metric)
    return True if spec is None else bool(spec.higher_is_better)


def groups(entries: list[Entry]) -> dict[tuple[str, int, str], list[Entry]]:
    """Entries by (suite, suite version, split): each group is one ranked table."""
    out: dict[tuple[str, int, str], list[Entry]] = {}
    for e in entries:
        out.setdefault((e.suite, e.suite_version, e.split), []).append(e)
    return dict(sorted(out.items()))


# ------------------------------------------------------------------------------------------------ roles


def role(entry: Entry) -> str:
    """``ceiling`` (the noise ceiling: :data:`CEILING` on the method resamples, shown on top, not ranked),
    ``sanity`` (a row that reads the truth, like ``oracle``: shown below, not ranked) or ``method``."""
    if entry.method == CEILING:
        return "ceiling"
    spec = METHODS.get(entry.method)
    return "sanity" if (spec is not None and spec.uses_truth) or entry.method == "oracle" else "method"


# ------------------------------------------------------------------------------------- paired comparisons


def per_example(entry: Entry) -> dict[str, dict[str, Any]]:
    """The record's per-example rows (example_id -> {kind, mechanism, cluster, metric: value...})."""
    return {row["example_id"]: row for row in entry.record.get("per_example") or []}


def _in_group(row: dict[str, Any], group: str) -> bool:
    if group == "all":
        return True
    if group in ("adversarial", "natural"):
        return row.get("kind") == group
    return row.get("kind") == "adversarial" and row.get("mechanism") == group


def n_documents(entry: Entry, group: str, metric: str) -> int:
    """How many base documents the ``group`` examples with a defined ``metric`` come from: an interval needs two
    (records scored before intervals followed that rule may hold a zero-width one; the board drops it)."""
    rows = [r for r in per_example(entry).values() if _in_group(r, group) and not math.isnan(_num(r.get(metric)))]
    return len({str(r.get("cluster", i)) for i, r in enumerate(rows)})


def paired(entry: Entry, base: Entry, metric: str, group: str) -> tuple[float, float, float, int]:
    """Mean of (entry - base) for ``metric`` over the ``group`` examples both were scored on, with the paired
    cluster-bootstrap 95% interval (:func:`advdla.scoring.paired_interval`) and the number of examples used."""
    mine, theirs = per_example(entry), per_example(base)
    ids = [i for i, row in theirs.items() if i in mine and _in_group(row, group)]
    a = np.array([_num(mine[i].get(metric)) for i in ids], dtype=float)
    b = np.array([_num(theirs[i].get(metric)) for i in ids], dtype=float)
    clusters = np.array([str(theirs[i].get("cluster", i)) for i in ids])
    n = int((~np.isnan(a - b)).sum()) if ids else 0
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    mean, lo, hi = paired_interval(a, b, clusters, seed=0)
    return mean, lo, hi, n


def adv_vs_natural(entry: Entry, metric: str) -> tuple[float, float, float]:
    """One method's ``metric`` on adversarial minus natural examples, with the document-cluster bootstrap
    interval of :func:`advdla.scoring.group_difference` (NaN where a kind is missing)."""
    rows = [r for r in per_example(entry).values() if r.get("kind") in ("adversarial", "natural")]
    if not rows:
        return math.nan, math.nan, math.nan
    values = np.array([_num(r.get(metric)) for r in rows], dtype=float)
    in_adv = np.array([r["kind"] == "adversarial" for r in rows])
    clusters = np.array([str(r.get("cluster", i)) for i, r in enumerate(rows)])
    return group_difference(values, in_adv, clusters, seed=0)


def beats(entry: Entry, base: Entry, metric: str, group: str) -> bool | None:
    """True when ``entry`` is better than ``base`` with a paired interval that excludes 0, False when it is
    not, None when there is nothing to compare (no shared examples in the group)."""
    mean, lo, hi, n = paired(entry, base, metric, group)
    if n == 0 or math.isnan(lo):
        return None
    return lo > 0 if _higher_is_better(metric) else hi < 0


# ----------------------------------------------------------------------------------------------- ranking


def sort_key(sort: str) -> tuple[str, str]:
    """``spearman`` -> (adversarial, spearman); ``compensation.fooled`` -> (compensation, fooled); ``drop``."""
    kind, _, metric = sort.rpartition(".")
    return (kind or "adversarial"), metric


def ranked_rows(entries: list[Entry], *, sort: str = "spearman") -> list[dict[str, Any]]:
    """One row per method: the noise ceiling first (``rank`` 'ceiling'), then the methods best first by ``sort``
    (a metric on adversarial examples, or ``GROUP.METRIC``), then sanity rows (``rank`` 'sanity', e.g. oracle).

    Each row: rank, method, version, role, params, wall_time_s, every metric per group as ``{metric}_{abbr}``
    plus ``..._ci`` [low, high] (abbreviations in :data:`GROUPS`), the drops, and for every method but DLA its
    paired difference from DLA ``vs_dla_{metric}_{abbr}`` = [mean, low, high] (per-example records needed).
    """
    kind, metric = sort_key(sort)
    if kind not in GROUPS:
        raise AdvdlaError(f"unknown group {kind!r} in --sort {sort}: use METRIC or GROUP.METRIC with GROUP one of "
                          f"{', '.join(GROUPS)}{did_you_mean(kind, list(GROUPS))}")
    known = {m for e in entries for k in e.metrics.values() for m in k} | {"drop"}
    if entries and metric not in known:
        raise AdvdlaError(
            f"unknown --sort metric {metric!r}: known are {', '.join(sorted(known))}."
            f"{did_you_mean(metric, sorted(known))}"
        )
    base = next((e for e in entries if e.method == BASELINE), None)
    rows = [_row(e, base) for e in entries]
    col = "drop_spearman" if metric == "drop" else f"{metric}_{GROUPS[kind]}"
    higher = next((e.higher_is_better[metric] for e in entries if metric in e.higher_is_better), True)
    sign = 1.0 if metric == "drop" or not higher else -1.0
    order = {"ceiling": 0, "method": 1, "sanity": 2}
    rows.sort(key=lambda r: (order[r["role"]], math.isnan(r.get(col, math.nan)), sign * _nan0(r.get(col, math.nan)),
                             r["method"]))
    n = 0
    for r in rows:
        n += r["role"] == "method"
        r["rank"] = n if r["role"] == "method" else r["role"]
    return [{"rank": r.pop("rank"), **r} for r in rows]


def _nan0(x: float) -> float:
    return 0.0 if math.isnan(x) else x


def _row(e: Entry, base: Entry | None) -> dict[str, Any]:
    params = {k: v for k, v in (e.record.get("method", {}).get("params") or {}).items()
              if k not in HIDDEN_PARAMS and v is not None}
    row: dict[str, Any] = {"method": e.method, "version": e.method_version, "role": role(e), "params": params,
                           "wall_time_s": _num(e.record.get("wall_time_s"))}
    for kind, abbr in GROUPS.items():
        row[f"n_{abbr}"] = e.n.get(kind)
        for metric, (v, lo, hi) in sorted(e.metrics.get(kind, {}).items()):
            row[f"{metric}_{abbr}"] = v
            one_doc = per_example(e) and n_documents(e, kind, metric) < 2
            row[f"{metric}_{abbr}_ci"] = [math.nan, math.nan] if one_doc else [lo, hi]
    row["drop_spearman"] = e.value("natural", "spearman") - e.value("adversarial", "spearman")
    row["drop_fooled"] = e.value("adversarial", "fooled") - e.value("natural", "fooled")
    for metric in ("spearman", "fooled"):
        row[f"adv_vs_nat_{metric}"] = list(adv_vs_natural(e, metric))
    if base is not None and e is not base and role(e) == "method":
        for metric, kind in COMPARED:
            mean, lo, hi, n = paired(e, base, metric, kind)
            if n:
                row[f"vs_dla_{metric}_{GROUPS[kind]}"] = [mean, lo, hi]
    return row


# --------------------------------------------------------------------------------------------- rendering

# Columns shown in the markdown: (header, row key, with interval). The terminal table shows those in COMPACT
# (everything is in --format markdown and json), each interval on its own line to stay narrow.
DISPLAY = (
    ("Spearman adv", "spearman_adv", True),
    ("Spearman comp", "spearman_comp", True),
    ("Spearman base", "spearman_base", True),
    ("Spearman nat", "spearman_nat", True),
    ("TE-weighted Spearman adv", "spearman_w_adv", True),
    ("AUROC adv", "auroc_adv", True),
    ("fooled comp", "fooled_comp", True),
    ("fooled base", "fooled_base", True),
    ("fooled nat", "fooled_nat", True),
    ("vs DLA: Spearman adv", "vs_dla_spearman_adv", True),
    ("vs DLA: fooled adv", "vs_dla_fooled_adv", True),
    ("time s", "wall_time_s", False),
)
COMPACT = {"spearman_comp", "spearman_base", "spearman_nat", "fooled_comp", "fooled_base", "fooled_nat",
           "vs_dla_spearman_adv"}


def display_rows(rows: list[dict[str, Any]], *, compact: bool = False) -> list[dict[str, str]]:
    """Rows as strings, ``0.52 [0.41, 0.63]`` (``compact``: fewer columns, the interval on a second line).

    The ceiling's and sanity rows' method cells say what they are; paired differences from DLA are marked
    ``*`` where their interval excludes 0.
    """
    present = [(h, k, ci) for h, k, ci in DISPLAY if any(k in r for r in rows) and (not compact or k in COMPACT)]
    out = []
    for r in rows:
        d = {"#": "" if r["role"] != "method" else str(r["rank"]), "method": _method_cell(r, compact)}
        for header, key, ci in present:
            d[header] = _value_cell(r, key, ci, sep="\n" if compact else " ")
        if not compact:  # the terminal table says it in its title
            d["n comp/base/nat"] = "/".join(str(r.get(f"n_{a}") or 0) for a in ("comp", "base", "nat"))
        out.append(d)
    return out


def _method_cell(r: dict[str, Any], compact: bool) -> str:
    name = r["method"] if compact else f"{r['method']} v{r['version']}"
    if not compact and r["params"]:
        name += " (" + ", ".join(f"{k}={v}" for k, v in sorted(r["params"].items())) + ")"
    tag = {"ceiling": "noise ceiling", "sanity": "sanity, not ranked"}.get(r["role"])
    return f"{name} [{tag}]" if tag else name


def _value_cell(r: dict[str, Any], key: str, ci: bool, *, sep: str) -> str:
    v = r.get(key, math.nan)
    if key.startswith("vs_dla_"):
        return _diff_cell(v, sep=sep)
    if key == "wall_time_s":
        return "-" if v is None or math.isnan(v) else f"{v:.1f}"
    return _cell(v, r.get(f"{key}_ci") if ci else None, sep=sep)


def _diff_cell(v: Any, *, sep: str) -> str:
    if not isinstance(v, list) or any(x is None or math.isnan(x) for x in v):
        return "-"
    mean, lo, hi = v
    star = "*" if lo > 0 or hi < 0 else ""
    interval = f"[{lo:+.2f},{hi:+.2f}]" if sep == "\n" else f"[{lo:+.2f}, {hi:+.2f}]"
    return f"{mean:+.2f}{star}{sep}{interval}"


def _cell(v: float, ci: list[float] | None, *, sep: str = " ") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    s = f"{v:+.2f}" if v < 0 else f"{v:.2f}"
    if ci and not any(x is None or math.isnan(x) for x in ci):
        s += f"{sep}[{ci[0]:.2f},{ci[1]:.2f}]" if sep == "\n" else f"{sep}[{ci[0]:.2f}, {ci[1]:.2f}]"
    return s


# ----------------------------------------------------------------------------------------------- verdict


def verdict(entries: list[Entry]) -> list[str]:
    """Three or four sentences stating what one (suite, split) table says, every number read from the records:
    how often DLA is fooled (per mechanism), which methods beat DLA on compensation examples with a paired
    interval that excludes 0, whether dla-relative fixes baseline examples, and the ceiling against the best."""
    by = {e.method: e for e in entries}
    dla = by.get(BASELINE)
    if dla is None:
        return [f"DLA was not scored on this split, so nothing is compared with it; {len(entries)} methods were."]
    out = [_dla_sentence(dla)]
    out.append(_compensation_sentence(entries, dla))
    if "baseline" in dla.metrics:
        out.append(_baseline_sentence(by.get(RELATIVE), dla))
    ceiling = _ceiling_sentence(entries)
    if ceiling:
        out.append(ceiling)
    return out


def run_verdict(entries: list[Entry]) -> list[str]:
    """Two interval lines and one verdict sentence for one (suite, split) table, every number read from the records:
    DLA on adversarial minus natural examples (Spearman below 0 or fooled above 0, interval excluding 0: the
    adversarial examples do mislead it), the best method by adversarial Spearman minus DLA (paired), and what
    the two say together."""
    by = {e.method: e for e in entries}
    dla = by.get(BASELINE)
    methods = [e for e in entries if role(e) == "method" and e is not dla
               and not math.isnan(e.value("adversarial", "spearman"))]
    if dla is None or not methods:
        return ["No verdict: DLA and at least one other method must be scored on the split."]
    rho, fooled = adv_vs_natural(dla, "spearman"), adv_vs_natural(dla, "fooled")
    best = max(methods, key=lambda e: e.value("adversarial", "spearman"))
    diff = paired(best, dla, "spearman", "adversarial")
    lines = [f"DLA, adversarial minus natural examples: Spearman {_interval(rho)}, fooled {_interval(fooled)} "
             f"(95% intervals that resample whole documents).",
             f"{best.method} (best Spearman on adversarial examples) minus DLA there: Spearman {_interval(diff[:3])} "
             f"(paired 95% interval over {diff[3]} examples)."]
    docs = {str(r.get("cluster", i)) for i, r in per_example(dla).items() if r.get("kind") == "adversarial"}
    if len(docs) < MIN_VERDICT_DOCS:  # a bootstrap over one or two documents has an interval of width ~0
        lines.append(f"Verdict: none yet: the adversarial examples come from {len(docs)} base document(s), and a "
                     f"verdict needs at least {MIN_VERDICT_DOCS} (search longer, or with another --seed).")
        return lines
    misled = rho[2] < 0 or fooled[1] > 0
    first = ("DLA misleads measurably more on the adversarial examples than on natural text" if misled
             else "DLA does not mislead measurably more on the adversarial examples than on natural text")
    second = (f"{best.method} ranks components measurably better than DLA there" if diff[1] > 0
              else f"no method, not even {best.method}, ranks components measurably better than DLA there")
    lines.append(f"Verdict: {first}, and {second}.")
    return lines


def _interval(v: tuple[float, ...]) -> str:
    return f"{v[0]:+.2f} [{v[1]:+.2f}, {v[2]:+.2f}]"


def _pct(x: float) -> str:
    return "-" if math.isnan(x) else f"{100 * x:.0f}%"


def _dla_sentence(dla: Entry) -> str:
    per = [f"{_pct(dla.value(g, 'fooled'))} of {dla.n.get(g, 0)} {g}" for g in ("compensation", "baseline", "mixed")
           if dla.n.get(g)]
    detail = f" ({'; '.join(per)})" if per else ""
    out = (f"DLA is fooled on {_pct(dla.value('adversarial', 'fooled'))} of the {dla.n.get('adversarial', 0)} "
           f"adversarial examples{detail} and on {_pct(dla.value('natural', 'fooled'))} of the "
           f"{dla.n.get('natural', 0)} natural ones")
    diffs = [(m, adv_vs_natural(dla, m)) for m in ("fooled", "spearman")]
    shown = [f"{m} {d:+.2f} [{lo:+.2f}, {hi:+.2f}]" for m, (d, lo, hi) in diffs if not math.isnan(lo)]
    if shown:
        out += (f"; adversarial minus natural, with 95% intervals that resample whole documents: "
                f"{', '.join(shown)}")
    return out + "."


def _compensation_sentence(entries: list[Entry], dla: Entry) -> str:
    group = "compensation" if dla.n.get("compensation") else "adversarial"
    methods = [e for e in entries if role(e) == "method" and e is not dla]
    verdicts = {e.method: beats(e, dla, "spearman", group) for e in methods}
    if all(v is None for v in verdicts.values()):
        if dla.n.get(group) and n_documents(dla, group, "spearman") < 2:
            return (f"The {dla.n[group]} {group} examples all come from one document, so no interval can separate "
                    f"a method from DLA there.")
        return f"No per-example results on {group} examples to compare the methods with DLA."
    better = [f"{m} ({paired(next(e for e in methods if e.method == m), dla, 'spearman', group)[0]:+.2f})"
              for m, v in verdicts.items() if v]
    if not better:
        return (f"On {group} examples no method ranks components better than DLA with a paired 95% interval of "
                f"the Spearman difference that excludes 0.")
    rest = [m for m, v in verdicts.items() if v is False]
    tail = f"; {', '.join(rest)} do not" if rest else ""
    return (f"On {group} examples {_join(better)} rank components better than DLA (paired 95% interval of the "
            f"Spearman difference above 0, mean difference in brackets){tail}.")


def _baseline_sentence(relative: Entry | None, dla: Entry) -> str:
    if relative is None:
        return f"{RELATIVE} was not scored, so whether it fixes DLA's baseline examples is open."
    f_rel, f_dla = relative.value("baseline", "fooled"), dla.value("baseline", "fooled")
    mean, lo, hi, n = paired(relative, dla, "fooled", "baseline")
    if not n:
        interval = ""
    elif math.isnan(lo):
        interval = f" (paired difference {mean:+.2f}; all from one document, so no interval)"
    else:
        interval = f" (paired difference {mean:+.2f} [{lo:+.2f}, {hi:+.2f}])"
    if math.isnan(f_rel) or math.isnan(f_dla):
        return f"The fooled rates of {RELATIVE} and DLA on baseline examples are undefined here."
    if f_dla == 0:
        how = "DLA is not fooled there to begin with"
    elif f_rel <= 0.5 * f_dla:
        how = "at most half of DLA's: it fixes most of them" if f_rel > 0 else "it fixes all of them"
    else:
        how = "more than half of DLA's: it does not fix them"
    return (f"On the {dla.n.get('baseline', 0)} baseline examples {RELATIVE} is fooled on {_pct(f_rel)} against "
            f"DLA's {_pct(f_dla)}{interval}, {how}.")


def _ceiling_sentence(entries: list[Entry]) -> str | None:
    ceiling = next((e for e in entries if role(e) == "ceiling"), None)
    methods = [e for e in entries if role(e) == "method" and not math.isnan(e.value("adversarial", "spearman"))]
    if ceiling is None or not methods:
        return None
    best = max(methods, key=lambda e: e.value("adversarial", "spearman"))
    c, b = ceiling.value("adversarial", "spearman"), best.value("adversarial", "spearman")
    above = " (above it: resampling noise, not a better method)" if b > c else ""
    return (f"The noise ceiling ({CEILING} on the method resamples) reaches a Spearman of {c:.2f} on adversarial "
            f"examples; the best method, {best.method}, reaches {b:.2f}{above}.")


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _headline_groups(board: Board) -> list[tuple[tuple[str, int, str], list[Entry]]]:
    """Per suite (latest version), the split the verdict speaks for: test if scored, else all, else dev."""
    grouped = groups(board.current)
    out = []
    for suite in sorted({s for s, _, _ in grouped}):
        version = max(v for s, v, _ in grouped if s == suite)
        for split in ("test", "all", "dev"):
            if (suite, version, split) in grouped:
                out.append(((suite, version, split), grouped[(suite, version, split)]))
                break
    return out


INTRO = (
    "Attribution methods scored against causal ground truth (each component's total effect: its output resampled, "
    "averaged over the truth's resamples) on advdla suites. Methods see only their own resamples, disjoint from "
    "the truth's. Values are means over examples with cluster-bootstrap 95% intervals (clusters: the base "
    "documents); *adv* = adversarial examples (prompts on which DLA misleads), split by mechanism: *comp* = "
    "compensation (later components undo the target's direct effect), *base* = baseline (DLA's zero baseline "
    "overstates an output that hardly depends on the context); *nat* = natural corpus examples. *fooled* = share "
    "of examples where the method puts the target in its top k although its true effect is not. *TE-weighted "
    "Spearman* weighs each component by its |TE|; *AUROC* separates the components with |TE| >= 0.1 |LD| from "
    "the rest. *vs DLA* = the paired difference from DLA on the same examples with its paired cluster-bootstrap "
    "interval (`*`: the interval excludes 0). Where a group's examples come from a single document there is no "
    "interval (one document cannot show its own spread). The *noise ceiling* (`output-patching` on the method "
    "resamples: exact, but on other resamples than the truth's) is shown on top and not ranked; `oracle` (the "
    "truth itself) is a sanity row, not ranked. *time s*: the method's wall time on the split (its cost, with its "
    "parameters in brackets). Rendered by `advdla leaderboard render`; the verdict sentences are generated from "
    "the records."
)


def render_markdown(board: Board, *, sort: str = "spearman") -> str:
    """The leaderboard as markdown: the generated verdict, then one table per (suite, version, split), then stale
    records and problems."""
    lines = ["# advdla leaderboard", ""]
    for (suite, version, split), entries in _headline_groups(board):
        lines += [f"**{suite} v{version}, {split} split.** " + " ".join(verdict(entries)), ""]
    lines += [INTRO, "", f"Methods ranked by {sort} ({sort_key(sort)[0]} examples).", ""]
    for (suite, version, split), entries in groups(board.current).items():
        fp = entries[0].suite_fingerprint
        lines += [f"## {suite} v{version}, {split} split", "", f"Suite fingerprint `{fp[:16]}`.", ""]
        lines += [" ".join(verdict(entries)), ""]
        lines += _md_table(display_rows(ranked_rows(entries, sort=sort))) + [""]
    if not board.current:
        lines += ["No current records.", ""]
    if board.stale:
        lines += ["## Stale records (their suite has changed; not ranked)", ""]
        lines += [f"- {e.method} v{e.method_version} on {e.suite} {e.split}: {why}" for e, why in board.stale] + [""]
    if board.problems:
        lines += ["## Unreadable records", ""] + [f"- {p}" for p in board.problems] + [""]
    return "\n".join(lines)


def _md_table(rows: list[dict[str, str]]) -> list[str]:
    if not rows:
        return []
    cols = list(rows[0])
    out = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    return out + ["| " + " | ".join(r[c] for c in cols) + " |" for r in rows]


def write_markdown(
    directory: str | os.PathLike, *, suites_dir: str | os.PathLike | None = None, sort: str = "spearman"
) -> Path:
    """Render ``directory/LEADERBOARD.md`` from the records in it (atomically, under the folder's lock)."""
    from filelock import FileLock

    directory = Path(directory)
    text = render_markdown(load_board(directory, suites_dir=suites_dir), sort=sort)
    path = directory / MARKDOWN_NAME
    with FileLock(str(directory / LOCK_NAME), timeout=60):
        write_text_atomic(path, text)
    return path
