"""Build a suite from its config: per split, search for adversarial prompts, find natural controls, compute truth.

Context: the steps, in order (each a short function below):

1. load the model and the corpus; cut the corpus's documents into two seeded halves, one per split
   (:func:`advdla.corpus.split_documents`): dev and test never share a document, by construction;
2. resolve the targets (a list, or ``auto``: :func:`advdla.erasure.rank_targets`);
3. per split, adversarial candidates per target from the search (:func:`advdla.search.run_search`, told to
   keep off the other split's documents, re-verified there); the candidate step is a parameter (``find=``) so
   tests can hand in a stub;
4. per candidate, in a seeded order: two disjoint resample sets (the truth's and the methods', from documents
   neither the prompt's nor the other split's), the panel, the ground truth, and the mechanism label
   (:func:`advdla.criteria.mechanism`) checked on that final truth: a candidate that no longer meets
   the adversarial thresholds is counted and left out, never kept as adversarial;
5. per split, natural controls: unmanipulated windows of the split's documents that pass the same LD margin and
   put a target in DLA's top k by the same rule (:func:`advdla.attribution.magnitude_rank`), nothing asked of
   their TE; how many windows were scanned is recorded;
6. examples + manifest (fingerprint chain, versions, thresholds, mechanism counts) + README, written
   atomically (:func:`advdla.suites.store.save_suite`).

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
import json
import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

import advdla
from advdla.attribution import dla, magnitude_rank
from advdla.components import Component, parse_component
from advdla.corpus import TokenWindows, disjoint_resamples, load_corpus, split_documents
from advdla.erasure import rank_targets
from advdla.errors import AdvdlaError
from advdla.models import load_model
from advdla.progress import Progress, Step, silent
from advdla.search import SearchConfig, run_search, verified_examples
from advdla.suites.config import SuiteConfig, config_from_dict
from advdla.suites.fingerprint import Chain, library_versions
from advdla.suites.partial import PartialBuild
from advdla.suites.store import (
    MANIFEST_FIELDS,
    SCHEMA_VERSION,
    SPLITS,
    Example,
    check_destination,
    example_id,
    load_suite,
    rows_fingerprint_args,
    save_suite,
    split_counts,
)
from advdla.suites.truth import choose_panel, ground_truth, panel_candidates, target_mechanism
from advdla.suites.verify import MAX_SPLIT_OVERLAP
from advdla.suites.workers import SharedBuild

__all__ = ["Candidate", "build_suite", "regenerate_test", "search_candidates", "candidates_from_search",
           "resolve_targets", "Finder"]


@dataclass(frozen=True)
class Candidate:
    """A prompt to put in the suite: its tokens, target, the document it is built on (-1: unknown), its trial."""

    tokens: tuple[int, ...]
    target: str
    source_doc: int = -1
    trial: int = -1
    near_docs: tuple[int, ...] = ()  # documents the prompt may have borrowed from: resamples avoid them

    @property
    def docs(self) -> set[int]:
        return ({self.source_doc} if self.source_doc >= 0 else set()) | set(self.near_docs)

    def to_json(self) -> list[Any]:
        return [list(self.tokens), self.target, self.source_doc, self.trial, list(self.near_docs)]

    @classmethod
    def from_json(cls, x: list[Any]) -> Candidate:
        return cls(tuple(x[0]), x[1], x[2], x[3], tuple(x[4]))


# find(bridge, target, *, cfg, seed, n, windows, out_dir, exclude_docs, progress) -> (candidates, manifest info)
Finder = Callable[..., tuple[list[Candidate], dict[str, Any]]]


@dataclass
class _Context:
    """What every step needs: config, model, corpus windows, the splits' documents, targets, finder, progress."""

    cfg: SuiteConfig
    bridge: Any
    corpus: Any
    windows: Any
    docs: dict[str, set[int]]
    targets: list[Component]
    find: Finder
    progress: Progress
    partial: PartialBuild | SharedBuild | None = None
    up_to: bool = False  # counts are upper bounds (see build_suite)


