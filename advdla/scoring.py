"""Scoring attribution methods against a suite's causal ground truth: metrics, intervals, records.

Context: for every suite example a method returns one estimate per panel component (:mod:`advdla.methods`);
the suite holds the truth ``te_mean`` (the total effect, averaged over resamples). Scoring compares the two
per example, then averages per split and per kind (adversarial vs natural), with a seeded percentile
bootstrap over examples for 95% intervals. The result is a tidy pandas frame with the columns
``method, split, kind, metric, value, lo, hi, n``.

Metrics (per example, over its panel; registered with ``higher_is_better`` like lm-eval's metrics):

- ``spearman``, ``kendall``: rank correlation of estimate and truth (NaN when either is constant);
- ``topk_recall``: share of the true top k (below) that are among the k largest |estimate|;
- ``sign_agreement``: share of |truth| carried by components whose estimate has the truth's sign;
- ``mae_norm``: mean |estimate - truth| over the panel, divided by |LD| (lower is better);
- ``fooled``: 1 when the method puts the example's target in its top k by |estimate| (with |estimate| >=
  floor * |LD|) while the target is not in the true top k, else 0. Averaged, it is the fooled rate (lower is better).

The true top k: the k components with the largest |truth| *among those with |truth| >= floor * |LD|*
(``floor`` = 0.05 by default). Without the floor, an example where only two components matter would count
an erased writer with 1% of LD as "in the true top 3" just because everything else is smaller still.

Intuition: an adversarial example is built so that DLA puts an erased writer on top; ``fooled`` on the
adversarial kind is the number the benchmark exists for.

The harness (:func:`run_methods`) runs several methods over a suite; a method that raises, returns the wrong
shape or non-finite numbers is named in one line and skipped, the others go on. :class:`ResultRecord` is the
self-describing record of one method's scores that ``advdla score`` writes and the leaderboard reads.
"""

from __future__ import annotations

import json
import math
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

import numpy as np
import pandas as pd
import torch
from scipy import stats

from advdla.atomic import write_json_atomic
from advdla.errors import AdvdlaError

SCHEMA_VERSION = 1
FRAME_COLUMNS = ["method", "split", "kind", "metric", "value", "lo", "hi", "n"]


# ------------------------------------------------------------------------------------------------ metrics


@dataclass(frozen=True)
class MetricSpec:
    name: str
    fn: Callable[..., float]
    higher_is_better: bool
    description: str


METRICS: dict[str, MetricSpec] = {}


def register_metric(name: str, *, higher_is_better: bool, description: str) -> Callable:
    """Decorator: register ``fn(est, truth, *, target, ld, k, floor) -> float`` (est and truth: 1-d numpy arrays)."""

    def wrap(fn: Callable) -> Callable:
        METRICS[name] = MetricSpec(name, fn, higher_is_better, description)
        return fn

    return wrap


def _topk(x: np.ndarray, k: int) -> set[int]:
    """Indices of the k largest |x|; ties broken by panel order (stable), so results are deterministic."""
    return set(np.argsort(-np.abs(x), kind="stable")[:k].tolist())


def _true_topk(truth: np.ndarray, k: int, ld: float, floor: float) -> set[int]:
    """The k largest |truth| among components whose |truth| is at least ``floor * |LD|``."""
    return {i for i in _topk(truth, k) if abs(truth[i]) >= floor * abs(ld)}


def _correlation(fn: Callable, est: np.ndarray, truth: np.ndarray) -> float:
    if np.ptp(est) == 0 or np.ptp(truth) == 0:
        return float("nan")
    return float(fn(est, truth).statistic)


@register_metric("spearman", higher_is_better=True, description="Spearman rank correlation with the total effect")
def spearman(est: np.ndarray, truth: np.ndarray, **_: Any) -> float:
    return _correlation(stats.spearmanr, est, truth)


@register_metric("kendall", higher_is_better=True, description="Kendall tau-b with the total effect")
def kendall(est: np.ndarray, truth: np.ndarray, **_: Any) -> float:
    return _correlation(stats.kendalltau, est, truth)


