"""Build a suite from its config: per split, search for adversarial prompts, find natural controls, compute truth.

Context: the steps, in order (each a short function here or in the module named):

1. load the model and the corpus; cut the corpus's documents into two seeded halves, one per split
   (:func:`advdla.corpus.split_documents`): dev and test never share a document, by construction;
2. resolve the targets (a list, or ``auto``: :func:`advdla.analysis.rank_targets`);
3. per split, adversarial candidates per target from the search (:func:`advdla.search.run_search`, told to
   keep off the other split's documents, re-verified there); the candidate step is a parameter (``find=``) so
   tests can hand in a stub;
4. per candidate, in a seeded order: two disjoint resample sets (the truth's and the methods', from documents
   neither the prompt's nor the other split's), the panel, the ground truth, and the mechanism label
   (:func:`advdla.criteria.mechanism`) checked on that final truth: a candidate that no longer meets
   the adversarial thresholds is counted and left out, never kept as adversarial;
5. per split, natural controls: unmanipulated windows of the split's documents that pass the same LD margin and
   put a target in DLA's top k by the same rule (:func:`advdla.attribution.magnitude_rank`), nothing asked of
   their TE; how many windows were scanned is recorded (:mod:`advdla.suites.natural`);
6. examples + manifest (fingerprint chain, versions, thresholds, mechanism counts) + README
   (:mod:`advdla.suites.manifest`), written atomically (:func:`advdla.suites.store.save_suite`).

What the steps share (the config, model, corpus windows, the splits' documents, the candidate prompt) is in
:mod:`advdla.suites.context`; this module orchestrates: the order of the steps, and what each one hands on.

Every finished step and example is written at once (:class:`advdla.suites.partial.PartialBuild`): a build
killed at any point resumes without recomputing what was done, and ends with the same fingerprint. With a
database URL (``db=``) the same build runs in several workers at once, each search and each example's truth a
unit one worker claims (:class:`advdla.suites.workers.SharedBuild`), and ends with the same fingerprint too.
Progress goes through a callback (:mod:`advdla.progress`).

``regenerate_test`` redoes steps 3-5 for the test split only, with a new seed, keeping ``dev`` as it is:
a held-out set that nothing could have been tuned on.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Int
from torch import Tensor

from advdla.analysis import rank_targets_from_windows
from advdla.components import Component, parse_component
from advdla.corpus import TokenWindows, disjoint_resamples, load_corpus, split_documents
from advdla.errors import AdvdlaError
from advdla.models import load_model
from advdla.precision import DEFAULT_PRECISION, check_precision
from advdla.progress import Progress, Step, silent
from advdla.search import SearchConfig, run_search, verified_examples
from advdla.suites.config import SuiteConfig, config_from_dict
from advdla.suites.context import BuildContext, Candidate, Finder, n_adversarial, other_docs
from advdla.suites.manifest import build_manifest, previous_manifest, render_readme
from advdla.suites.natural import natural_candidates, too_close
from advdla.suites.partial import PartialBuild
from advdla.suites.store import SCHEMA_VERSION, SPLITS, Example, check_destination, example_id, load_suite, save_suite
from advdla.suites.truth import choose_panel, ground_truth, target_mechanism
from advdla.suites.workers import SharedBuild

__all__ = ["Candidate", "build_suite", "regenerate_test", "search_candidates", "candidates_from_search",
           "resolve_targets", "Finder"]


def build_suite(cfg: SuiteConfig, dest: str | Path, *, force: bool = False, find: Finder | None = None,
                bridge: Any = None, progress: Progress | None = None, db: str | None = None,
                up_to: bool = False, imported: list[tuple[list[Example], dict[str, Any]]] | None = None,
                precision: str = DEFAULT_PRECISION) -> Path:
    """Build the suite described by ``cfg`` into ``dest`` (atomically; an existing ``dest`` needs ``force``).

    ``up_to``: the config's counts are upper bounds: a split keeps as many adversarial examples and natural
    controls as hold (even none) instead of stopping the build (``advdla run`` takes what its search found; the
    manifest records how many were asked for and how many held). Published suites keep the default: exact counts.

    ``imported``: examples taken over from another suite (:func:`advdla.suites.imported.import_examples`, one
    import per split), with what the manifest records about them; each joins its split after the split's own rows
    (a prompt the build made too is kept once).

    ``precision`` (:mod:`advdla.precision`): the dtype of the screens (the default finder's search loop and the
    natural scan); every control the bf16 scan picks is re-checked in fp32, and every truth is fp32.

    A build of the same config interrupted earlier resumes from ``.NAME.partial`` beside ``dest``; with ``db``
    (an SQLAlchemy URL) from that database instead, shared with every other worker given the same URL.
    """
    dest = Path(dest)
    if not db:  # a shared build's worker may join after another saved the suite: its save step reads where
        check_destination(dest, force=force)
    ctx = _context(cfg, bridge, find or partial(search_candidates, precision=precision), progress or silent)
    ctx.up_to, ctx.precision = up_to, check_precision(precision)
    key = _build_key(ctx, test_seed=cfg.seed)
    ctx.partial = SharedBuild(db, dest, key) if db else PartialBuild(dest, key)
    examples, search_info, build_info = [], {}, {}
    with ctx.partial.removed_on_error():
        if ctx.partial.shared:  # every search is claimable from the start: dev's and test's run side by side
            ctx.partial.steps([job for split in SPLITS for job in _search_jobs(ctx, split, seed=cfg.seed)])
        for split in SPLITS:
            later = SPLITS[SPLITS.index(split) + 1:]  # the earlier splits' imports are in examples already
            other_split_tokens = [e.tokens for e in examples] + _imported_tokens(imported, later)
            part, search_info[split], build_info[split] = _split_examples(ctx, split, seed=cfg.seed,
                                                                          other_split_tokens=other_split_tokens)
            examples += part + _imported_to_add(imported, split, part, build_info[split])
    manifest = build_manifest(ctx, examples, test_seed=cfg.seed, search_info=search_info, build_info=build_info,
                              previous=previous_manifest(dest))

    def write() -> Path:
        return save_suite(examples, manifest, dest, force=force, readme=render_readme(manifest))

    path = ctx.partial.save(dest, write)  # once per machine and destination, however many workers build
    ctx.partial.remove()
    return path


def _imported_tokens(imported: list[tuple[list[Example], dict[str, Any]]] | None, splits: tuple[str, ...]
                     ) -> list[Int[Tensor, " pos"]]:
    """The prompts that will be imported into ``splits``: dev's own examples keep their distance from the test
    examples imported after it, as test's keep theirs from dev's."""
    return [e.tokens for rows, meta in imported or [] if meta["split"] in splits for e in rows]


def _imported_to_add(imported: list[tuple[list[Example], dict[str, Any]]] | None, split: str, own: list[Example],
                     info: dict[str, Any]) -> list[Example]:
    """The imported examples of ``split`` that the build did not make itself; ``info`` records the import."""
    mine = [(rows, meta) for rows, meta in imported or [] if meta["split"] == split]
    if not mine:
        return []
    (taken, meta), ids = mine[0], {e.example_id for e in own}
    rows = [e.with_split(split) for e in taken if e.example_id not in ids]
    info["imported"] = {**meta, "adversarial": sum(e.kind == "adversarial" for e in rows),
                        "natural": sum(e.kind == "natural" for e in rows), "duplicates": len(taken) - len(rows)}
    return rows


def regenerate_test(path: str | Path, *, seed: int, find: Finder | None = None, bridge: Any = None,
                    progress: Progress | None = None, precision: str = DEFAULT_PRECISION) -> Path:
    """Replace the suite's test split by a fresh one (search and natural draws with ``seed``); dev is kept."""
    path = Path(path)
    suite = load_suite(path)
    old = suite.manifest
    if seed in (old.get("test_seed"), old.get("seed")):
        raise AdvdlaError(f"seed {seed} already made this suite's current or original split: pass a new --seed")
    cfg = config_from_dict(old["config"], where=f"{path}/manifest.json config")
    dev = suite.examples(split="dev")
    ctx = _context(cfg, bridge, find or partial(search_candidates, precision=precision), progress or silent)
    ctx.precision = check_precision(precision)
    if ctx.bridge.advdla_card.weights_fingerprint != old["model_card"]["weights_fingerprint"]:
        raise AdvdlaError(f"model {cfg.model!r} now has other weights than the suite was built on; "
                          f"rebuild the suite instead")
    ctx.partial = PartialBuild(path, _build_key(ctx, test_seed=seed))
    with ctx.partial.removed_on_error():
        test, search_info, build_info = _split_examples(ctx, "test", seed=seed,
                                                        other_split_tokens=[e.tokens for e in dev])
    manifest = build_manifest(ctx, dev + test, test_seed=seed,
                              search_info={**old.get("search", {}), "test": search_info},
                              build_info={**old.get("build", {}), "test": build_info}, previous=old)
    out = save_suite(dev + test, manifest, path, force=True, readme=render_readme(manifest))
    ctx.partial.remove()
    return out