def build_suite(cfg: SuiteConfig, dest: str | Path, *, force: bool = False, find: Finder | None = None,
                bridge: Any = None, progress: Progress | None = None, db: str | None = None,
                up_to: bool = False, imported: tuple[list[Example], dict[str, Any]] | None = None) -> Path:
    """Build the suite described by ``cfg`` into ``dest`` (atomically; an existing ``dest`` needs ``force``).

    ``up_to``: the config's counts are upper bounds: a split keeps as many adversarial examples and natural
    controls as hold (even none) instead of stopping the build (``advdla run`` takes what its search found; the
    manifest records how many were asked for and how many held). Published suites keep the default: exact counts.

    ``imported``: examples taken over from another suite (:func:`advdla.suites.imported.import_examples`), with
    what the manifest records about them; each joins its split after the split's own rows (a prompt the build
    made too is kept once).

    A build of the same config interrupted earlier resumes from ``.NAME.partial`` beside ``dest``; with ``db``
    (an SQLAlchemy URL) from that database instead, shared with every other worker given the same URL.
    """
    dest = Path(dest)
    if not db:  # a shared build's worker may join after another saved the suite: its save step reads where
        check_destination(dest, force=force)
    ctx = _context(cfg, bridge, find or search_candidates, progress or silent)
    ctx.up_to = up_to
    key = _build_key(ctx, test_seed=cfg.seed)
    ctx.partial = SharedBuild(db, dest, key) if db else PartialBuild(dest, key)
    examples, search_info, build_info = [], {}, {}
    with ctx.partial.removed_on_error():
        if ctx.partial.shared:  # every search is claimable from the start: dev's and test's run side by side
            ctx.partial.steps([job for split in SPLITS for job in _search_jobs(ctx, split, seed=cfg.seed)])
        for split in SPLITS:
            near = [e.tokens for e in examples]  # the test split keeps its distance from dev
            part, search_info[split], build_info[split] = _split_examples(ctx, split, seed=cfg.seed, near=near)
            examples += part + _joining(imported, split, part, build_info[split])
    manifest = _manifest(ctx, examples, test_seed=cfg.seed, search_info=search_info, build_info=build_info,
                         previous=_previous(dest))
    def write() -> Path:
        return save_suite(examples, manifest, dest, force=force, readme=render_readme(manifest))

    path = ctx.partial.save(dest, write)  # once per machine and destination, however many workers build
    ctx.partial.remove()
    return path


def _joining(imported: tuple[list[Example], dict[str, Any]] | None, split: str, own: list[Example],
             info: dict[str, Any]) -> list[Example]:
    """The imported examples of ``split`` that the build did not make itself; ``info`` records the import."""
    if not imported or imported[1]["split"] != split:
        return []
    ids = {e.example_id for e in own}
    rows = [e.with_split(split) for e in imported[0] if e.example_id not in ids]
    info["imported"] = {**imported[1], "adversarial": sum(e.kind == "adversarial" for e in rows),
                        "natural": sum(e.kind == "natural" for e in rows), "duplicates": len(imported[0]) - len(rows)}
    return rows


def regenerate_test(path: str | Path, *, seed: int, find: Finder | None = None, bridge: Any = None,
                    progress: Progress | None = None) -> Path:
    """Replace the suite's test split by a fresh one (search and natural draws with ``seed``); dev is kept."""
    path = Path(path)
    suite = load_suite(path)
    old = suite.manifest
    if seed in (old.get("test_seed"), old.get("seed")):
        raise AdvdlaError(f"seed {seed} already made this suite's current or original split: pass a new --seed")
    cfg = config_from_dict(old["config"], where=f"{path}/manifest.json config")
    dev = suite.examples(split="dev")
    ctx = _context(cfg, bridge, find or search_candidates, progress or silent)
    if ctx.bridge.advdla_card.weights_fingerprint != old["model_card"]["weights_fingerprint"]:
        raise AdvdlaError(f"model {cfg.model!r} now has other weights than the suite was built on; "
                          f"rebuild the suite instead")
    ctx.partial = PartialBuild(path, _build_key(ctx, test_seed=seed))
    with ctx.partial.removed_on_error():
        test, search_info, build_info = _split_examples(ctx, "test", seed=seed, near=[e.tokens for e in dev])
    manifest = _manifest(ctx, dev + test, test_seed=seed, search_info={**old.get("search", {}), "test": search_info},
                         build_info={**old.get("build", {}), "test": build_info}, previous=old)
    out = save_suite(dev + test, manifest, path, force=True, readme=render_readme(manifest))
    ctx.partial.remove()
    return out


