"""What a search reports: its best candidates re-scored on the slow reference path, and the files that hold them.

Context: the loop scores candidates on the batched fast path (:class:`advdla.search.evaluate.Evaluator`) against
R fixed resamples. Every example written to ``examples.parquet`` is re-scored on the literal slow paths
(:func:`advdla.search.evaluate.verify`) against fresh resamples (:func:`verify_resamples`) and kept only if it
still passes the thresholds for the study's objective; ``search.json`` holds the summary next to it, and
:func:`read_search` reads both back without a model or a study.

Intuition: the search optimises against its R resamples, so it can find prompts whose TE is small for those R
texts only (on the planted model it does exactly that for the honest head). Fresh resamples the search never saw
separate such overfitting from a real gap.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import torch
from jaxtyping import Int
from optuna.trial import FrozenTrial, TrialState

from advdla.atomic import write_atomic, write_json_atomic
from advdla.components import Component
from advdla.criteria import mechanism
from advdla.errors import AdvdlaError
from advdla.search.config import SearchConfig, SearchResult
from advdla.search.evaluate import verify
from advdla.search.objectives import is_hit
from advdla.search.space import SearchSpace

__all__ = ["EXAMPLE_COLUMNS", "verify_resamples", "verified_rows", "slow_scores", "write_outputs",
           "verified_examples", "read_search"]

EXAMPLE_COLUMNS = ["text", "tokens", "t1", "t2", "t1_str", "t2_str", "ld", "target", "dla", "rank", "te_mean", "te_std",
                   "de_mean", "de_std", "dla_share", "te_share", "de_share", "mechanism", "objective",
                   "objective_values", "naturalness", "trial", "seed", "verified", "pareto", "source_doc"]


def verify_resamples(windows: Any, space: SearchSpace, config: SearchConfig) -> Int[torch.Tensor, "r pos"]:
    """Fresh resamples for re-verification, drawn with another seed than the search's.

    Why fresh: the search scores TE against R fixed resamples, so it can find prompts whose TE is small for
    those R texts only (on the planted model it does exactly that for the honest head). An example is
    reported only if its TE is small against resamples the search never saw.
    """
    return windows.sample(config.seq_len, config.verify_resamples, seed=config.seed + 3,
                          exclude=set(space.base_docs) | set(config.exclude_docs))[0]


def _candidates(study: Any, config: SearchConfig) -> list[FrozenTrial]:
    """Complete adversarial trials, best first, one per distinct token sequence."""
    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.user_attrs.get("scores", {}).get("adversarial")]
    key = (lambda t: t.values[0]) if config.mode == "scalar" else (lambda t: t.values[0] - t.values[1])
    seen, out = set(), []
    for t in sorted(done, key=key, reverse=True):
        toks = tuple(t.user_attrs["scores"]["tokens"])
        if toks not in seen:
            seen.add(toks)
            out.append(t)
    return out


def verified_rows(bridge: Any, study: Any, target: Component, resamples: Int[torch.Tensor, "r pos"], *,
                  config: SearchConfig, space: SearchSpace) -> tuple[list[dict], int]:
    """Re-score the best candidates on the slow reference path with ``resamples`` (fresh); rows for those that still
    pass, and how many failed."""
    pareto = {t.number for t in study.best_trials} if config.mode == "multi" else set()
    rows, rejected = [], 0
    for t in _candidates(study, config)[:config.max_verify]:
        v = verify(bridge, target, torch.tensor(t.user_attrs["scores"]["tokens"]), resamples)
        slow = slow_scores(v)
        if not is_hit(slow, config.thresholds, config.objective):
            rejected += 1
            continue
        rows.append(_example_row(bridge.tokenizer, t, v, slow, target=target, config=config, space=space,
                                 pareto=t.number in pareto))
    return rows, rejected


def _example_row(tok: Any, t: FrozenTrial, v: dict[str, float], slow: SimpleNamespace, *, target: Component,
                 config: SearchConfig, space: SearchSpace, pareto: bool) -> dict[str, Any]:
    """One verified example as ``examples.parquet`` holds it: slow-path numbers, the trial's fast naturalness."""
    fast = t.user_attrs["scores"]
    return {"text": tok.decode(fast["tokens"]), "tokens": fast["tokens"], "t1": v["t1"], "t2": v["t2"],
            "t1_str": tok.decode([v["t1"]]), "t2_str": tok.decode([v["t2"]]), "ld": v["ld"],
            "target": target.name, "dla": v["dla"], "rank": v["rank"], "te_mean": v["te_mean"],
            "te_std": v["te_std"], "de_mean": v["de_mean"], "de_std": v["de_std"],
            "dla_share": slow.dla_share, "te_share": slow.te_share, "de_share": slow.de_share,
            "mechanism": mechanism(v["dla"], v["de_mean"], v["te_mean"], v["ld"], config.thresholds, rank=v["rank"]),
            "objective": config.objective, "objective_values": list(t.values),
            "naturalness": fast["naturalness"], "trial": t.number, "seed": config.seed, "verified": True,
            "pareto": pareto, "source_doc": space.source_doc(t.params["context"])}


def slow_scores(v: dict[str, float]) -> SimpleNamespace:
    """:func:`~advdla.search.evaluate.verify`'s floats with the shares :class:`Scores` has (LD clamped as there):
    ``is_hit`` and ``is_adversarial`` read them as they read a batch of Scores."""
    safe_ld = max(abs(v["ld"]), 1e-3)
    return SimpleNamespace(rank=v["rank"], ld=v["ld"], dla=v["dla"], te_mean=v["te_mean"], de_mean=v["de_mean"],
                           dla_share=v["dla"] / safe_ld, te_share=abs(v["te_mean"]) / safe_ld,
                           de_share=v["de_mean"] / safe_ld)


def write_outputs(out_dir: Path, rows: list[dict], summary: dict[str, Any]) -> pd.DataFrame:
    """``examples.parquet`` (one row per verified example, :data:`EXAMPLE_COLUMNS`) and ``search.json``, atomically."""
    frame = pd.DataFrame(rows, columns=EXAMPLE_COLUMNS)
    write_atomic(out_dir / "examples.parquet", lambda p: frame.to_parquet(p, index=False))
    write_json_atomic(out_dir / "search.json", summary)
    return frame


def verified_examples(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of a search's examples frame (``SearchResult.examples``, ``examples.parquet``) whose ``verified`` is
    true: the ones re-scored on the slow path with fresh resamples that still passed the thresholds."""
    return frame[frame["verified"].astype(bool)] if len(frame) else frame


def read_search(out_dir: str | Path) -> SearchResult:
    """A finished search read back from what :func:`~advdla.search.engine.run_search` wrote into ``out_dir`` (no
    model, no study)."""
    out_dir = Path(out_dir)
    try:
        summary = json.loads((out_dir / "search.json").read_text())
        frame = pd.read_parquet(out_dir / "examples.parquet")
    except (OSError, ValueError) as exc:
        raise AdvdlaError(f"cannot read the search in {out_dir} ({type(exc).__name__}: {exc}): run it again "
                          f"(the study in study.db resumes)") from None
    return SearchResult(summary["target"], frame, summary, out_dir)