@register_metric("topk_recall", higher_is_better=True, description="share of the true top-k (by |TE|) in the method's top-k")
def topk_recall(est: np.ndarray, truth: np.ndarray, *, k: int, ld: float, floor: float, **_: Any) -> float:
    true = _true_topk(truth, k, ld, floor)
    return len(_topk(est, k) & true) / len(true) if true else float("nan")


@register_metric("sign_agreement", higher_is_better=True, description="share of sum |TE| on components whose sign the method gets right")
def sign_agreement(est: np.ndarray, truth: np.ndarray, **_: Any) -> float:
    weight = np.abs(truth)
    return float((weight * (np.sign(est) == np.sign(truth))).sum() / weight.sum()) if weight.sum() > 0 else float("nan")


@register_metric("mae_norm", higher_is_better=False, description="mean |estimate - TE| over the panel, over |LD|")
def mae_norm(est: np.ndarray, truth: np.ndarray, *, ld: float, **_: Any) -> float:
    return float(np.abs(est - truth).mean() / max(abs(ld), 1e-6))


@register_metric("fooled", higher_is_better=False, description="target in the method's top-k by |estimate| but not in the true top-k")
def fooled(est: np.ndarray, truth: np.ndarray, *, target: int, k: int, ld: float, floor: float, **_: Any) -> float:
    claimed = _true_topk(est, k, ld, floor)  # the same floor: a method that gives the target ~0 claims nothing
    return float(target in claimed and target not in _true_topk(truth, k, ld, floor))


def example_metrics(est: Iterable[float], row: Mapping[str, Any], *, k: int = 3, floor: float = 0.05) -> dict[str, float]:
    """Every registered metric for one example: ``est`` in panel order against the row's ``te_mean``."""
    e, t = np.asarray(list(est), dtype=float), np.asarray(list(row["te_mean"]), dtype=float)
    target = list(row["panel"]).index(row["target"])
    return {m.name: m.fn(e, t, target=target, ld=float(row["ld"]), k=k, floor=floor) for m in METRICS.values()}


# ------------------------------------------------------------------------------------------- aggregation