def _context(cfg: SuiteConfig, bridge: Any, find: Finder, progress: Progress) -> _Context:
    bridge = bridge if bridge is not None else load_model(cfg.model)
    if bridge.advdla_card.name != cfg.model:
        raise AdvdlaError(f"the config names model {cfg.model!r} but the bridge given is {bridge.advdla_card.name!r}")
    corpus = load_corpus(cfg.corpus)
    windows = TokenWindows(corpus, bridge.tokenizer)
    docs = split_documents(windows, seed=cfg.seed)
    return _Context(cfg, bridge, corpus, windows, docs, resolve_targets(bridge, cfg, windows), find, progress)


def _build_key(ctx: _Context, *, test_seed: int) -> dict[str, Any]:
    key = {"config": ctx.cfg.to_dict(), "weights": ctx.bridge.advdla_card.weights_fingerprint,
           "corpus": ctx.corpus.fingerprint, "test_seed": test_seed, "schema_version": SCHEMA_VERSION}
    return {**key, "up_to": True} if ctx.up_to else key


def resolve_targets(bridge: Any, cfg: SuiteConfig, windows: Any) -> list[Component]:
    """The config's targets (heads or MLPs); ``auto``: the analysis' top ones (:func:`advdla.erasure.rank_targets`)."""
    if cfg.targets != "auto":
        targets = [parse_component(t, bridge.cfg) for t in cfg.targets]
    else:
        tokens, docs = windows.sample(cfg.seq_len, 16, seed=cfg.seed + 1000)
        resamples = windows.sample(cfg.seq_len, 4, seed=cfg.seed + 1001, exclude=set(docs))[0]
        frame = rank_targets(bridge, tokens, resamples)
        targets = [parse_component(n, bridge.cfg) for n in frame["component"][: cfg.n_auto_targets]]
    bad = [t.name for t in targets if t.kind not in ("head", "mlp")]
    if bad or not targets:
        raise AdvdlaError(f"suite targets must be attention heads (L<l>H<h>) or MLPs (MLP<l>), got {bad or 'none'}")
    return targets


# --------------------------------------------------------------------------------------------- one split


def _split_examples(ctx: _Context, split: str, *, seed: int, near: list[torch.Tensor]
                    ) -> tuple[list[Example], dict[str, Any], dict[str, Any]]:
    """A split's adversarial examples (checked on their final truth) and its natural controls.

    ``near``: the other split's prompts. A candidate sharing more than MAX_SPLIT_OVERLAP of its tokens, position by
    position, with one of them is left out (the search's token pools are shared, so disjoint documents alone do
    not guarantee it): the build enforces the overlap rule that verify checks.
    """
    n_adv = _n_adversarial(ctx, split)
    found, search_info = _adversarial_candidates(ctx, split, seed=seed, n=n_adv)
    cands = [c for c in found if not _too_close(c.tokens, near)]
    adversarial, rejected = _checked_adversarial(ctx, split, cands, n_adv)
    used = set().union(*(c.docs for c in cands)) if cands else set()
    natural, scanned = _natural_candidates(ctx, split, seed=seed, exclude=used, near=near)
    examples = adversarial + ctx.partial.examples([_example_job(ctx, split, "natural", c) for c in natural],
                                                  after=lambda: _tick(ctx, split, "natural"))
    return examples, search_info, {"adversarial_asked": n_adv, "candidates_rejected_on_truth": rejected,
                                   "candidates_too_close_to_other_split": len(found) - len(cands),
                                   "natural_windows_scanned": scanned, "natural_found": len(natural)}


def _too_close(tokens: tuple[int, ...], near: list[torch.Tensor]) -> bool:
    t = torch.tensor(tokens)
    return any(len(o) == len(t) and float((o == t).float().mean()) > MAX_SPLIT_OVERLAP for o in near)


