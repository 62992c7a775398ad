"""A search, end to end: from a model and a :class:`~advdla.search.config.SearchConfig` to verified examples on disk.

Context: :func:`run_search` wires the parts together, each in its own module:

1. check the settings (:mod:`advdla.search.config`) and resolve the target (:mod:`advdla.search.target`);
2. open the study in its storage (:mod:`advdla.search.storage`): resuming one made with other space arguments is
   refused;
3. build the search space (:mod:`advdla.search.space`, cached per process by :func:`space_for`) and an evaluator
   against R fixed resamples (:func:`search_resamples`);
4. ask, score and tell in batches until the budget is spent (:mod:`advdla.search.loop`, with the sampler from
   :mod:`advdla.search.samplers` and, for ``tpe``, the local search of :mod:`advdla.search.local`);
5. re-verify the best candidates on the slow path with fresh resamples and write ``examples.parquet`` and
   ``search.json`` (:mod:`advdla.search.verified`).

``config.precision`` (:mod:`advdla.precision`) is the loop's: with ``bf16`` the candidates are scored on the model's
bf16 copy; the re-verification of step 5 always runs in fp32 on ``bridge``, so every row written is fp32.

:func:`corpus_baseline` scores unmanipulated corpus windows the same way: the rate a search must beat.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Int

from advdla.components import Component
from advdla.corpus import TokenWindows, load_corpus
from advdla.progress import Progress
from advdla.search.config import SearchConfig, SearchResult, check_lengths, validate
from advdla.search.evaluate import Evaluator
from advdla.search.loop import WorkerStats, reporter, run_loop
from advdla.search.objectives import DIRECTIONS, is_hit
from advdla.search.space import SearchSpace, build_space
from advdla.search.storage import open_storage, open_study
from advdla.search.target import resolve_target
from advdla.search.verified import verified_rows, verify_resamples, write_outputs

__all__ = ["run_search", "corpus_baseline", "space_for", "search_resamples"]

DEFAULT_STUDY = "advdla-search"


def run_search(bridge: Any, config: SearchConfig, *, out_dir: str | Path, storage: str | None = None,
               study_name: str | None = None, progress: Progress | None = None) -> SearchResult:
    """Search for prompts where ``config.target``'s DLA overstates its total effect; write and return what was found.

    ``storage`` defaults to ``sqlite:///OUT/study.db`` and ``study_name`` to ``advdla-search``: running the same
    call again resumes that study. Writes ``OUT/examples.parquet`` (verified examples) and ``OUT/search.json``.
    ``progress`` gets a ``Step("search", complete trials, budget, info)`` before every batch.
    """
    validate(config)
    check_lengths(bridge, config)
    t_start = time.perf_counter()
    windows = TokenWindows(load_corpus(config.corpus), bridge.tokenizer)
    target = resolve_target(bridge, config.target, windows, seq_len=config.seq_len, seed=config.seed)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)  # only now: a bad target leaves nothing behind
    shared = storage is not None  # a shared study: salt the sampler seed with the pid, so workers explore apart
    storage_url = storage or f"sqlite:///{(out_dir / 'study.db').resolve()}"
    model = getattr(getattr(bridge, "advdla_card", None), "name", "model")
    study_name = study_name or DEFAULT_STUDY
    study = open_study(open_storage(storage_url), name=study_name, directions=DIRECTIONS[config.mode],
                       space_key=config.space_key(model, target.name))
    t_setup0 = time.perf_counter()
    space = space_for(bridge, windows, target, config)
    evaluator = Evaluator(bridge, target, search_resamples(windows, space, config), precision=config.precision)
    t_setup = time.perf_counter() - t_setup0
    t_loop0 = time.perf_counter()
    stats = run_loop(study, space, evaluator, config, os.getpid() if shared else 0, reporter(progress, config))
    t_loop = time.perf_counter() - t_loop0
    t_verify0 = time.perf_counter()
    fresh = verify_resamples(windows, space, config)
    rows, rejected = verified_rows(bridge, study, target, fresh, config=config, space=space)
    t_verify = time.perf_counter() - t_verify0
    timings = {"setup_s": t_setup, "loop_s": t_loop, "verify_s": t_verify, "total_s": time.perf_counter() - t_start}
    summary = _summary(config, model=model, target=target, storage=storage_url, study_name=study_name, space=space,
                       stats=stats, rows=rows, rejected=rejected, timings=timings)
    frame = write_outputs(out_dir, rows, summary)
    return SearchResult(target.name, frame, summary, out_dir)


_SPACES: dict[tuple, SearchSpace] = {}  # the last few spaces built, by what determines them (searches in one process)


def space_for(bridge: Any, windows: Any, target: Component, config: SearchConfig) -> SearchSpace:
    """:func:`~advdla.search.space.build_space` for ``config``, reused when a search in this process already built
    the same one (same model object, target and space fields): the yield's TPE and random arms share it."""
    card = getattr(bridge, "advdla_card", None)
    key = (id(bridge), getattr(card, "weights_fingerprint", None), target.name, config.corpus, config.seq_len,
           config.seed, config.n_base, config.pool_size, config.n_slots, tuple(sorted(config.exclude_docs)),
           config.n_gcg, config.gcg_k, config.thresholds.top_k, config.thresholds.margin)
    if key not in _SPACES:
        while len(_SPACES) >= 8:
            _SPACES.pop(next(iter(_SPACES)))
        _SPACES[key] = build_space(bridge, windows, target, seq_len=config.seq_len, seed=config.seed,
                                   n_base=config.n_base, pool_size=config.pool_size, n_slots=config.n_slots,
                                   exclude=set(config.exclude_docs), n_gcg=config.n_gcg, gcg_k=config.gcg_k,
                                   top_k=config.thresholds.top_k, margin=config.thresholds.margin)
    return _SPACES[key]