def _context(cfg: SuiteConfig, bridge: Any, find: Finder, progress: Progress) -> BuildContext:
    """The model (loaded unless given), the corpus cut into windows and into the splits' documents, the targets."""
    bridge = bridge if bridge is not None else load_model(cfg.model)
    if bridge.advdla_card.name != cfg.model:
        raise AdvdlaError(f"the config names model {cfg.model!r} but the bridge given is {bridge.advdla_card.name!r}")
    corpus = load_corpus(cfg.corpus)
    windows = TokenWindows(corpus, bridge.tokenizer)
    docs = split_documents(windows, seed=cfg.seed)
    return BuildContext(cfg, bridge, corpus, windows, docs, resolve_targets(bridge, cfg, windows), find, progress)


def _build_key(ctx: BuildContext, *, test_seed: int) -> dict[str, Any]:
    """What is being built: a resumed build, or another worker, must be building exactly this."""
    key = {"config": ctx.cfg.to_dict(), "weights": ctx.bridge.advdla_card.weights_fingerprint,
           "corpus": ctx.corpus.fingerprint, "test_seed": test_seed, "schema_version": SCHEMA_VERSION,
           "precision": ctx.precision}  # a bf16 and an fp32 screen choose other candidates: never mix their steps
    return {**key, "up_to": True} if ctx.up_to else key