def _other_docs(ctx: _Context, split: str) -> set[int]:
    return ctx.docs["test" if split == "dev" else "dev"]


def _n_adversarial(ctx: _Context, split: str) -> int:
    return ctx.cfg.splits.n_dev if split == "dev" else ctx.cfg.splits.n_test


def _search_jobs(ctx: _Context, split: str, *, seed: int) -> list[tuple[str, Callable[[], Any]]]:
    """One step per target: its search's candidates (as JSON) and what the manifest records about it."""
    per_target = math.ceil(4 * _n_adversarial(ctx, split) / len(ctx.targets))

    def search(i: int, target: Component) -> dict[str, Any]:
        found, meta = ctx.find(ctx.bridge, target, cfg=ctx.cfg, seed=seed + 1000 * i + SPLITS.index(split) * 500,
                               n=per_target, windows=ctx.windows, exclude_docs=_other_docs(ctx, split),
                               out_dir=ctx.partial.search_dir(f"{split}-{target}"), progress=ctx.progress)
        return {"candidates": [c.to_json() for c in found], "meta": meta}

    return [(f"search-{split}-{t}", lambda i=i, t=t: search(i, t)) for i, t in enumerate(ctx.targets)]


def _adversarial_candidates(ctx: _Context, split: str, *, seed: int, n: int) -> tuple[list[Candidate], dict[str, Any]]:
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


def _checked_adversarial(ctx: _Context, split: str, cands: list[Candidate], n: int) -> tuple[list[Example], int]:
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
                      out_dir: Path, exclude_docs: set[int] = frozenset(), progress: Progress = silent
                      ) -> tuple[list[Candidate], dict[str, Any]]:
    """The search engine's verified adversarial examples for one target (:func:`advdla.search.run_search`)."""
    sc = SearchConfig(target=target.name, trials=cfg.search.trials, batch=cfg.search.batch, sampler=cfg.search.sampler,
                      objective=cfg.search.objective, resamples=cfg.method_resamples, seq_len=cfg.seq_len, seed=seed,
                      thresholds=cfg.threshold_values(), max_examples=n, max_verify=n + 4, corpus=cfg.corpus,
                      exclude_docs=tuple(sorted(exclude_docs)))
    result = run_search(bridge, sc, out_dir=out_dir, progress=progress)
    return candidates_from_search(result, target.name)


def candidates_from_search(result: Any, target: str, *, engine: str = "advdla.search.run_search"
                           ) -> tuple[list[Candidate], dict[str, Any]]:
    """A search result's verified examples as suite candidates, and what the manifest records about the search."""
    frame = verified_examples(result.examples)
    near = tuple(sorted(result.summary.get("docs", [])))
    cands = [Candidate(tuple(int(t) for t in row["tokens"]), target, int(row["source_doc"]), int(row["trial"]), near)
             for _, row in frame.iterrows()]
    counts = result.summary.get("counts", {})
    return cands, {"engine": engine, "objective": result.summary.get("objective"),
                   "trials": counts.get("study_complete_trials"),
                   "adversarial_fast": counts.get("study_adversarial_fast"), "verified": len(frame),
                   "rejected_on_verify": counts.get("rejected_on_verify")}


# --------------------------------------------------------------------------------------------- natural controls


def _natural_candidates(ctx: _Context, split: str, *, seed: int, exclude: set[int], near: list[torch.Tensor]
                        ) -> tuple[list[Candidate], int]:
    """Unmanipulated windows of the split's documents where LD > margin and a target is in DLA's top k."""
    def compute() -> dict[str, Any]:
        found, scanned = _scan(ctx, split, seed=seed, exclude=exclude, near=near)
        return {"candidates": [c.to_json() for c in found], "scanned": scanned}

    done = ctx.partial.step(f"natural-{split}", compute)
    return [Candidate.from_json(c) for c in done["candidates"]], done["scanned"]


