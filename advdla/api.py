"""advdla from Python: load a model, score a method on a suite in memory, get a tidy pandas frame, plot it.

Context: researchers work in notebooks with a model already loaded (the TransformerLens habit). This module is the
command line's ``advdla score`` without the command line: the same suites, the same batches, the same metrics and
intervals (:mod:`advdla.scoring`), but a method may be a registered name, an
:class:`~advdla.methods.AttributionMethod` (class or instance) or a plain function ``f(model, batch) -> Tensor``
of shape ``[batch, panel]`` (each panel component's estimated total effect on the logit difference), and nothing
is written to disk::

    import advdla.api as ad

    model = ad.load_model("planted-erasure")
    suite = ad.load_suite("planted-erasure")        # a shipped suite's name, or a folder
    frame = ad.score(["dla", my_function], suite, model=model, split="dev")
    frame.query("metric == 'mcc' and against == 'te'")  # method, split, kind, metric, against, value, lo, hi, n, chance
    ad.plot(frame, metric="mcc")                    # a matplotlib Axes

It sits in the face layer: it imports the layers below it at module top (this module is imported only by whoever
asks for it; ``advdla --help`` never does).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd
import torch

from advdla.commands.names import resolve_suite, shipped_suites
from advdla.errors import AdvdlaError
from advdla.methods import AttributionMethod, ExampleBatch
from advdla.methods.registry import METHODS, get_method, method_spec
from advdla.models import load_model
from advdla.scoring.harness import batches, check_estimates, split_examples, to_batch
from advdla.scoring.metrics import FRAME_COLUMNS, score_estimates
from advdla.suites import Example, Suite, source_files_of, verify_suite
from advdla.suites import load_suite as _load_suite

__all__ = ["load_model", "load_suite", "list_suites", "examples", "estimate", "score", "plot", "ExampleBatch",
           "AttributionMethod"]

Method = str | AttributionMethod | type[AttributionMethod] | Callable[[Any, ExampleBatch], torch.Tensor]


def load_suite(name: str, *, verify: bool = False, model: Any = None) -> Suite:
    """A suite by name (``planted-erasure``: the project's ``suites/``, then ``$ADVDLA_SUITES``) or folder.

    ``verify``: check its files, fingerprint chain and model first (:func:`advdla.suites.verify_suite`; ``model``
    is the loaded model to check, else the suite's own is loaded), as ``advdla score`` does."""
    path = resolve_suite(name, flag="suite")
    if verify:
        verify_suite(path, bridge=model, sample=0)
    return _load_suite(path)


def list_suites() -> pd.DataFrame:
    """The suites :func:`load_suite` finds by name: name, version, model, folder."""
    return pd.DataFrame([{"name": p.name, "version": m.get("version"), "model": m.get("model"), "folder": str(p)}
                         for p, m in shipped_suites()])


def examples(suite: Suite, split: str = "dev", *, limit: int | None = None) -> list[Example]:
    """The typed examples of ``split`` (dev, test or all), the first ``limit`` of them if given."""
    chosen = split_examples(suite, split)
    return chosen[:limit] if limit else chosen


def _as_callable(method: Method, seed: int) -> tuple[str, Callable[[Any, ExampleBatch], torch.Tensor], bool]:
    """(name, f(model, batch), reads the truth) for each kind of method the API takes."""
    if isinstance(method, str):
        spec = method_spec(method)
        instance = get_method(method, seed=seed, **spec.params)
        return method, instance.attribute, instance.uses_truth
    if isinstance(method, type) and issubclass(method, AttributionMethod):
        method = method(seed=seed)
    if isinstance(method, AttributionMethod):
        return method.name or type(method).__name__, method.attribute, method.uses_truth
    if callable(method):
        return getattr(method, "__name__", "function"), method, False
    raise AdvdlaError(f"a method is a registered name, an AttributionMethod or a function f(model, batch), got "
                      f"{type(method).__name__}")


def estimate(method: Method, examples: list[Example], *, model: Any, batch_size: int = 8,
             seed: int = 0) -> dict[str, list[float]]:
    """The method's estimates for each example (by id), in each example's panel order, checked for shape and
    finiteness as the scoring harness checks them."""
    name, fn, with_truth = _as_callable(method, seed)
    out: dict[str, list[float]] = {}
    for chunk in batches(examples, batch_size):
        batch = to_batch(chunk, model.cfg, with_truth=with_truth)
        values = check_estimates(name, fn(model, batch), (len(batch), batch.n_panel))
        out.update({e.example_id: v for e, v in zip(chunk, values.tolist())})
    return out


def score(methods: Method | Sequence[Method], suite: Suite | str, *, model: Any = None, split: str = "dev",
          limit: int | None = None, k: int = 3, seed: int = 0, batch_size: int = 8,
          per_example: bool = False) -> pd.DataFrame:
    """Score each method on ``suite``'s ``split`` against its ground truth: a tidy frame with one row per
    (method, split, kind, metric, against) and the columns ``method, split, kind, metric, against, value, lo, hi, n,
    chance`` (the mean, its 95% interval over source files, and what an uninformed estimator scores), the numbers
    ``advdla score`` prints. A registered method is scored against its own estimand too (``against`` 'de' for a
    direct-effect method); a function or unregistered class as an estimate of the total effect. ``per_example``
    instead returns one row per (method, example, metric, against). ``model``: the loaded model (default: the
    suite's, loaded here)."""
    suite = load_suite(suite) if isinstance(suite, str) else suite
    model = model if model is not None else load_model(suite.manifest["model"])
    chosen = examples(suite, split, limit=limit)
    listed = [methods] if isinstance(methods, str) or not isinstance(methods, Sequence) else list(methods)
    clusters = source_files_of(suite.manifest, chosen)[0]
    frames = []
    for method in listed:
        name = _as_callable(method, seed)[0]
        values = estimate(method, chosen, model=model, batch_size=batch_size, seed=seed)
        estimand = METHODS[name].estimand if isinstance(method, str) and name in METHODS else "total"
        aggregated, rows = score_estimates(name, values, chosen, estimand=estimand, clusters=clusters, k=k, seed=seed)
        frames.append(rows if per_example else aggregated)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=FRAME_COLUMNS)


def plot(frame: pd.DataFrame, *, metric: str = "mcc", kinds: Sequence[str] = ("adversarial", "natural"),
         ax: Any = None) -> Any:
    """Bars of ``metric`` per method and kind with their 95% intervals (from :func:`score`); returns the Axes."""
    import matplotlib.pyplot as plt  # matplotlib only for whoever plots

    rows = frame[(frame["metric"] == metric) & frame["kind"].isin(kinds)]
    if "against" in rows:
        rows = rows[rows["against"] == "te"]  # every method's row against the total effect
    if rows.empty:
        raise AdvdlaError(f"no {metric!r} rows for kinds {', '.join(kinds)} in the frame: metrics there are "
                          f"{', '.join(sorted(frame['metric'].unique()))}")
    ax = ax if ax is not None else plt.subplots(figsize=(max(4.0, 1.2 * rows["method"].nunique() + 2), 3.5))[1]
    names = list(dict.fromkeys(rows["method"]))
    width = 0.8 / len(kinds)
    for i, kind in enumerate(kinds):
        part = rows[rows["kind"] == kind].set_index("method").reindex(names)
        x = [j + (i - (len(kinds) - 1) / 2) * width for j in range(len(names))]
        err = [(part["value"] - part["lo"]).clip(lower=0), (part["hi"] - part["value"]).clip(lower=0)]
        ax.bar(x, part["value"], width=width, yerr=err, capsize=3, label=kind)
    ax.set_xticks(range(len(names)), names)
    ax.set_xlabel("method")
    ax.set_ylabel(f"{metric} (mean, 95% interval)")
    ax.axhline(0, color="grey", lw=0.5)
    ax.legend(fontsize=8)
    return ax
