"""Build a suite from its config: search for adversarial prompts, draw natural controls, compute ground truth.

Context: the steps, in order (each a short function below):

1. load the model and the corpus; resolve the targets (a list, or ``auto``: the heads with the largest mean
   DLA share on corpus text);
2. adversarial candidates per target from the search (:func:`advdla.search.run_search`, re-verified there);
   the candidate step is a parameter (``find=``) so tests can hand in a stub;
3. a seeded shuffle assigns them to ``dev`` and ``test`` (disjoint); natural controls are corpus windows of
   the same length from documents the adversarial prompts did not come from;
4. per example: R fresh resamples (seeded by the example's id, never from its own document), the panel
   (:func:`advdla.suites.truth.choose_panel`: every head on small models), and the ground truth on it;
5. examples + manifest (fingerprint chain, versions, thresholds) + README, written atomically
   (:func:`advdla.suites.store.save_suite`).

Progress goes through a callback (:mod:`advdla.progress`): one step per example whose truth is done.

``regenerate_test`` redoes steps 2-4 for the test split only, with a new seed, keeping ``dev`` as it is:
a held-out set that nothing could have been tuned on.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata as md
import math
import platform
import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

import advdla
from advdla.attribution import dla
from advdla.components import Component, head_components, parse_component
from advdla.corpus import TokenWindows, load_corpus, resamples_for
from advdla.erasure import rank_targets
from advdla.errors import AdvdlaError
from advdla.methods import ExampleBatch, get_method
from advdla.models import load_model
from advdla.progress import Progress, Step, silent
from advdla.search import SearchConfig, run_search, verified_examples
from advdla.suites.config import SuiteConfig, config_from_dict
from advdla.suites.fingerprint import Chain
from advdla.suites.store import (
    MANIFEST_FIELDS,
    SCHEMA_VERSION,
    Example,
    check_destination,
    example_id,
    load_suite,
    read_manifest,
    rows_fingerprint_args,
    save_suite,
    split_counts,
)
from advdla.suites.truth import choose_panel, ground_truth

__all__ = [
    "Candidate",
    "build_suite",
    "regenerate_test",
    "search_candidates",
    "candidates_from_search",
    "resolve_targets",
    "Finder",
]


@dataclass(frozen=True)
class Candidate:
    """A prompt to put in the suite: its tokens, target, the corpus document it came from (-1: unknown), its trial."""

    tokens: tuple[int, ...]
    target: str
    doc: int = -1
    trial: int = -1
    near_docs: tuple[int, ...] = ()  # documents the prompt may have borrowed from: resamples and controls avoid them

    @property
    def docs(self) -> set[int]:
        return ({self.doc} if self.doc >= 0 else set()) | set(self.near_docs)


# find(bridge, target, *, cfg, seed, n, windows, out_dir) -> (candidates, info for the manifest)
Finder = Callable[..., tuple[list[Candidate], dict[str, Any]]]


@dataclass
class _Context:
    """What every step needs: config, model, corpus windows, targets, the candidate finder, the progress callback."""

    cfg: SuiteConfig
    bridge: Any
    corpus: Any
    windows: Any
    targets: list[Component]
    find: Finder
    progress: Progress


def build_suite(
    cfg: SuiteConfig,
    dest: str | Path,
    *,
    force: bool = False,
    find: Finder | None = None,
    bridge: Any = None,
    progress: Progress | None = None,
) -> Path:
    """Build the suite described by ``cfg`` into ``dest`` (atomically; an existing ``dest`` needs ``force``)."""
    dest = Path(dest)
    check_destination(dest, force=force)
    ctx = _context(cfg, bridge, find or search_candidates, progress or silent)
    n_nat = cfg.splits.n_natural
    adversarial, search_info = _adversarial(ctx, seed=cfg.seed, n=cfg.splits.n_dev + cfg.splits.n_test, avoid=set())
    dev_adv, test_adv = adversarial[: cfg.splits.n_dev], adversarial[cfg.splits.n_dev :]
    used_docs = set().union(*(c.docs for c in adversarial))
    natural = _natural(ctx, seed=cfg.seed, n=2 * n_nat, exclude=used_docs)
    specs = [("dev", "adversarial", c) for c in dev_adv] + [("dev", "natural", c) for c in natural[:n_nat]]
    specs += [("test", "adversarial", c) for c in test_adv] + [("test", "natural", c) for c in natural[n_nat:]]
    examples = _truth_examples(ctx, specs)
    manifest = _manifest(ctx, examples, test_seed=cfg.seed, search_info=search_info, previous=_previous(dest))
    return save_suite(examples, manifest, dest, force=force, readme=render_readme(manifest))


def regenerate_test(
    path: str | Path, *, seed: int, find: Finder | None = None, bridge: Any = None, progress: Progress | None = None
) -> Path:
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
        raise AdvdlaError(
            f"model {cfg.model!r} now has other weights than the suite was built on; rebuild the suite instead"
        )
    avoid = {tuple(e.tokens.tolist()) for e in dev}
    adversarial, search_info = _adversarial(ctx, seed=seed, n=cfg.splits.n_test, avoid=avoid)
    used_docs = set().union(*(c.docs for c in adversarial)) | {e.doc for e in dev}
    natural = _natural(ctx, seed=seed, n=cfg.splits.n_natural, exclude=used_docs)
    specs = [("test", "adversarial", c) for c in adversarial] + [("test", "natural", c) for c in natural]
    examples = dev + _truth_examples(ctx, specs)
    manifest = _manifest(ctx, examples, test_seed=seed, search_info=search_info, previous=old)
    return save_suite(examples, manifest, path, force=True, readme=render_readme(manifest))


def _context(cfg: SuiteConfig, bridge: Any, find: Finder, progress: Progress) -> _Context:
    bridge = bridge if bridge is not None else load_model(cfg.model)
    if bridge.advdla_card.name != cfg.model:
        raise AdvdlaError(f"the config names model {cfg.model!r} but the bridge given is {bridge.advdla_card.name!r}")
    corpus = load_corpus(cfg.corpus)
    windows = TokenWindows(corpus, bridge.tokenizer)
    return _Context(cfg, bridge, corpus, windows, resolve_targets(bridge, cfg, windows), find, progress)


def resolve_targets(bridge: Any, cfg: SuiteConfig, windows: Any) -> list[Component]:
    """The config's target heads; ``auto``: the analysis' top heads (:func:`advdla.erasure.rank_targets`)."""
    if cfg.targets != "auto":
        targets = [parse_component(t, bridge.cfg) for t in cfg.targets]
    else:
        tokens, docs = windows.sample(cfg.seq_len, 16, seed=cfg.seed + 1000)
        resamples = windows.sample(cfg.seq_len, 4, seed=cfg.seed + 1001, exclude=set(docs))[0]
        frame = rank_targets(bridge, tokens, resamples)
        targets = [parse_component(n, bridge.cfg) for n in frame["component"][: cfg.n_auto_targets]]
    bad = [t.name for t in targets if t.kind != "head"]
    if bad or not targets:
        raise AdvdlaError(f"suite targets must be attention heads (L<l>H<h>), got {bad or 'none'}")
    return targets


# --------------------------------------------------------------------------------------------- candidates


def _adversarial(
    ctx: _Context, *, seed: int, n: int, avoid: set[tuple[int, ...]]
) -> tuple[list[Candidate], dict[str, Any]]:
    """n distinct adversarial candidates spread over the targets, seeded-shuffled; raise if the search found fewer."""
    per_target = math.ceil(n / len(ctx.targets))
    pools, info = [], {"seed": seed, "per_target": []}
    with tempfile.TemporaryDirectory(prefix="advdla-suite-search-") as tmp:
        for i, target in enumerate(ctx.targets):
            found, meta = ctx.find(
                ctx.bridge,
                target,
                cfg=ctx.cfg,
                seed=seed + 1000 * i,
                n=per_target,
                windows=ctx.windows,
                out_dir=Path(tmp) / target.name,
                progress=ctx.progress,
            )
            fresh = _distinct([c for c in found if c.tokens not in avoid])
            random.Random(seed).shuffle(fresh)
            pools.append(fresh)
            info["per_target"].append({"target": target.name, "found": len(fresh), **meta})
    picked = _interleave(pools, n)
    if len(picked) < n:
        counts = ", ".join(f"{t.name}: {len(p)}" for t, p in zip(ctx.targets, pools))
        raise AdvdlaError(
            f"the search found {len(picked)} distinct adversarial examples ({counts}), {n} needed: raise "
            f"search.trials, loosen thresholds, or lower splits.n_dev/n_test"
        )
    random.Random(seed + 1).shuffle(picked)
    return picked, info


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


def search_candidates(
    bridge: Any,
    target: Component,
    *,
    cfg: SuiteConfig,
    seed: int,
    n: int,
    windows: Any,
    out_dir: Path,
    progress: Progress = silent,
) -> tuple[list[Candidate], dict[str, Any]]:
    """The search engine's verified adversarial examples for one target (:func:`advdla.search.run_search`)."""
    sc = SearchConfig(
        target=target.name,
        trials=cfg.search.trials,
        batch=cfg.search.batch,
        sampler=cfg.search.sampler,
        resamples=cfg.resamples,
        seq_len=cfg.seq_len,
        seed=seed,
        thresholds=cfg.threshold_values(),
        max_examples=4 * n,
        max_verify=n + 4,
        corpus=cfg.corpus,
    )
    result = run_search(bridge, sc, out_dir=out_dir, progress=progress)
    return candidates_from_search(result, sc, windows, target.name)


