"""Examples taken over from a built suite, their panels cut to a panel policy's components.

Context: ``advdla run`` on a model that has a shipped suite scores that suite's dev examples beside the ones its
own search finds: their truth (R_truth resamples of every component) took hours to compute, and a verdict needs
more examples than a few minutes of search can find. The run's panel is late (:class:`PanelPolicy` with
``min_layer``): every head and MLP from a few layers before the targets on, where compensation happens; the
shipped rows are cut to the same components so that every row of the run's suite answers the same question.

Cutting is exact: a component's DLA, TE, DE, IE and zero-ablation TE do not depend on which other components
are in the panel, so the kept columns are the shipped truth unchanged. Only ranks within the panel change: the
mechanism label is re-derived on the cut panel with the shipped suite's thresholds (the target's |DLA| rank
among fewer components can only improve, so an adversarial row stays adversarial; a label that would change
is an error, never a silent relabel).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from advdla.criteria import Thresholds
from advdla.errors import AdvdlaError
from advdla.suites.config import PanelPolicy
from advdla.suites.store import Example, load_suite, read_manifest
from advdla.suites.truth import VALUE_COLUMNS, panel_candidates, target_mechanism

__all__ = ["cut_panel", "import_examples", "shipped_suite", "choose_shipped", "suite_fit"]


def cut_panel(example: Example, keep: set[str], thresholds: Thresholds) -> Example:
    """``example`` with only the panel components named in ``keep`` and its target, in panel order."""
    t = example.truth
    idx = [i for i, name in enumerate(t.panel) if name in keep or name == example.target]
    cols = {c: getattr(t, c)[idx] for c in VALUE_COLUMNS}
    truth = dataclasses.replace(t, panel=[t.panel[i] for i in idx], **cols)
    label = "none" if example.kind == "natural" else target_mechanism(truth, example.target, thresholds)
    if label != example.mechanism:
        raise AdvdlaError(f"example {example.example_id}: cutting its panel changed its mechanism from "
                          f"{example.mechanism} to {label}")
    return dataclasses.replace(example, truth=truth, mechanism=label)


def import_examples(path: str | Path, bridge: Any, *, split: str, policy: PanelPolicy, seq_len: int,
                    max_per_kind: int | None = None) -> tuple[list[Example], dict[str, Any]]:
    """The ``split`` examples of the suite at ``path`` (at most ``max_per_kind`` of each kind, in stored order),
    cut to the components of ``policy`` (its ``min_layer`` and later; the example's target always stays).

    Refuses a suite built on other weights or another prompt length than the run's. Returns the examples and
    what the run's manifest records about where they came from.
    """
    suite = load_suite(path)
    m = suite.manifest
    problem = suite_fit(m, m["model"], seq_len=seq_len, weights=bridge.advdla_card.weights_fingerprint)
    if problem:
        raise AdvdlaError(f"{path} {problem}: rebuild it with `advdla suite build`, or run without it (--shipped none)")
    thresholds = Thresholds(**m["thresholds"])
    taken = []
    for kind in ("adversarial", "natural"):
        rows = suite.examples(split=split, kind=kind)
        taken += rows[:max_per_kind] if max_per_kind is not None else rows
    late = {c.name for c in panel_candidates(bridge.cfg) if c.layer >= policy.min_layer}
    examples = [cut_panel(e, late, thresholds) for e in taken]
    info = {"suite": m["name"], "version": m["version"], "fingerprint": m["fingerprint"], "split": split,
            "adversarial": sum(e.kind == "adversarial" for e in examples),
            "natural": sum(e.kind == "natural" for e in examples), "min_layer": policy.min_layer}
    return examples, info


def suite_fit(manifest: dict[str, Any], model: str, *, seq_len: int | None = None,
              weights: str | None = None) -> str | None:
    """Why a suite does not fit a run of ``model`` with ``seq_len``-token prompts on weights ``weights`` (a
    fingerprint; None for either: not checked), as the end of a sentence that starts with the suite; None if it
    fits."""
    if manifest["model"] != model:
        return f"is a suite of {manifest['model']}, not of {model}"
    if seq_len is not None and manifest["config"]["seq_len"] != seq_len:
        return f"has {manifest['config']['seq_len']}-token prompts, the run {seq_len}"
    built = str(manifest.get("model_card", {}).get("weights_fingerprint"))
    if weights is not None and built != weights:
        return f"was built on weights {built[:12]}, and {model} has weights {weights[:12]}"
    return None


def choose_shipped(model: str, root: str | Path, *, seq_len: int | None = None,
                   weights: str | None = None) -> tuple[Path | None, list[str]]:
    """The suite under ``root`` that fits a run of ``model`` (:func:`suite_fit`) and holds the most dev adversarial
    examples (then the highest version, then the name), or None; and a line for each suite of ``model`` skipped
    because it does not fit.

    A model may ship several suites (smollm2-135m: ``smollm2-135m-erasure``, 40 dev adversarial examples, and the
    small ``smollm2-135m-baseline``, 6): the run takes the one that gives its verdict the most evidence.
    """
    found, skipped = [], []
    for file in sorted(Path(root).glob("*/manifest.json")):
        try:
            m = read_manifest(file.parent)
            problem = suite_fit(m, model, seq_len=seq_len, weights=weights) if m["model"] == model else "other"
            key = (m["splits"]["dev"]["adversarial"], m["version"], str(file.parent))
        except (AdvdlaError, KeyError, TypeError):
            continue  # an old or damaged folder is not a shipped suite
        if problem is None:
            found.append(key)
        elif problem != "other":
            skipped.append(f"skipped the shipped suite {file.parent}: it {problem}")
    return (Path(max(found)[-1]) if found else None), skipped


def shipped_suite(model: str, root: str | Path, *, seq_len: int | None = None,
                  weights: str | None = None) -> Path | None:
    """:func:`choose_shipped`'s suite alone."""
    return choose_shipped(model, root, seq_len=seq_len, weights=weights)[0]