def resolve_targets(bridge: Any, cfg: SuiteConfig, windows: Any) -> list[Component]:
    """The config's targets (heads or MLPs); ``auto``: the analysis' top ones (:func:`advdla.analysis.rank_targets`)."""
    if cfg.targets != "auto":
        targets = [parse_component(t, bridge.cfg) for t in cfg.targets]
    else:
        frame = rank_targets_from_windows(bridge, windows, seq_len=cfg.seq_len, seed=cfg.seed)
        targets = [parse_component(n, bridge.cfg) for n in frame["component"][: cfg.n_auto_targets]]
    bad = [t.name for t in targets if t.kind not in ("head", "mlp")]
    if bad or not targets:
        raise AdvdlaError(f"suite targets must be attention heads (L<l>H<h>) or MLPs (MLP<l>), got {bad or 'none'}")
    return targets


# --------------------------------------------------------------------------------------------- one split


def _split_examples(ctx: BuildContext, split: str, *, seed: int, other_split_tokens: list[Int[Tensor, " pos"]]
                    ) -> tuple[list[Example], dict[str, Any], dict[str, Any]]:
    """A split's adversarial examples (checked on their final truth) and its natural controls.

    ``other_split_tokens``: the other split's prompts. A candidate sharing more than MAX_SPLIT_OVERLAP of its
    tokens, position by position, with one of them is left out (the search's token pools are shared, so disjoint
    documents alone do not guarantee it): the build enforces the overlap rule that verify checks
    (:func:`advdla.suites.natural.too_close`).
    """
    n_adv = n_adversarial(ctx, split)
    found, search_info = _adversarial_candidates(ctx, split, seed=seed, n=n_adv)
    cands = [c for c in found if not too_close(c.tokens, other_split_tokens)]
    adversarial, rejected = _checked_adversarial(ctx, split, cands, n_adv)
    used = set().union(*(c.docs for c in cands)) if cands else set()
    natural, scan = natural_candidates(ctx, split, seed=seed, exclude=used, other_split_tokens=other_split_tokens)
    examples = adversarial + ctx.partial.examples([_example_job(ctx, split, "natural", c) for c in natural],
                                                  after=lambda: _tick(ctx, split, "natural"))
    return examples, search_info, {"adversarial_asked": n_adv, "candidates_rejected_on_truth": rejected,
                                   "candidates_too_close_to_other_split": len(found) - len(cands),
                                   "natural_windows_scanned": scan["scanned"], "natural_found": len(natural),
                                   "natural_scan_precision": scan["precision"],
                                   "natural_overruled_by_fp32": scan["overruled_by_fp32"]}