def candidates_from_search(
    result: Any, sc: Any, windows: Any, target: str, *, engine: str = "advdla.search.run_search"
) -> tuple[list[Candidate], dict[str, Any]]:
    """A search result's verified examples as suite candidates, and what the manifest records about the search."""
    frame = verified_examples(result.examples)
    near = tuple(sorted(_search_docs(windows, sc, result.summary)))
    cands = [
        Candidate(tuple(int(t) for t in row["tokens"]), target, -1, int(row["trial"]), near)
        for _, row in frame.iterrows()
    ]
    counts = result.summary.get("counts", {})
    return cands, {
        "engine": engine,
        "trials": counts.get("study_complete_trials"),
        "adversarial_fast": counts.get("study_adversarial_fast"),
        "verified": len(frame),
        "rejected_on_verify": counts.get("rejected_on_verify"),
    }


def _search_docs(windows: Any, sc: Any, summary: dict[str, Any]) -> set[int]:
    """The corpus documents the search built prompts from (re-drawn as advdla.search.space.build_space draws them)."""
    space = summary.get("space", {})
    docs = windows.sample(2 * sc.seq_len, space.get("n_base", sc.n_base), seed=sc.seed)[1]
    spans = (
        windows.sample(sc.seq_len, space["n_span"], seed=sc.seed + 1, exclude=set(docs))[1]
        if space.get("n_span")
        else []
    )
    return set(docs) | set(spans)