def bootstrap_ci(values: np.ndarray, *, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Seeded percentile bootstrap interval of the mean over examples (NaNs dropped; a single value: (v, v))."""
    v = values[~np.isnan(values)]
    if len(v) == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), size=(n_boot, len(v)))].mean(1)
    alpha = (1 - level) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def per_example_frame(method: str, estimates: Mapping[str, Iterable[float]], rows: list[Mapping[str, Any]], *, k: int = 3) -> pd.DataFrame:
    """One row per (example, metric): columns method, example_id, split, kind, metric, value."""
    out = []
    for row in rows:
        for metric, value in example_metrics(estimates[row["example_id"]], row, k=k).items():
            out.append({"method": method, "example_id": row["example_id"], "split": row.get("split", "all"),
                        "kind": row.get("kind", "all"), "metric": metric, "value": value})
    return pd.DataFrame(out)


def aggregate(per_example: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Mean per (method, split, kind, metric) with bootstrap 95% intervals; kind 'all' pools both kinds.

    ``n`` counts the examples whose metric is defined (not NaN).
    """
    pooled = pd.concat([per_example, per_example.assign(kind="all")]) if per_example["kind"].nunique() > 1 else per_example
    out = []
    for (method, split, kind, metric), g in pooled.groupby(["method", "split", "kind", "metric"], sort=False):
        vals = g["value"].to_numpy(dtype=float)
        lo, hi = bootstrap_ci(vals, n_boot=n_boot, seed=seed)
        n = int((~np.isnan(vals)).sum())
        out.append({"method": method, "split": split, "kind": kind, "metric": metric,
                    "value": float(np.nanmean(vals)) if n else float("nan"), "lo": lo, "hi": hi, "n": n})
    return pd.DataFrame(out, columns=FRAME_COLUMNS)


def score_estimates(method: str, estimates: Mapping[str, Iterable[float]], rows: list[Mapping[str, Any]], *, k: int = 3,
                    n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """The tidy frame (``FRAME_COLUMNS``) for one method's estimates keyed by example_id."""
    return aggregate(per_example_frame(method, estimates, rows, k=k), n_boot=n_boot, seed=seed)


# ------------------------------------------------------------------------------------------------ harness


@dataclass
class MethodRun:
    """One method's pass over a suite: its estimates by example id, or the one-line reason it was skipped."""

    name: str
    version: str
    params: dict[str, Any]
    estimates: dict[str, list[float]] = field(default_factory=dict)
    wall_time_s: float = 0.0
    error: str | None = None


def batches(rows: list[Mapping[str, Any]], batch_size: int) -> Iterator[list[Mapping[str, Any]]]:
    """Rows grouped into batches that can share tensors (same token count, resample count, panel size)."""
    if batch_size < 1:
        raise AdvdlaError(f"--batch-size must be at least 1, got {batch_size}")
    groups: dict[tuple, list] = {}
    for r in rows:
        groups.setdefault((len(r["tokens"]), len(r["resamples"]), len(r["panel"])), []).append(r)
    for group in groups.values():
        for i in range(0, len(group), batch_size):
            yield group[i:i + batch_size]


def check_estimates(name: str, values: Any, shape: tuple[int, int]) -> torch.Tensor:
    """The method's output as a float tensor, or AdvdlaError naming the method and what is wrong."""
    if not isinstance(values, torch.Tensor):
        raise AdvdlaError(f"method {name!r} returned {type(values).__name__}, not a tensor")
    if tuple(values.shape) != shape:
        raise AdvdlaError(f"method {name!r} returned shape {tuple(values.shape)}, expected (batch, panel) = {shape}")
    if not torch.isfinite(values).all():
        raise AdvdlaError(f"method {name!r} returned NaN or infinite values")
    return values.detach().float().cpu()


def run_method(model: Any, name: str, rows: list[Mapping[str, Any]], *, batch_size: int = 8, seed: int = 0,
               params: Mapping[str, Any] | None = None, on_batch: Callable[[int], None] | None = None) -> MethodRun:
    """Run one method over ``rows``; any failure is caught and recorded as a one-line ``error``."""
    from advdla.methods import ExampleBatch, get_method

    method = get_method(name, seed=seed, **(params or {}))
    run = MethodRun(name, method.version, method.params())
    start = time.perf_counter()
    try:
        for chunk in batches(rows, batch_size):
            batch = ExampleBatch.from_rows(chunk, model.cfg, with_truth=method.uses_truth)
            values = check_estimates(name, method.attribute(model, batch), (len(batch), batch.n_panel))
            run.estimates.update({r["example_id"]: v for r, v in zip(chunk, values.tolist())})
            if on_batch:
                on_batch(len(chunk))
    except Exception as exc:  # one bad method must not stop the others
        msg = str(exc) if isinstance(exc, AdvdlaError) else f"method {name!r} raised {type(exc).__name__}: {exc}"
        run.error, run.estimates = msg.splitlines()[0] if msg else f"method {name!r} failed", {}
    run.wall_time_s = time.perf_counter() - start
    return run


def run_methods(model: Any, names: list[str], rows: list[Mapping[str, Any]], *, batch_size: int = 8, seed: int = 0,
                k: int = 3, warn: Callable[[str], None] | None = None) -> tuple[pd.DataFrame, list[MethodRun]]:
    """Run and score several methods; failed ones are reported through ``warn`` (one line each) and left out."""
    frames, runs = [], []
    for name in names:
        run = run_method(model, name, rows, batch_size=batch_size, seed=seed)
        runs.append(run)
        if run.error:
            (warn or (lambda m: print(f"advdla: skipped: {m}", file=sys.stderr)))(run.error)
            continue
        frames.append(score_estimates(name, run.estimates, rows, k=k, seed=seed))
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=FRAME_COLUMNS)
    return frame, runs


# ------------------------------------------------------------------------------------------ result records


@dataclass
class ResultRecord:
    """One method's scores on one suite split, self-describing. JSON schema (``to_dict``), version 1:

    - ``schema_version`` (int, 1); ``created`` (ISO 8601 UTC time the record was made)
    - ``method``: {``name``, ``version``, ``params`` (dict: seed, steps ...)}
    - ``suite``: {``name``, ``version``, ``fingerprint``, ``model``} from the suite manifest
    - ``split`` ('dev' | 'test' | 'all'); ``k`` (top-k used by topk_recall and fooled); ``floor`` (the true top k
      only holds components with |TE| >= floor * |LD|); ``n_examples``
    - ``metrics``: list of {``kind`` ('adversarial' | 'natural' | 'all'), ``metric``, ``value``, ``lo``, ``hi``
      (bootstrap 95% interval of the mean over examples), ``n`` (examples where the metric is defined),
      ``higher_is_better``}
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
    created: str = ""
    floor: float = 0.05
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["metrics"] = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in m.items()} for m in self.metrics]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ResultRecord":
        if d.get("schema_version") != SCHEMA_VERSION:
            raise AdvdlaError(f"result record schema version {d.get('schema_version')!r} is not {SCHEMA_VERSION}: rescore with this advdla")
        metrics = [{k: (float("nan") if v is None and k in ("value", "lo", "hi") else v) for k, v in m.items()} for m in d["metrics"]]
        fields = {k: d[k] for k in ("method", "suite", "split", "k", "n_examples", "environment", "wall_time_s", "created", "floor")}
        return cls(metrics=metrics, schema_version=d["schema_version"], **fields)

    def frame(self) -> pd.DataFrame:
        """The record's metrics as the tidy frame (``FRAME_COLUMNS``)."""
        rows = [{"method": self.method["name"], "split": self.split, **{k: m[k] for k in ("kind", "metric", "value", "lo", "hi", "n")}}
                for m in self.metrics]
        return pd.DataFrame(rows, columns=FRAME_COLUMNS)


def make_record(run: MethodRun, frame: pd.DataFrame, manifest: Mapping[str, Any], *, split: str, k: int, n_examples: int,
                device: str) -> ResultRecord:
    """The record of one successful :class:`MethodRun` and its rows of the scored frame."""
    mine = frame[frame["method"] == run.name]
    metrics = [{"kind": r.kind, "metric": r.metric, "value": float(r.value), "lo": float(r.lo), "hi": float(r.hi), "n": int(r.n),
                "higher_is_better": METRICS[r.metric].higher_is_better} for r in mine.itertuples()]
    suite = {key: manifest.get(key) for key in ("name", "version", "fingerprint", "model")}
    return ResultRecord(method={"name": run.name, "version": run.version, "params": run.params}, suite=suite, split=split, k=k,
                        n_examples=n_examples, metrics=metrics, environment=environment(device), wall_time_s=round(run.wall_time_s, 4),
                        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))


def environment(device: str) -> dict[str, Any]:
    """Git commit, library versions, device: what a result depends on besides the suite and the method."""
    import importlib.metadata as md

    def version(pkg: str) -> str | None:
        try:
            return md.version(pkg)
        except md.PackageNotFoundError:
            return None

    versions = {"python": platform.python_version(), "torch": torch.__version__, "transformer_lens": version("transformer-lens"),
                "advdla": version("advdla")}
    return {"git_commit": git_commit(), "versions": versions, "device": device, "platform": platform.platform()}


def git_commit() -> str | None:
    """HEAD of the git checkout advdla runs from, or None outside one."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def write_records(path: str | Path, records: list[ResultRecord]) -> None:
    """Write records as a JSON list, atomically (see :mod:`advdla.atomic`); NaN is refused (records write it as null)."""
    write_json_atomic(path, [r.to_dict() for r in records], allow_nan=False)


def read_records(path: str | Path) -> list[ResultRecord]:
    """Records written by :func:`write_records` (a JSON list, or one record object)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise AdvdlaError(f"cannot read result records from {path}: {exc}") from None
    return [ResultRecord.from_dict(d) for d in (data if isinstance(data, list) else [data])]
