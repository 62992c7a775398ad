"""Result records: one method's scores on one suite split, self-describing, written and read as JSON.

Context (lm-evaluation-harness style): a number on a leaderboard must say where it came from: which method
and version with which parameters, which suite (name, version, fingerprint) and split, which code (git
commit, library versions) on which device. :class:`ResultRecord` carries all of it; ``advdla score --out``
writes records and ``advdla leaderboard add`` reads them.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import platform
import subprocess
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from advdla.atomic import nan_to_none, write_json_atomic
from advdla.errors import AdvdlaError
from advdla.scoring.metrics import FRAME_COLUMNS, METRICS

__all__ = [
    "ResultRecord",
    "SCHEMA_VERSION",
    "make_record",
    "environment",
    "git_commit",
    "write_records",
    "read_records",
]

SCHEMA_VERSION = 3  # 3: estimands, metrics against TE and DE, chance levels, source-file clusters


@dataclass
class ResultRecord:
    """One method's scores on one suite split, self-describing. JSON schema (``to_dict``), version 3:

    - ``schema_version`` (int, 3); ``created`` (ISO 8601 UTC time the record was made)
    - ``method``: {``name``, ``version``, ``params`` (dict: seed, steps ...), ``estimand`` ('direct' | 'total'),
      ``role`` ('method' | 'reference' | 'ceiling')}
    - ``suite``: {``name``, ``version``, ``fingerprint``, ``model``} from the suite manifest
    - ``split`` ('dev' | 'test' | 'all'); ``k`` (top-k of topk_recall); ``floor`` (the true top k only holds
      components with |TE| >= floor * |LD|); ``tau`` (a component *matters* when |TE| >= tau * |LD|);
      ``clusters`` ('source file' or 'document': what the intervals resample); ``n_examples``
    - ``metrics``: list of {``kind`` (a group: 'adversarial' | 'natural' | 'all' | 'compensation' | 'baseline' |
      'mixed'), ``metric``, ``against`` ('te' | 'de': the truth it is scored against), ``value``, ``lo``, ``hi``
      (cluster-bootstrap 95% interval of the mean over examples), ``n`` (examples where the metric is defined),
      ``higher_is_better``, ``chance`` (what an uninformed estimator scores on these examples, or null)}
    - ``per_example``: list of {``example_id``, ``kind``, ``mechanism``, ``cluster`` (the example's source file),
      and every ``metric@against`` value (``mcc@te`` ...)}: what paired comparisons between methods are computed from
    - ``environment``: {``git_commit`` (or null), ``versions`` {python, torch, transformer_lens, advdla},
      ``device``, ``platform``}
    - ``wall_time_s``: seconds the method took on the split (attribution only, not scoring)

    NaN values are written as JSON null.
    """

    method: dict[str, Any]
    suite: dict[str, Any]
    split: str
    k: int
    n_examples: int
    metrics: list[dict[str, Any]]
    environment: dict[str, Any]
    wall_time_s: float
    per_example: list[dict[str, Any]] = field(default_factory=list)
    created: str = ""
    floor: float = 0.05
    tau: float = 0.1
    clusters: str = "source file"
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return nan_to_none(asdict(self))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ResultRecord:
        if d.get("schema_version") != SCHEMA_VERSION:
            raise AdvdlaError(f"result record schema version {d.get('schema_version')!r} is not {SCHEMA_VERSION}: "
                              f"rescore with this advdla (`advdla score --suite PATH --out FILE`)")
        metrics = [{k: _nan(v) if k in ("value", "lo", "hi") else v for k, v in m.items()} for m in d["metrics"]]
        per = [{k: _nan(v) if "@" in k else v for k, v in row.items()} for row in d.get("per_example", [])]
        keys = ("method", "suite", "split", "k", "n_examples", "environment", "wall_time_s", "created", "floor",
                "tau", "clusters")
        return cls(metrics=metrics, per_example=per, schema_version=d["schema_version"], **{k: d[k] for k in keys})

    def frame(self) -> pd.DataFrame:
        """The record's metrics as the tidy frame (``FRAME_COLUMNS``)."""
        rows = [{"method": self.method["name"], "split": self.split,
                 **{k: _nan(m.get(k)) for k in ("kind", "metric", "against", "value", "lo", "hi", "n", "chance")}}
                for m in self.metrics]
        return pd.DataFrame(rows, columns=FRAME_COLUMNS)


def _nan(v: Any) -> Any:
    return float("nan") if v is None else v


def make_record(run: Any, frame: pd.DataFrame, manifest: Mapping[str, Any], *, split: str, k: int, n_examples: int,
                device: str, estimand: str = "total", role: str = "method", tau: float = 0.1,
                clusters: str = "source file") -> ResultRecord:
    """The record of one successful :class:`advdla.scoring.harness.MethodRun` (or of the ceiling, which has the same
    fields): its rows of the scored frame and its per-example values (``run.per_example``, the frame
    :func:`advdla.scoring.per_example_frame` made)."""
    mine = frame[frame["method"] == run.name]
    metrics = [{"kind": r.kind, "metric": r.metric, "against": r.against, "value": float(r.value),
                "lo": float(r.lo), "hi": float(r.hi), "n": int(r.n),
                "higher_is_better": METRICS[r.metric].higher_is_better, "chance": float(r.chance)}
               for r in mine.itertuples()]
    suite = {key: manifest.get(key) for key in ("name", "version", "fingerprint", "model")}
    method = {"name": run.name, "version": run.version, "params": run.params, "estimand": estimand, "role": role}
    return ResultRecord(method=method, suite=suite, split=split, k=k, n_examples=n_examples, metrics=metrics,
                        per_example=_per_example(run), environment=environment(device),
                        wall_time_s=round(run.wall_time_s, 4), tau=tau, clusters=clusters,
                        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))


def _per_example(run: Any) -> list[dict[str, Any]]:
    """One dict per example (identity, then each ``metric@against`` value), from the long per-example frame."""
    per = getattr(run, "per_example", None)
    rows: dict[str, dict[str, Any]] = {}
    for r in ([] if per is None else per.to_dict("records")):
        row = rows.setdefault(r["example_id"], {k: r[k] for k in ("example_id", "kind", "mechanism", "cluster")})
        row[f"{r['metric']}@{r['against']}"] = float(r["value"])
    return list(rows.values())


def environment(device: str) -> dict[str, Any]:
    """Git commit, library versions, device: what a result depends on besides the suite and the method."""

    def version(pkg: str) -> str | None:
        try:
            return md.version(pkg)
        except md.PackageNotFoundError:
            return None

    versions = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformer_lens": version("transformer-lens"),
        "advdla": version("advdla"),
    }
    return {"git_commit": git_commit(), "versions": versions, "device": device, "platform": platform.platform()}


def git_commit() -> str | None:
    """HEAD of the git checkout advdla runs from, or None outside one."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def write_records(path: str | Path, records: list[ResultRecord]) -> None:
    """Write records as a JSON list, atomically (:mod:`advdla.atomic`); NaN is refused (records write it as null)."""
    write_json_atomic(path, [r.to_dict() for r in records], allow_nan=False)


def read_records(path: str | Path) -> list[ResultRecord]:
    """Records written by :func:`write_records` (a JSON list, or one record object)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise AdvdlaError(f"cannot read result records from {path}: {exc}") from None
    return [ResultRecord.from_dict(d) for d in (data if isinstance(data, list) else [data])]