def search_resamples(windows: Any, space: SearchSpace, config: SearchConfig) -> Int[torch.Tensor, "r pos"]:
    """The R fixed resamples every candidate's TE is averaged over (other documents than the bases)."""
    return windows.sample(config.seq_len, config.resamples, seed=config.seed + 2,
                          exclude=set(space.base_docs) | set(config.exclude_docs))[0]


def _summary(config: SearchConfig, *, model: str, target: Component, storage: str, study_name: str,
             space: SearchSpace, stats: WorkerStats, rows: list[dict], rejected: int,
             timings: dict[str, float]) -> dict[str, Any]:
    """What ``search.json`` holds: the settings, the space, the study's counts and this worker's timings."""
    loop = max(timings["loop_s"], 1e-9)
    complete = max(stats.study_complete, 1)
    return {"model": model, "target": target.name, "objective": config.objective, "config": config.as_dict(),
            "thresholds": config.thresholds.as_dict(), "storage": storage, "study": study_name,
            "space": space.describe(), "docs": sorted(set(space.base_docs)),  # documents prompts may borrow from
            "counts": {"study_complete_trials": stats.study_complete, "study_adversarial_fast": stats.study_examples,
                       "verified_examples": len(rows), "verified_of": len(rows) + rejected,
                       "rejected_on_verify": rejected, "stored_by_this_worker": stats.told,
                       "surplus_dropped": stats.surplus,
                       "adversarial_per_100_candidates": 100.0 * stats.study_examples / complete,
                       "verified_mechanisms": {m: sum(r["mechanism"] == m for r in rows)
                                               for m in ("compensation", "baseline", "mixed")}},
            "sampler_share": stats.t_sampler / loop,
            "timings": {**timings, "sampler_s": stats.t_sampler, "eval_s": stats.t_eval, "storage_s": stats.t_storage,
                        "candidates_per_s": stats.told / loop}}


def corpus_baseline(bridge: Any, config: SearchConfig, *, n: int, target: Component | None = None) -> dict[str, Any]:
    """Unmanipulated corpus windows of the same length, scored like candidates: hits for the objective per 100.

    The windows come from documents the search's bases and spans do not use (and not from ``exclude_docs``), and
    TE/DE use the search's own resamples, so the rate is comparable with a search's ``adversarial_per_100``.
    """
    validate(config)
    check_lengths(bridge, config)
    windows = TokenWindows(load_corpus(config.corpus), bridge.tokenizer)
    target = target or resolve_target(bridge, config.target, windows, seq_len=config.seq_len, seed=config.seed)
    space = space_for(bridge, windows, target, config)
    evaluator = Evaluator(bridge, target, search_resamples(windows, space, config), precision=config.precision)
    tokens = windows.sample(config.seq_len, n, seed=config.seed + 7,
                            exclude=set(space.base_docs) | set(config.exclude_docs))[0]
    hits = sum(int(is_hit(evaluator(tokens[i:i + config.batch]), config.thresholds, config.objective).sum())
               for i in range(0, n, config.batch))
    return {"target": target.name, "objective": config.objective, "candidates": n, "adversarial": hits,
            "adversarial_per_100_candidates": 100.0 * hits / n}
