"""The scoring harness: open a suite, load its model once, run methods over batches, score, make records.

Context: ``advdla score`` and ``advdla run`` ask the same thing: how does each method do on a suite's split?
This module is the one answer. A suite's typed examples (:class:`advdla.suites.Example`) become the
:class:`advdla.methods.ExampleBatch` that methods read (methods never see a row or a file format); a method
that raises, returns the wrong shape or non-finite numbers is named in one line and skipped, the others go on.
Per-method options (IG's steps) come from the method registry's metadata (``MethodSpec.params``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from jaxtyping import Int
from torch import Tensor

from advdla.components import parse_components
from advdla.errors import AdvdlaError
from advdla.methods import ExampleBatch, get_method, method_spec
from advdla.models import load_model
from advdla.progress import Progress, Step, silent
from advdla.scoring.checkpoint import Checkpoint
from advdla.scoring.metrics import FRAME_COLUMNS, score_estimates
from advdla.scoring.records import ResultRecord, make_record
from advdla.suites import Example, Suite, load_suite, source_files_of, verify_suite

__all__ = ["MethodRun", "to_batch", "batches", "check_estimates", "run_method", "run_methods", "open_suite",
           "split_examples", "score_suite"]

SCORE_SPLITS = ("dev", "test", "all")


@dataclass
class MethodRun:
    """One method's pass over a suite: its estimates by example id, or the one-line reason it was skipped."""

    name: str
    version: str
    params: dict[str, Any]
    estimates: dict[str, list[float]] = field(default_factory=dict)
    wall_time_s: float = 0.0
    error: str | None = None
    per_example: pd.DataFrame | None = None  # per (example, metric) values once scored


def to_batch(examples: list[Example], cfg: Any, *, with_truth: bool = False) -> ExampleBatch:
    """The batch a method reads: tokens, the *method* resamples, t1/t2, panels, targets (and ``te_mean`` only
    ``with_truth``, for the reference rows exact-te and exact-de). The truth's own resamples never reach a method.

    Raises AdvdlaError when the examples cannot share a batch (different lengths, resample counts or panel sizes).
    """
    if not examples:
        raise AdvdlaError("an ExampleBatch needs at least one example")
    _check_uniform(examples)
    te = torch.stack([e.truth.te_mean.float() for e in examples]) if with_truth else None
    de = torch.stack([e.truth.de_mean.float() for e in examples]) if with_truth else None
    return ExampleBatch(
        tokens=torch.stack([e.tokens for e in examples]),
        resamples=torch.stack([e.method_resamples for e in examples]),  # never the truth's
        t1=torch.tensor([e.truth.t1 for e in examples]), t2=torch.tensor([e.truth.t2 for e in examples]),
        panels=[parse_components(e.truth.panel, cfg) for e in examples],
        targets=[parse_components([e.target], cfg)[0] for e in examples],
        example_ids=[e.example_id for e in examples], te_mean=te, de_mean=de,
    )


def _shape_key(e: Example) -> tuple[int, int, int]:
    return len(e.tokens), len(e.method_resamples), len(e.truth.panel)


def _check_uniform(examples: list[Example]) -> None:
    for i, what in enumerate(("token count", "resample count", "panel size")):
        sizes = {_shape_key(e)[i] for e in examples}
        if len(sizes) > 1:
            raise AdvdlaError(f"examples in one batch must share their {what}, got {sorted(sizes)}: "
                              f"group them with advdla.scoring.batches")


def batches(examples: list[Example], batch_size: int) -> Iterator[list[Example]]:
    """Examples grouped into batches that can share tensors (same token count, resample count, panel size)."""
    if batch_size < 1:
        raise AdvdlaError(f"--batch-size must be at least 1, got {batch_size}")
    groups: dict[tuple, list[Example]] = {}
    for e in examples:
        groups.setdefault(_shape_key(e), []).append(e)
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


Checkpoints = Callable[[MethodRun], Checkpoint]  # a method's run -> where its partial estimates are kept


def run_method(model: Any, name: str, examples: list[Example], *, batch_size: int = 8, seed: int = 0,
               params: Mapping[str, Any] | None = None, progress: Progress = silent,
               checkpoint: Checkpoints | None = None) -> MethodRun:
    """Run one method over ``examples`` with its registered default options updated by ``params``.

    With ``checkpoint`` the estimates so far are saved after every batch, and examples a matching checkpoint
    already holds are not computed again (:mod:`advdla.scoring.checkpoint`); ``wall_time_s`` then counts the
    earlier runs' time too. Any failure is caught and recorded as a one-line ``error``.
    """
    method = get_method(name, seed=seed, **{**method_spec(name).params, **(params or {})})
    run = MethodRun(name, method.version, method.params())
    saved = checkpoint(run) if checkpoint else None
    known, spent = saved.load() if saved else ({}, 0.0)
    run.estimates.update({e.example_id: known[e.example_id] for e in examples if e.example_id in known})
    todo = [e for e in examples if e.example_id not in run.estimates]
    start, done = time.perf_counter(), len(run.estimates)
    progress(Step(name, done=done, total=len(examples)))  # where a resumed run starts: its rate counts from here
    try:
        for chunk in batches(todo, batch_size):
            batch = to_batch(chunk, model.cfg, with_truth=method.uses_truth)
            values = check_estimates(name, method.attribute(model, batch), (len(batch), batch.n_panel))
            run.estimates.update({e.example_id: v for e, v in zip(chunk, values.tolist())})
            if saved:
                saved.save(run.estimates, spent + time.perf_counter() - start)
            done += len(chunk)
            progress(Step(name, done=done, total=len(examples)))
    except Exception as exc:  # one bad method must not stop the others
        msg = str(exc) if isinstance(exc, AdvdlaError) else f"method {name!r} raised {type(exc).__name__}: {exc}"
        run.error, run.estimates = msg.splitlines()[0] if msg else f"method {name!r} failed", {}
    run.wall_time_s = spent + time.perf_counter() - start
    return run


