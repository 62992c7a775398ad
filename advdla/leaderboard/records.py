"""The record folder: result records read, validated and written, and sorted into current and stale ones.

Context: ``advdla score`` writes one self-describing result record per attribution method (see
:mod:`advdla.scoring.records`): which method and version with which parameters, which suite (name, version,
fingerprint) and split, its metrics with cluster-bootstrap intervals per group of examples (:data:`GROUPS`) and its
per-example values. The leaderboard is nothing but those records, one JSON file per (suite, suite version, split,
method, method version) in a folder (``leaderboard/`` in the repository).

Intuition: a score means something only for the exact suite it was computed on. Every record carries that suite's
fingerprint; when the suite on disk (``suites/<name>/manifest.json``, read by :func:`advdla.suites.read_manifest`)
is rebuilt, its fingerprint moves and the old records become *stale*: :func:`load_board` lists them apart, so they
are never ranked next to current ones.

Adding a record (:func:`add_record`) validates it (schema, known suite, matching fingerprint) and writes it
atomically (temporary file + ``os.replace``) under the folder's file lock, so concurrent ``advdla score`` runs lose
nothing. Reading never stops at a bad file: each one becomes one line in :attr:`Board.problems` and the rest still
render.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock

from advdla.atomic import jsonable, write_json_atomic
from advdla.errors import AdvdlaError, did_you_mean
from advdla.scoring import METRICS, ResultRecord
from advdla.suites import read_manifest

__all__ = ["Entry", "Board", "GROUPS", "parse_record", "record_filename", "suite_fingerprint", "check_current",
           "add_record", "load_board", "default_suites_dir", "folder_lock", "higher_is_better", "as_float"]

LOCK_NAME = ".leaderboard.lock"
LOCK_TIMEOUT_S = 60  # a render or an add holds the lock for well under a second; a minute means a stuck process
# The groups of examples a record scores, with the abbreviation their columns carry (``spearman_comp`` ...):
# adversarial examples split by mechanism (advdla.criteria.MECHANISMS), natural ones, and all of them.
GROUPS = {"adversarial": "adv", "compensation": "comp", "baseline": "base", "mixed": "mixed", "natural": "nat",
          "all": "all"}
_SPLITS = ("dev", "test", "all")  # a record scores one suite split, or both together


@dataclass
class Entry:
    """One result record, reduced to what the leaderboard ranks. ``metrics[kind][metric@against] = (value, low,
    high)``, e.g. ``metrics["adversarial"]["mcc@te"]``."""

    method: str
    method_version: str
    suite: str
    suite_version: int
    suite_fingerprint: str
    split: str
    metrics: dict[str, dict[str, tuple[float, float, float]]]
    n: dict[str, int] = field(default_factory=dict)
    higher_is_better: dict[str, bool] = field(default_factory=dict)
    chance: dict[str, dict[str, float]] = field(default_factory=dict)  # chance[kind][metric@against]
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


# ----------------------------------------------------------------------------------------------- parsing


def parse_record(record: Any) -> Entry:
    """The :class:`Entry` of a result record dict (:class:`advdla.scoring.ResultRecord` schema, read through its
    ``from_dict``); :class:`AdvdlaError` (one line) when a field is missing or has the wrong type."""
    if not isinstance(record, dict):
        raise AdvdlaError(f"a result record must be a JSON object, got {type(record).__name__}")
    try:
        entry = _entry(ResultRecord.from_dict(record))
    except KeyError as exc:
        raise AdvdlaError(
            f"result record lacks the field {exc.args[0]!r} (schema: advdla.scoring.ResultRecord)"
        ) from None
    except (TypeError, ValueError, AttributeError) as exc:
        raise AdvdlaError(
            f"result record has a field of the wrong type ({exc}); schema: advdla.scoring.ResultRecord"
        ) from None
    if entry.split not in _SPLITS:
        raise AdvdlaError(f"result record's split {entry.split!r} is not dev, test or all")
    return entry


def _entry(rec: ResultRecord) -> Entry:
    """The entry of a schema-checked record; KeyError / TypeError / ValueError where a field is wrong."""
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
        key = f"{m['metric']}@{m.get('against', 'te')}"
        entry.metrics.setdefault(m["kind"], {})[key] = (as_float(m["value"]), as_float(m["lo"]), as_float(m["hi"]))
        entry.chance.setdefault(m["kind"], {})[key] = as_float(m.get("chance"))
        entry.n[m["kind"]] = max(entry.n.get(m["kind"], 0), int(m.get("n") or 0))
        entry.higher_is_better[key] = bool(m.get("higher_is_better", higher_is_better(m["metric"])))
    return entry


def _text(x: Any) -> str:
    if not isinstance(x, (str, int)) or isinstance(x, bool) or x == "":
        raise TypeError(f"expected a non-empty string, got {x!r}")
    return str(x)


def as_float(x: Any) -> float:
    """A record's number as a float; JSON null (an undefined metric) is NaN."""
    return math.nan if x is None else float(x)


def higher_is_better(metric: str) -> bool:
    """The scoring registry's direction for ``metric`` (``name`` or ``name@against``; records carry it too)."""
    metric = metric.partition("@")[0]
    spec = METRICS[metric] if metric in METRICS else None
    return True if spec is None else bool(spec.higher_is_better)


def record_filename(entry: Entry) -> str:
    """``<suite>-v<version>-<split>-<method>-v<method version>.json``, with unsafe characters replaced."""
    parts = [entry.suite, f"v{entry.suite_version}", entry.split, entry.method, f"v{entry.method_version}"]
    return "-".join(re.sub(r"[^A-Za-z0-9_.]+", "_", p) for p in parts) + ".json"


# ------------------------------------------------------------------------------------------------ suites


def suite_fingerprint(name: str, suites_dir: Path) -> tuple[int, str]:
    """(version, fingerprint) of the suite ``suites_dir/<name>`` (its manifest checked by
    :func:`advdla.suites.read_manifest`); AdvdlaError if there is no such suite."""
    manifest_path = Path(suites_dir) / name / "manifest.json"
    if not manifest_path.is_file():
        known = sorted(p.parent.name for p in Path(suites_dir).glob("*/manifest.json"))
        hint = f" Known suites: {', '.join(known)}.{did_you_mean(name, known)}" if known else ""
        raise AdvdlaError(f"unknown suite {name!r}: no {manifest_path}.{hint}")
    manifest = read_manifest(manifest_path.parent)
    try:
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


def default_suites_dir(leaderboard_dir: Path) -> Path:
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


def folder_lock(directory: str | os.PathLike) -> FileLock:
    """The leaderboard folder's lock: every write into the folder (a record, LEADERBOARD.md) holds it."""
    return FileLock(str(Path(directory) / LOCK_NAME), timeout=LOCK_TIMEOUT_S)


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
    entry = parse_record(json.loads(json.dumps(record, default=jsonable)))  # what will be read back
    directory = Path(directory)
    reason = check_current(entry, Path(suites_dir) if suites_dir else default_suites_dir(directory))
    if reason and not allow_stale:
        raise AdvdlaError(f"record for {entry.method} not added: {reason}")
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / record_filename(entry)
    with folder_lock(directory):
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
    sdir = Path(suites_dir) if suites_dir else default_suites_dir(directory)
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