def _scan(ctx: _Context, split: str, *, seed: int, exclude: set[int], near: list[torch.Tensor], batch: int = 32
          ) -> tuple[list[Candidate], int]:
    cfg, need = ctx.cfg, ctx.cfg.splits.n_natural
    if need == 0:
        return [], 0
    comps, thr, found, scanned = panel_candidates(ctx.bridge.cfg), cfg.threshold_values(), [], 0
    for tokens, docs in _scan_windows(ctx, split, seed=seed, exclude=exclude):
        for start in range(0, len(docs), batch):
            d = dla(ctx.bridge, tokens[start:start + batch], components=comps)
            for j in range(d.values.shape[0]):
                scanned += 1
                target = _natural_target(ctx, d.values[j], float(d.ld[j]), comps, thr, turn=len(found))
                if target is not None and not _too_close(tuple(tokens[start + j].tolist()), near):
                    found.append(Candidate(tuple(tokens[start + j].tolist()), target.name, docs[start + j]))
                    if len(found) == need:
                        return found, scanned
            ctx.progress(Step(f"natural controls ({split})", done=len(found), total=need, info=f"{scanned} scanned"))
    if ctx.up_to:
        return found, scanned
    raise AdvdlaError(f"{split}: {len(found)} of {need} natural controls found in {scanned} corpus windows (LD > "
                      f"margin and a target in DLA's top {thr.top_k}): raise splits.natural_scan or lower "
                      f"splits.n_natural")


def _scan_windows(ctx: _Context, split: str, *, seed: int, exclude: set[int]
                  ) -> Iterator[tuple[torch.Tensor, list[int]]]:
    """Up to ``natural_scan`` windows of the split's documents, in passes of one window per document (each pass a
    fresh seeded draw; a window already scanned, here or in another document, is skipped), so that a small corpus
    offers several windows a document."""
    cfg, left, seen = ctx.cfg, ctx.cfg.splits.natural_scan, set()
    eligible = sum(1 for d in ctx.docs[split] - exclude if ctx.windows.lengths[d] >= cfg.seq_len)
    for p in range(math.ceil(left / eligible) if eligible else 0):
        tokens, docs = ctx.windows.sample(cfg.seq_len, min(left, eligible), seed=seed + 7 + 7919 * p,
                                          exclude=_other_docs(ctx, split) | exclude)
        keep = []
        for i, t in enumerate(map(tuple, tokens.tolist())):
            if t not in seen:  # documents can share text: a window is scanned once
                seen.add(t)
                keep.append(i)
        left -= min(left, eligible)
        if keep:
            yield tokens[keep], [docs[i] for i in keep]


def _natural_target(ctx: _Context, values: torch.Tensor, ld: float, comps: list[Component], thr: Any, *, turn: int
                    ) -> Component | None:
    """The first target, in round-robin order from ``turn``, that this window puts in DLA's top k (LD > margin)."""
    if not ld > thr.margin:
        return None
    k = len(ctx.targets)
    for target in (ctx.targets[(turn + i) % k] for i in range(k)):
        if int(magnitude_rank(values, comps.index(target))) <= thr.top_k:
            return target
    return None


# --------------------------------------------------------------------------------------------- ground truth


def _example_seed(cfg: SuiteConfig, eid: str) -> int:
    """Resample seed from the build seed and the example's id: independent of the example's position."""
    return int(hashlib.sha256(f"{cfg.seed}/{eid}".encode()).hexdigest()[:8], 16)


def _example_job(ctx: _Context, split: str, kind: str, cand: Candidate) -> tuple[str, Callable[[], Example]]:
    """The example's id and how to compute its truth (the build reads it back instead when it is done)."""
    eid = example_id(list(cand.tokens), cand.target, kind)
    return eid, lambda: _truth_example(ctx, split, kind, cand, eid)


def _tick(ctx: _Context, split: str, kind: str) -> None:
    sizes = ctx.cfg.splits
    total = sizes.n_dev + sizes.n_test + 2 * sizes.n_natural  # rejected candidates come on top
    ctx.progress(Step("ground truth", done=ctx.partial.examples_done, total=total, info=f"{split} {kind}"))