def run_methods(model: Any, names: list[str], examples: list[Example], *, batch_size: int = 8, seed: int = 0,
                k: int = 3, tau: float = 0.1, params: Mapping[str, Mapping[str, Any]] | None = None,
                clusters: Mapping[str, str] | None = None, warn: Callable[[str], None] = lambda msg: None,
                progress: Progress = silent, checkpoint: Checkpoints | None = None
                ) -> tuple[pd.DataFrame, list[MethodRun]]:
    """Run and score several methods; failed ones are reported through ``warn`` (one line each) and left out.

    ``params`` maps a method name to options that override its registered defaults (e.g. ``{"ig": {"steps": 4}}``).
    Each method is scored against the TE and, for a direct-effect method, against the DE too (its registered
    ``estimand``); ``clusters`` (example id -> source file) is what the intervals resample.
    """
    frames, runs = [], []
    if examples:
        warm_up(model, examples[0].tokens)
    for name in names:
        run = run_method(model, name, examples, batch_size=batch_size, seed=seed, params=(params or {}).get(name),
                         progress=progress, checkpoint=checkpoint)
        runs.append(run)
        if run.error:
            warn(run.error)
            continue
        frame, run.per_example = score_estimates(name, run.estimates, examples, estimand=method_spec(name).estimand,
                                                 clusters=clusters, k=k, tau=tau, seed=seed)
        frames.append(frame)
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=FRAME_COLUMNS)
    return frame, runs


def warm_up(model: Any, tokens: Int[Tensor, " pos"]) -> None:
    """One forward pass before any method is timed: the first pass through a model pays for kernel selection and
    allocator growth, which would otherwise be charged to whichever method runs first."""
    with torch.no_grad():
        model(tokens[None].to(next(model.parameters()).device))


def open_suite(path: str | Path, *, device: str = "cpu", bridge: Any = None,
               verify_sample: int = 3) -> tuple[Suite, Any]:
    """Load the suite at ``path`` and its model (or ``bridge``), then verify the suite on that model.

    ``verify_sample``: examples whose ground truth verification re-derives (:func:`advdla.suites.verify_suite`;
    0 keeps every other check: files, fingerprint chain, model, splits, each example's own consistency).
    Any problem is an AdvdlaError with one line.
    """
    if not Path(path).exists():
        raise AdvdlaError(f"no suite at {path}: give the folder written by `advdla suite build`")
    suite = load_suite(path)
    model = bridge if bridge is not None else load_model(suite.manifest["model"], device=device)
    verify_suite(path, bridge=model, sample=verify_sample)
    return suite, model


def split_examples(suite: Suite, split: str) -> list[Example]:
    """The examples of one split ('dev', 'test', or 'all': both, relabelled 'all' so one record covers them)."""
    if split not in SCORE_SPLITS:
        raise AdvdlaError(f"unknown split {split!r}: use one of {', '.join(SCORE_SPLITS)}")
    chosen = suite.examples() if split == "all" else suite.examples(split=split)
    if not chosen:
        raise AdvdlaError(f"the suite has no {split!r} examples: choose another --split")
    return [e.with_split(split) for e in chosen]


def score_suite(model: Any, manifest: Mapping[str, Any], examples: list[Example], names: list[str], *, split: str,
                batch_size: int = 8, k: int = 3, seed: int = 0, device: str = "cpu",
                params: Mapping[str, Mapping[str, Any]] | None = None, warn: Callable[[str], None] = lambda msg: None,
                progress: Progress = silent, checkpoint: Checkpoints | None = None) -> list[ResultRecord]:
    """Run and score ``names`` on ``examples``: one ResultRecord per method that succeeded (failures go to ``warn``).

    Intervals resample the examples' source files (:func:`advdla.suites.source_files_of`); where the suite's corpus
    is not the one loaded here they resample documents, ``warn`` says why and the records say so (``clusters``).
    """
    clusters, why = source_files_of(manifest, examples)
    if why:
        warn(why)
    tau = float(manifest.get("tau", 0.1))
    frame, runs = run_methods(model, names, examples, batch_size=batch_size, seed=seed, k=k, tau=tau, params=params,
                              clusters=clusters, warn=warn, progress=progress, checkpoint=checkpoint)
    unit = "document" if why else "source file"
    return [make_record(run, frame, manifest, split=split, k=k, n_examples=len(examples), device=device,
                        estimand=method_spec(run.name).estimand, role=method_spec(run.name).role, tau=tau,
                        clusters=unit) for run in runs if not run.error]
