"""The leaderboard: a folder of result records, validated on the way in, ranked on the way out.

Context: ``advdla score`` writes one self-describing result record per attribution method (see
:mod:`advdla.scoring`): which method and version, which suite (name, version, fingerprint) and split, and
its metrics with bootstrap intervals, separately on adversarial and natural examples. The leaderboard is
nothing but those records, one JSON file per (suite, suite version, split, method, method version), in a
folder (``leaderboard/`` in the repository), plus ``LEADERBOARD.md`` rendered from them.

Intuition: a score means something only for the exact suite it was computed on. Every record carries that
suite's fingerprint; when the suite on disk (``suites/<name>/manifest.json``) is rebuilt, its fingerprint
moves and the old records become *stale*: they are listed apart, never ranked next to current ones.
The number a reader wants is the *drop*: how much worse a method does on adversarial examples than on
natural ones (Spearman natural - Spearman adversarial; fooled rate adversarial vs natural). A method that
erasure does not fool has a drop near 0.

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

from advdla.atomic import jsonable, write_json_atomic, write_text_atomic
from advdla.errors import AdvdlaError, did_you_mean
from advdla.scoring import METRICS, ResultRecord
from advdla.suites import KINDS

__all__ = [
    "Entry",
    "Board",
    "parse_record",
    "record_filename",
    "add_record",
    "load_board",
    "ranked_rows",
    "render_markdown",
    "write_markdown",
    "suite_fingerprint",
    "KINDS",
]

LOCK_NAME = ".leaderboard.lock"
MARKDOWN_NAME = "LEADERBOARD.md"


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
            f"no leaderboard folder {directory}: score a suite with `advdla score --leaderboard {directory}`"
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


def sort_key(sort: str) -> tuple[str, str]:
    """``spearman`` -> (adversarial, spearman); ``natural.kendall`` -> (natural, kendall); ``drop`` allowed."""
    kind, _, metric = sort.rpartition(".")
    return (kind or "adversarial"), metric


def ranked_rows(entries: list[Entry], *, sort: str = "spearman") -> list[dict[str, Any]]:
    """One row per method, best first by ``sort`` (on adversarial examples unless prefixed ``natural.``).

    Each row: rank, method, version, every metric per kind as ``value`` plus ``[low, high]``, and the drops.
    ``drop_spearman`` = Spearman natural - Spearman adversarial (positive: erasure hurts the method).
    """
    kind, metric = sort_key(sort)
    known = {m for e in entries for k in e.metrics.values() for m in k} | {"drop"}
    if entries and metric not in known:
        raise AdvdlaError(
            f"unknown --sort metric {metric!r}: known are {', '.join(sorted(known))}."
            f"{did_you_mean(metric, sorted(known))}"
        )
    rows = [_row(e) for e in entries]
    col = "drop_spearman" if metric == "drop" else f"{metric}_{kind[:3]}"
    higher = next((e.higher_is_better[metric] for e in entries if metric in e.higher_is_better), True)
    sign = 1.0 if metric == "drop" or not higher else -1.0
    rows.sort(key=lambda r: (math.isnan(r.get(col, math.nan)), sign * _nan0(r.get(col, math.nan)), r["method"]))
    for i, r in enumerate(rows, 1):
        r["rank"] = i
    return [{"rank": r.pop("rank"), **r} for r in rows]


def _nan0(x: float) -> float:
    return 0.0 if math.isnan(x) else x


def _row(e: Entry) -> dict[str, Any]:
    row: dict[str, Any] = {"method": e.method, "version": e.method_version}
    for kind in KINDS:
        row[f"n_{kind[:3]}"] = e.n.get(kind)
        for metric, (v, lo, hi) in sorted(e.metrics.get(kind, {}).items()):
            row[f"{metric}_{kind[:3]}"] = v
            row[f"{metric}_{kind[:3]}_ci"] = [lo, hi]
    row["drop_spearman"] = e.value("natural", "spearman") - e.value("adversarial", "spearman")
    row["drop_fooled"] = e.value("adversarial", "fooled") - e.value("natural", "fooled")
    return row


# --------------------------------------------------------------------------------------------- rendering

# Columns shown in the markdown: (header, row key, with interval). The terminal table shows those marked True
# in COMPACT (the rest are in --format markdown and json), each interval on its own line to stay narrow.
DISPLAY = (
    ("Spearman adv", "spearman_adv", True),
    ("Spearman nat", "spearman_nat", True),
    ("drop", "drop_spearman", False),
    ("Kendall adv", "kendall_adv", True),
    ("top-k recall adv", "topk_recall_adv", True),
    ("fooled adv", "fooled_adv", True),
    ("fooled nat", "fooled_nat", True),
)
COMPACT = {"spearman_adv", "spearman_nat", "drop_spearman", "fooled_adv", "fooled_nat"}


def display_rows(rows: list[dict[str, Any]], *, compact: bool = False) -> list[dict[str, str]]:
    """Rows as strings, ``0.52 [0.41, 0.63]`` (``compact``: fewer columns, the interval on a second line)."""
    present = [(h, k, ci) for h, k, ci in DISPLAY if any(k in r for r in rows) and (not compact or k in COMPACT)]
    out = []
    for r in rows:
        d = {"#": str(r["rank"]), "method": r["method"] if compact else f"{r['method']} v{r['version']}"}
        for header, key, ci in present:
            d[header] = _cell(r.get(key, math.nan), r.get(f"{key}_ci") if ci else None, sep="\n" if compact else " ")
        if not compact:  # the terminal table says it in its title
            d["n adv/nat"] = f"{r.get('n_adv') or '?'}/{r.get('n_nat') or '?'}"
        out.append(d)
    return out


def _cell(v: float, ci: list[float] | None, *, sep: str = " ") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    s = f"{v:+.2f}" if v < 0 else f"{v:.2f}"
    if ci and not any(x is None or math.isnan(x) for x in ci):
        s += f"{sep}[{ci[0]:.2f},{ci[1]:.2f}]" if sep == "\n" else f"{sep}[{ci[0]:.2f}, {ci[1]:.2f}]"
    return s


def render_markdown(board: Board, *, sort: str = "spearman") -> str:
    """The leaderboard as markdown: one ranked table per (suite, version, split), then stale records and problems."""
    lines = [
        "# advdla leaderboard",
        "",
        "Attribution methods scored against causal ground truth (head-input patching over resamples) on advdla "
        "suites. Values are means over examples with bootstrap 95% intervals; *adv* = adversarial examples "
        "(prompts on which DLA overstates the target's effect), *nat* = natural corpus examples. "
        "*drop* = Spearman natural - Spearman adversarial: how much erasure hurts the method. "
        "*fooled* = share of examples where the method puts the target in its top k although its true effect "
        f"is not. Ranked by {sort} on adversarial examples. Rendered by `advdla leaderboard render`.",
        "",
    ]
    for (suite, version, split), entries in groups(board.current).items():
        fp = entries[0].suite_fingerprint
        lines += [f"## {suite} v{version}, {split} split", "", f"Suite fingerprint `{fp[:16]}`.", ""]
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