def _truth_example(ctx: _Context, split: str, kind: str, cand: Candidate, eid: str) -> Example:
    """One example: two disjoint resample sets avoiding its documents and the other split's, its panel, its truth."""
    cfg, seed = ctx.cfg, _example_seed(ctx.cfg, eid)
    tokens, target = torch.tensor(cand.tokens), parse_component(cand.target, ctx.bridge.cfg)
    sizes = [cfg.resamples, cfg.method_resamples, cfg.panel.screen_resamples]
    truth_res, method_res, screen = disjoint_resamples(ctx.windows, len(cand.tokens), sizes, seed=seed,
                                                       exclude=cand.docs | _other_docs(ctx, split))
    panel = choose_panel(ctx.bridge, tokens, target, policy=cfg.panel, screen=screen)
    truth = ground_truth(ctx.bridge, tokens, truth_res, panel)
    label = target_mechanism(truth, target.name, cfg.threshold_values()) if kind == "adversarial" else "none"
    return Example(example_id=eid, split=split, kind=kind, text=ctx.bridge.tokenizer.decode(list(cand.tokens)),
                   tokens=tokens, resamples=truth_res, method_resamples=method_res, target=target.name, truth=truth,
                   mechanism=label, source_doc=cand.source_doc, trial=cand.trial, resample_seed=seed)


# --------------------------------------------------------------------------------------------- manifest, README