def _search_jobs(ctx: BuildContext, split: str, *, seed: int) -> list[tuple[str, Callable[[], Any]]]:
    """One step per target: its search's candidates (as JSON) and what the manifest records about it."""
    per_target = math.ceil(4 * n_adversarial(ctx, split) / len(ctx.targets))

    def search(i: int, target: Component) -> dict[str, Any]:
        found, meta = ctx.find(ctx.bridge, target, cfg=ctx.cfg, seed=seed + 1000 * i + SPLITS.index(split) * 500,
                               n=per_target, windows=ctx.windows, exclude_docs=other_docs(ctx, split),
                               out_dir=ctx.partial.search_dir(f"{split}-{target}"), progress=ctx.progress)
        return {"candidates": [c.to_json() for c in found], "meta": meta}

    return [(f"search-{split}-{t}", lambda i=i, t=t: search(i, t)) for i, t in enumerate(ctx.targets)]


def _adversarial_candidates(ctx: BuildContext, split: str, *, seed: int, n: int
                            ) -> tuple[list[Candidate], dict[str, Any]]:
    """Up to 4n distinct candidates per split (spare ones replace those the final truth rejects), seeded order."""
    def compute() -> dict[str, Any]:
        pools, info = [], {"seed": seed, "per_target": []}
        for target, done in zip(ctx.targets, ctx.partial.steps(_search_jobs(ctx, split, seed=seed)), strict=True):
            found, meta = [Candidate.from_json(c) for c in done["candidates"]], done["meta"]
            fresh = _distinct(found)
            random.Random(seed).shuffle(fresh)
            pools.append(fresh)
            info["per_target"].append({"target": target.name, "found": len(fresh), **meta})
        picked = _interleave(pools, 4 * n)
        random.Random(seed + 1).shuffle(picked)
        return {"candidates": [c.to_json() for c in picked], "info": info}

    done = ctx.partial.step(f"candidates-{split}", compute)
    return [Candidate.from_json(c) for c in done["candidates"]], done["info"]


def _checked_adversarial(ctx: BuildContext, split: str, cands: list[Candidate], n: int) -> tuple[list[Example], int]:
    """The first n candidates whose final truth still meets the adversarial thresholds; the others are counted."""
    done = ctx.partial.examples([_example_job(ctx, split, "adversarial", c) for c in cands],
                                enough=lambda exs: sum(e.mechanism != "none" for e in exs) >= n,
                                after=lambda: _tick(ctx, split, "adversarial"))
    kept = [e for e in done if e.mechanism != "none"]
    rejected = len(done) - len(kept)
    if len(kept) < n and not ctx.up_to:
        raise AdvdlaError(f"{split}: {len(kept)} of {len(cands)} candidates hold on the final truth, {n} needed: raise "
                          f"search.trials, loosen thresholds, or lower splits.n_{split}")
    return kept, rejected


def _distinct(cands: list[Candidate]) -> list[Candidate]:
    seen, out = set(), []
    for c in cands:
        if (c.tokens, c.target) not in seen:
            seen.add((c.tokens, c.target))
            out.append(c)
    return out


def _interleave(pools: list[list[Candidate]], n: int) -> list[Candidate]:
    """Round-robin over the targets' pools, so every target is represented as evenly as the pools allow."""
    out, seen, i = [], set(), 0
    while len(out) < n and any(i < len(p) for p in pools):
        for p in pools:
            if i < len(p) and p[i].tokens not in seen and len(out) < n:
                seen.add(p[i].tokens)
                out.append(p[i])
        i += 1
    return out