def _natural(ctx: _Context, *, seed: int, n: int, exclude: set[int]) -> list[Candidate]:
    """n corpus windows of the prompts' length from unused documents; targets assigned round-robin."""
    if n == 0:
        return []
    tokens, docs = ctx.windows.sample(ctx.cfg.seq_len, n, seed=seed + 7, exclude=exclude)
    return [Candidate(tuple(tokens[i].tolist()), ctx.targets[i % len(ctx.targets)].name, docs[i]) for i in range(n)]


# --------------------------------------------------------------------------------------------- ground truth


def _example_seed(cfg: SuiteConfig, eid: str) -> int:
    """Resample seed from the build seed and the example's id: independent of the example's position."""
    return int(hashlib.sha256(f"{cfg.seed}/{eid}".encode()).hexdigest()[:8], 16)


def _truth_examples(ctx: _Context, specs: list[tuple[str, str, Candidate]]) -> list[Example]:
    examples = []
    for i, (split, kind, cand) in enumerate(specs):
        examples.append(_truth_example(ctx, split, kind, cand))
        ctx.progress(Step("ground truth", done=i + 1, total=len(specs), info=f"{split}/{kind}"))
    return examples


def _truth_example(ctx: _Context, split: str, kind: str, cand: Candidate) -> Example:
    """One example: seeded resamples avoiding its document, its panel, and its ground truth."""
    eid = example_id(list(cand.tokens), cand.target, kind)
    seed = _example_seed(ctx.cfg, eid)
    tokens = torch.tensor(cand.tokens)
    resamples = resamples_for(ctx.windows, len(cand.tokens), ctx.cfg.resamples, seed=seed, exclude=cand.docs)
    target = parse_component(cand.target, ctx.bridge.cfg)
    panel = _panel(ctx, tokens, resamples, target, seed)
    truth = ground_truth(ctx.bridge, tokens, resamples, panel)
    return Example(
        example_id=eid,
        split=split,
        kind=kind,
        text=ctx.bridge.tokenizer.decode(list(cand.tokens)),
        tokens=tokens,
        resamples=resamples,
        target=target.name,
        truth=truth,
        doc=cand.doc,
        trial=cand.trial,
        resample_seed=seed,
    )