def _previous(dest: Path) -> dict[str, Any] | None:
    """The manifest of the suite about to be replaced (for its changelog), read as plain JSON so that a suite of
    an older schema still hands its changelog on; None when there is none or it is unreadable."""
    try:
        m = json.loads((dest / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return m if isinstance(m, dict) else None


def _chain(ctx: _Context, rows: list[dict[str, Any]], test_seed: int) -> Chain:
    card = ctx.bridge.advdla_card
    chain = Chain().add("weights", {"model": ctx.cfg.model, "sha256": card.weights_fingerprint})
    chain.add("tokenizer", {"sha256": card.tokenizer_fingerprint})
    chain.add("corpus", {"name": ctx.corpus.name, "sha256": ctx.corpus.fingerprint})
    chain.add("config", {"config": ctx.cfg.to_dict()})
    if test_seed != ctx.cfg.seed:
        chain.add("regenerate-test", {"seed": test_seed})
    return chain.add("examples", rows_fingerprint_args(rows))


def _manifest(
    ctx: _Context,
    examples: list[Example],
    *,
    test_seed: int,
    search_info: dict[str, Any],
    build_info: dict[str, Any],
    previous: dict[str, Any] | None,
) -> dict[str, Any]:
    rows = [e.to_row() for e in examples]
    cfg, chain = ctx.cfg, _chain(ctx, rows, test_seed)
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    history = list((previous or {}).get("test_history", [])) if previous and previous.get("name") == cfg.name else []
    history.append({"seed": test_seed, "fingerprint": chain.fingerprint, "created": now})
    m = {
        "schema_version": SCHEMA_VERSION,
        "name": cfg.name,
        "version": cfg.version,
        "description": cfg.description,
        "created": now,
        "advdla_version": advdla.__version__,
        "libraries": library_versions(),
        "model": cfg.model,
        "model_card": ctx.bridge.advdla_card.to_dict(),
        "corpus": {"name": ctx.corpus.name, "fingerprint": ctx.corpus.fingerprint},
        "config": cfg.to_dict(),
        "thresholds": cfg.to_dict()["thresholds"],
        "panel_policy": cfg.to_dict()["panel"],
        "seed": cfg.seed,
        "test_seed": test_seed,
        "test_history": history,
        "splits": split_counts(rows),
        "targets": [t.name for t in ctx.targets],
        "search": search_info,
        "mechanisms": _mechanism_counts(examples),
        "build": build_info,
        "fingerprint": chain.fingerprint,
        "fingerprints": chain.to_list(),
        "files": {},
    }
    m["changelog"] = _changelog(previous, m, regenerated=test_seed != cfg.seed)
    assert set(m) <= set(MANIFEST_FIELDS)
    return m


def _mechanism_counts(examples: list[Example]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {split: {} for split in SPLITS}
    for e in examples:
        if e.kind == "adversarial":
            out[e.split][e.mechanism] = out[e.split].get(e.mechanism, 0) + 1
    return out


def _changelog(previous: dict[str, Any] | None, m: dict[str, Any], *, regenerated: bool) -> list[dict[str, Any]]:
    """Keep the old changelog; add a line when the version moves, the test split is regenerated, or data change."""
    log = list(previous.get("changelog", [])) if previous and previous.get("name") == m["name"] else []
    date = m["created"][:10]
    if not log or log[-1]["version"] != m["version"]:
        note = "first build" if not log else f"version {m['version']} (the config's version moved)"
    elif regenerated:
        note = f"test split regenerated with seed {m['test_seed']}"
    elif previous and previous.get("fingerprint") != m["fingerprint"]:
        note = "rebuilt: same version, different data"
    else:
        return log
    return log + [{"version": m["version"], "date": date, "note": note, "fingerprint": m["fingerprint"]}]


COLUMNS_DOC = """\
| column | per | what it holds |
|---|---|---|
| `example_id`, `split`, `kind` | example | stable id; `dev` or `test`; `adversarial` (searched) or `natural` |
| `text`, `tokens` | example | the prompt |
| `resamples` | example | the truth's R_truth counterfactual texts (same length, other documents) |
| `method_resamples` | example | the R_method texts methods receive: other documents again, never the truth's |
| `t1`, `t2`, `ld` | example | the clean run's top-2 tokens and LD = logit[t1] - logit[t2] (last position) |
| `target` | example | the component the example is about |
| `mechanism` | example | why DLA misleads: `compensation`, `baseline`, `mixed`; `none` for natural controls |
| `source_doc` | example | the corpus document the prompt is built on (the cluster of the bootstrap) |
| `panel` | example | the components that carry truth: every head and MLP (up to 512) |
| `dla` | panel component | direct logit attribution (baseline: a zero output) |
| `te_mean`, `te_std` | panel component | total effect: LD_clean - LD, output from a resample, over `resamples` |
| `de_mean`, `de_std` | panel component | direct effect: the same swap on the direct path to the logits only |
| `ie_mean` | panel component | indirect effect: te_mean - de_mean (what later components do with the output) |
| `te_zero` | panel component | total effect of a zero output (DLA's baseline): dla - te_zero is purely indirect |
"""


def render_readme(m: dict[str, Any]) -> str:
    """The suite folder's README: what it is, its columns, how to load it without advdla, and the changelog."""
    counts = "\n".join(f"| {s} | {c['adversarial']} | {c['natural']} | "
                       f"{', '.join(f'{k} {v}' for k, v in m.get('mechanisms', {}).get(s, {}).items())} |"
                       for s, c in m["splits"].items())
    log = "\n".join(
        f"- v{e['version']} ({e['date']}): {e['note']} (fingerprint {e['fingerprint'][:12]})" for e in m["changelog"]
    )
    thr = ", ".join(f"{k}={v}" for k, v in m["thresholds"].items())
    cfg = m["config"]
    return f"""# {m["name"]} (version {m["version"]})

{m["description"]}

Model `{m["model"]}` (weights {m["model_card"]["weights_fingerprint"][:12]}), corpus `{m["corpus"]["name"]}`,
targets {", ".join(m["targets"])}, R_truth = {cfg["resamples"]}, R_method = {cfg["method_resamples"]},
seed {m["seed"]}, test seed {m["test_seed"]}. Adversarial thresholds: {thr}. Fingerprint: `{m["fingerprint"]}`.

| split | adversarial | natural | mechanisms |
|---|---|---|---|
{counts}

## Columns

{COLUMNS_DOC}
`compensation`: the direct effect carries the DLA (|DE| >= de_share |DLA|) and later components undo it;
`baseline`: the direct effect is small (the output hardly depends on the context) and little happens downstream;
`mixed`: the rest. The truth is independent of what it judges: methods receive only `method_resamples`; the
panel is every head and MLP (no method chooses it); dev and test come from disjoint halves of the corpus's
documents.

Load it without advdla:

```python
import datasets
ds = datasets.load_dataset("parquet", data_files={{"dev": "data/dev.parquet", "test": "data/test.parquet"}})
```

Check it with advdla: `advdla suite verify PATH` (file hashes, fingerprint chain, model weights, split overlap,
each example's consistency, and ground truth re-derived on the model).

## Changelog
{log}
"""