def search_candidates(bridge: Any, target: Component, *, cfg: SuiteConfig, seed: int, n: int, windows: Any,
                      out_dir: Path, exclude_docs: set[int] = frozenset(), progress: Progress = silent,
                      precision: str = DEFAULT_PRECISION) -> tuple[list[Candidate], dict[str, Any]]:
    """The search engine's verified adversarial examples for one target (:func:`advdla.search.run_search`;
    ``precision``: its loop's, the verification is fp32)."""
    sc = SearchConfig(target=target.name, trials=cfg.search.trials, batch=cfg.search.batch, sampler=cfg.search.sampler,
                      objective=cfg.search.objective, resamples=cfg.method_resamples, seq_len=cfg.seq_len, seed=seed,
                      thresholds=cfg.threshold_values(), max_examples=n, max_verify=n + 4, corpus=cfg.corpus,
                      exclude_docs=tuple(sorted(exclude_docs)), precision=precision)
    result = run_search(bridge, sc, out_dir=out_dir, progress=progress)
    return candidates_from_search(result, target.name)


def candidates_from_search(result: Any, target: str, *, engine: str = "advdla.search.run_search"
                           ) -> tuple[list[Candidate], dict[str, Any]]:
    """A search result's verified examples as suite candidates, and what the manifest records about the search."""
    frame = verified_examples(result.examples)
    searched_docs = tuple(sorted(result.summary.get("docs", [])))  # documents any of its prompts may borrow from
    cands = [Candidate(tuple(int(t) for t in row["tokens"]), target, int(row["source_doc"]), int(row["trial"]),
                       searched_docs) for _, row in frame.iterrows()]
    counts = result.summary.get("counts", {})
    return cands, {"engine": engine, "objective": result.summary.get("objective"),
                   "trials": counts.get("study_complete_trials"),
                   "adversarial_fast": counts.get("study_adversarial_fast"), "verified": len(frame),
                   "rejected_on_verify": counts.get("rejected_on_verify")}


# --------------------------------------------------------------------------------------------- ground truth


def _example_seed(cfg: SuiteConfig, eid: str) -> int:
    """Resample seed from the build seed and the example's id: independent of the example's position."""
    return int(hashlib.sha256(f"{cfg.seed}/{eid}".encode()).hexdigest()[:8], 16)


def _example_job(ctx: BuildContext, split: str, kind: str, cand: Candidate) -> tuple[str, Callable[[], Example]]:
    """The example's id and how to compute its truth (the build reads it back instead when it is done)."""
    eid = example_id(list(cand.tokens), cand.target, kind)
    return eid, lambda: _truth_example(ctx, split, kind, cand, eid)


def _tick(ctx: BuildContext, split: str, kind: str) -> None:
    sizes = ctx.cfg.splits
    total = sizes.n_dev + sizes.n_test + 2 * sizes.n_natural  # rejected candidates come on top
    ctx.progress(Step("ground truth", done=ctx.partial.examples_done, total=total, info=f"{split} {kind}"))


def _truth_example(ctx: BuildContext, split: str, kind: str, cand: Candidate, eid: str) -> Example:
    """One example: two disjoint resample sets avoiding its documents and the other split's, its panel, its truth."""
    cfg, seed = ctx.cfg, _example_seed(ctx.cfg, eid)
    tokens, target = torch.tensor(cand.tokens), parse_component(cand.target, ctx.bridge.cfg)
    sizes = [cfg.resamples, cfg.method_resamples, cfg.panel.screen_resamples]
    truth_res, method_res, screen = disjoint_resamples(ctx.windows, len(cand.tokens), sizes, seed=seed,
                                                       exclude=cand.docs | other_docs(ctx, split))
    panel = choose_panel(ctx.bridge, tokens, target, policy=cfg.panel, screen=screen)
    truth = ground_truth(ctx.bridge, tokens, truth_res, panel)
    label = target_mechanism(truth, target.name, cfg.threshold_values()) if kind == "adversarial" else "none"
    return Example(example_id=eid, split=split, kind=kind, text=ctx.bridge.tokenizer.decode(list(cand.tokens)),
                   tokens=tokens, resamples=truth_res, method_resamples=method_res, target=target.name, truth=truth,
                   mechanism=label, source_doc=cand.source_doc, trial=cand.trial, resample_seed=seed)