def _panel(ctx: _Context, tokens: Any, resamples: Any, target: Component, seed: int) -> list[Component]:
    heads = head_components(ctx.bridge.cfg)
    if len(heads) <= ctx.cfg.panel.max_full:
        return heads
    d = dla(ctx.bridge, tokens[None], components=heads)
    atp = _atp_heads(ctx, tokens, resamples, target, heads, d)
    return choose_panel(ctx.bridge, target, d.values[0], policy=ctx.cfg.panel, seed=seed, atp_heads=atp)


def _atp_heads(ctx: _Context, tokens: Any, resamples: Any, target: Any, heads: list[Any], d: Any) -> Any:
    """AtP estimates of every head (advdla.methods 'atp')."""
    batch = ExampleBatch(
        tokens=tokens[None], resamples=resamples[None], t1=d.t1, t2=d.t2, panels=[heads], targets=[target]
    )
    return get_method("atp").attribute(ctx.bridge, batch)[0]


# --------------------------------------------------------------------------------------------- manifest, README


def _previous(dest: Path) -> dict[str, Any] | None:
    """The manifest of the suite about to be replaced (for its changelog), if it is readable."""
    try:
        return read_manifest(dest) if dest.exists() else None
    except AdvdlaError:
        return None


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
        "libraries": _libraries(),
        "model": cfg.model,
        "model_card": ctx.bridge.advdla_card.to_dict(),
        "corpus": {"name": ctx.corpus.name, "fingerprint": ctx.corpus.fingerprint},
        "config": cfg.to_dict(),
        "thresholds": cfg.to_dict()["thresholds"],
        "panel_policy": dataclasses.asdict(cfg.panel),
        "seed": cfg.seed,
        "test_seed": test_seed,
        "test_history": history,
        "splits": split_counts(rows),
        "targets": [t.name for t in ctx.targets],
        "search": search_info,
        "fingerprint": chain.fingerprint,
        "fingerprints": chain.to_list(),
        "files": {},
    }
    m["changelog"] = _changelog(previous, m, regenerated=test_seed != cfg.seed)
    assert set(m) <= set(MANIFEST_FIELDS)
    return m


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


def _libraries() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for lib in ("torch", "transformers", "transformer-lens", "datasets", "pyarrow", "numpy", "optuna"):
        try:
            out[lib] = md.version(lib)
        except md.PackageNotFoundError:
            out[lib] = "not installed"
    return out


def render_readme(m: dict[str, Any]) -> str:
    """The suite folder's README: what it is, how to load it without advdla, and the changelog."""
    counts = "\n".join(f"| {s} | {c['adversarial']} | {c['natural']} |" for s, c in m["splits"].items())
    log = "\n".join(
        f"- v{e['version']} ({e['date']}): {e['note']} (fingerprint {e['fingerprint'][:12]})" for e in m["changelog"]
    )
    thr = ", ".join(f"{k}={v}" for k, v in m["thresholds"].items())
    return f"""# {m["name"]} (version {m["version"]})

{m["description"]}

Model `{m["model"]}` (weights {m["model_card"]["weights_fingerprint"][:12]}), corpus `{m["corpus"]["name"]}`,
targets {", ".join(m["targets"])}, R = {m["config"]["resamples"]} resamples, seed {m["seed"]},
test seed {m["test_seed"]}.
Adversarial thresholds: {thr}. Fingerprint: `{m["fingerprint"]}`.

| split | adversarial | natural |
|---|---|---|
{counts}

Load it without advdla:

```python
import datasets
ds = datasets.load_dataset("parquet", data_files={{"dev": "data/dev.parquet", "test": "data/test.parquet"}})
```

Check it with advdla: `advdla suite verify PATH` (file hashes, fingerprint chain, model weights, ground truth).

## Changelog
{log}
"""
