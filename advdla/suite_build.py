"""Build a suite from its config: search for adversarial prompts, draw natural controls, compute ground truth.

Context: the steps, in order (each a short function below):

1. load the model and the corpus; resolve the targets (a list, or ``auto``: the heads with the largest mean
   DLA share on corpus text);
2. adversarial candidates per target from the search (:func:`advdla.search.run_search`, re-verified there);
   the candidate step is a parameter (``find=``) so tests can hand in a stub;
3. a seeded shuffle assigns them to ``dev`` and ``test`` (disjoint); natural controls are corpus windows of
   the same length from documents the adversarial prompts did not come from;
4. per example: R fresh resamples (seeded by the example's id, never from its own document), the panel
   (:func:`advdla.groundtruth.choose_panel`: every head on small models), and the ground truth on it;
5. rows + manifest (fingerprint chain, versions, thresholds) + README, written atomically (:func:`save_suite`).

``regenerate_test`` redoes steps 2-4 for the test split only, with a new seed, keeping ``dev`` as it is:
a held-out set that nothing could have been tuned on.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import platform
import random
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from advdla.errors import AdvdlaError
from advdla.fingerprint import Chain
from advdla.suite import (MANIFEST_FIELDS, SCHEMA_VERSION, check_destination, example_id, load_suite, read_manifest,
                          rows_fingerprint_args, save_suite, split_counts)
from advdla.suite_config import SuiteConfig, config_from_dict

__all__ = ["Candidate", "build_suite", "regenerate_test", "search_candidates", "candidates_from_search", "resolve_targets", "Finder"]


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
    """What every step needs: config, model, corpus windows, targets, the candidate finder, the progress bar."""

    cfg: SuiteConfig
    bridge: Any
    corpus: Any
    windows: Any
    targets: list[Any]
    find: Finder
    bar: Any


def build_suite(cfg: SuiteConfig, dest: str | Path, *, force: bool = False, find: Finder | None = None,
                bridge: Any = None, show_progress: bool = True) -> Path:
    """Build the suite described by ``cfg`` into ``dest`` (atomically; an existing ``dest`` needs ``force``)."""
    dest = Path(dest)
    check_destination(dest, force=force)
    with _progress(show_progress) as bar:
        ctx = _context(cfg, bridge, find or search_candidates, bar)
        adversarial, search_info = _adversarial(ctx, seed=cfg.seed, n=cfg.splits.n_dev + cfg.splits.n_test, avoid=set())
        dev_adv, test_adv = adversarial[:cfg.splits.n_dev], adversarial[cfg.splits.n_dev:]
        used_docs = set().union(*(c.docs for c in adversarial))
        natural = _natural(ctx, seed=cfg.seed, n=2 * cfg.splits.n_natural, exclude=used_docs)
        specs = [("dev", "adversarial", c) for c in dev_adv] + [("dev", "natural", c) for c in natural[:cfg.splits.n_natural]]
        specs += [("test", "adversarial", c) for c in test_adv] + [("test", "natural", c) for c in natural[cfg.splits.n_natural:]]
        rows = _truth_rows(ctx, specs)
    manifest = _manifest(ctx, rows, test_seed=cfg.seed, search_info=search_info, previous=_previous(dest))
    return save_suite(rows, manifest, dest, force=force, readme=render_readme(manifest))


def regenerate_test(path: str | Path, *, seed: int, find: Finder | None = None, bridge: Any = None,
                    show_progress: bool = True) -> Path:
    """Replace the suite's test split by a fresh one (search and natural draws with ``seed``); dev is kept."""
    path = Path(path)
    suite = load_suite(path)
    old = suite.manifest
    if seed in (old.get("test_seed"), old.get("seed")):
        raise AdvdlaError(f"seed {seed} already made this suite's current or original split: pass a new --seed")
    cfg = config_from_dict(old["config"], where=f"{path}/manifest.json config")
    dev = suite.rows(split="dev")
    with _progress(show_progress) as bar:
        ctx = _context(cfg, bridge, find or search_candidates, bar)
        if ctx.bridge.advdla_card.weights_fingerprint != old["model_card"]["weights_fingerprint"]:
            raise AdvdlaError(f"model {cfg.model!r} now has other weights than the suite was built on; rebuild the suite instead")
        avoid = {tuple(r["tokens"]) for r in dev}
        adversarial, search_info = _adversarial(ctx, seed=seed, n=cfg.splits.n_test, avoid=avoid)
        used_docs = set().union(*(c.docs for c in adversarial)) | {r["doc"] for r in dev}
        natural = _natural(ctx, seed=seed, n=cfg.splits.n_natural, exclude=used_docs)
        rows = dev + _truth_rows(ctx, [("test", "adversarial", c) for c in adversarial] + [("test", "natural", c) for c in natural])
    manifest = _manifest(ctx, rows, test_seed=seed, search_info=search_info, previous=old)
    return save_suite(rows, manifest, path, force=True, readme=render_readme(manifest))


def _progress(show: bool) -> Any:
    from contextlib import nullcontext

    from advdla.report import progress

    return progress() if show else nullcontext(None)


def _context(cfg: SuiteConfig, bridge: Any, find: Finder, bar: Any) -> _Context:
    from advdla.corpus import TokenWindows, load_corpus
    from advdla.models import load_model

    bridge = bridge if bridge is not None else load_model(cfg.model)
    if bridge.advdla_card.name != cfg.model:
        raise AdvdlaError(f"the config names model {cfg.model!r} but the bridge given is {bridge.advdla_card.name!r}")
    corpus = load_corpus(cfg.corpus)
    windows = TokenWindows(corpus, bridge.tokenizer)
    return _Context(cfg, bridge, corpus, windows, resolve_targets(bridge, cfg, windows), find, bar)


def resolve_targets(bridge: Any, cfg: SuiteConfig, windows: Any) -> list[Any]:
    """The config's target heads; ``auto``: the heads whose DLA most overstates their TE on 16 corpus windows."""
    from advdla.components import parse_component

    if cfg.targets != "auto":
        targets = [parse_component(t, bridge.cfg) for t in cfg.targets]
    else:
        from advdla.erasure import overrated_components

        tokens, docs = windows.sample(cfg.seq_len, 16, seed=cfg.seed + 1000)
        resamples = windows.sample(cfg.seq_len, 4, seed=cfg.seed + 1001, exclude=set(docs))[0]
        frame = overrated_components(bridge, tokens, resamples, top=4 * cfg.n_auto_targets + 8)
        names = [n for n in frame["component"] if n.startswith("L")]  # heads only: panels are made of heads
        targets = [parse_component(n, bridge.cfg) for n in names[:cfg.n_auto_targets]]
    bad = [t.name for t in targets if t.kind != "head"]
    if bad or not targets:
        raise AdvdlaError(f"suite targets must be attention heads (L<l>H<h>), got {bad or 'none'}")
    return targets


# --------------------------------------------------------------------------------------------- candidates


def _adversarial(ctx: _Context, *, seed: int, n: int, avoid: set[tuple[int, ...]]) -> tuple[list[Candidate], dict[str, Any]]:
    """n distinct adversarial candidates spread over the targets, seeded-shuffled; raise if the search found fewer."""
    per_target = math.ceil(n / len(ctx.targets))
    pools, info = [], {"seed": seed, "per_target": []}
    with tempfile.TemporaryDirectory(prefix="advdla-suite-search-") as tmp:
        for i, target in enumerate(ctx.targets):
            found, meta = ctx.find(ctx.bridge, target, cfg=ctx.cfg, seed=seed + 1000 * i, n=per_target,
                                   windows=ctx.windows, out_dir=Path(tmp) / target.name, bar=ctx.bar)
            fresh = _distinct([c for c in found if c.tokens not in avoid])
            random.Random(seed).shuffle(fresh)
            pools.append(fresh)
            info["per_target"].append({"target": target.name, "found": len(fresh), **meta})
    picked = _interleave(pools, n)
    if len(picked) < n:
        counts = ", ".join(f"{t.name}: {len(p)}" for t, p in zip(ctx.targets, pools))
        raise AdvdlaError(f"the search found {len(picked)} distinct adversarial examples ({counts}), {n} needed: raise "
                          f"search.trials, loosen thresholds, or lower splits.n_dev/n_test")
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


def search_candidates(bridge: Any, target: Any, *, cfg: SuiteConfig, seed: int, n: int, windows: Any, out_dir: Path,
                      bar: Any = None) -> tuple[list[Candidate], dict[str, Any]]:
    """The search engine's verified adversarial examples for one target (:func:`advdla.search.run_search`)."""
    from advdla.search import SearchConfig, run_search

    sc = SearchConfig(target=target.name, trials=cfg.search.trials, batch=cfg.search.batch, sampler=cfg.search.sampler,
                      resamples=cfg.resamples, seq_len=cfg.seq_len, seed=seed, thresholds=cfg.threshold_values(),
                      max_examples=4 * n, max_verify=n + 4, corpus=cfg.corpus)
    result = run_search(bridge, sc, out_dir=out_dir, progress=bar is not None)
    return candidates_from_search(result, sc, windows, target.name)


def candidates_from_search(result: Any, sc: Any, windows: Any, target: str, *,
                           engine: str = "advdla.search.run_search") -> tuple[list[Candidate], dict[str, Any]]:
    """A search result's verified examples as suite candidates, and what the manifest records about the search."""
    frame = result.examples
    frame = frame[frame["verified"].astype(bool)] if len(frame) else frame
    near = tuple(sorted(_search_docs(windows, sc, result.summary)))
    cands = [Candidate(tuple(int(t) for t in row["tokens"]), target, -1, int(row["trial"]), near)
             for _, row in frame.iterrows()]
    counts = result.summary.get("counts", {})
    return cands, {"engine": engine, "trials": counts.get("study_complete_trials"),
                   "adversarial_fast": counts.get("study_adversarial_fast"), "verified": len(frame),
                   "rejected_on_verify": counts.get("rejected_on_verify")}


def _search_docs(windows: Any, sc: Any, summary: dict[str, Any]) -> set[int]:
    """The corpus documents the search built prompts from (re-drawn as advdla.search.space.build_space draws them)."""
    space = summary.get("space", {})
    docs = windows.sample(2 * sc.seq_len, space.get("n_base", sc.n_base), seed=sc.seed)[1]
    spans = windows.sample(sc.seq_len, space["n_span"], seed=sc.seed + 1, exclude=set(docs))[1] if space.get("n_span") else []
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


def _truth_rows(ctx: _Context, specs: list[tuple[str, str, Candidate]]) -> list[dict[str, Any]]:
    task = ctx.bar.add_task("ground truth", total=len(specs), info="") if ctx.bar is not None else None
    rows = []
    for split, kind, cand in specs:
        rows.append(_truth_row(ctx, split, kind, cand))
        if task is not None:
            ctx.bar.update(task, advance=1, info=f"{split}/{kind}")
    return rows


def _truth_row(ctx: _Context, split: str, kind: str, cand: Candidate) -> dict[str, Any]:
    """One example: seeded resamples avoiding its document, its panel, and its ground truth."""
    import torch

    from advdla.components import parse_component
    from advdla.corpus import resamples_for
    from advdla.groundtruth import ground_truth

    eid = example_id(list(cand.tokens), cand.target, kind)
    seed = _example_seed(ctx.cfg, eid)
    tokens = torch.tensor(cand.tokens)
    resamples = resamples_for(ctx.windows, len(cand.tokens), ctx.cfg.resamples, seed=seed, exclude=cand.docs)
    target = parse_component(cand.target, ctx.bridge.cfg)
    panel = _panel(ctx, tokens, resamples, target, seed)
    truth = ground_truth(ctx.bridge, tokens, resamples, panel, target=target)
    return {"example_id": eid, "split": split, "kind": kind, "text": ctx.bridge.tokenizer.decode(list(cand.tokens)),
            **truth.to_row(), "doc": cand.doc, "trial": cand.trial, "resample_seed": seed}


def _panel(ctx: _Context, tokens: Any, resamples: Any, target: Any, seed: int) -> list[Any]:
    from advdla.attribution import dla
    from advdla.components import head_components
    from advdla.groundtruth import choose_panel

    heads = head_components(ctx.bridge.cfg)
    if len(heads) <= ctx.cfg.panel.max_full:
        return heads
    d = dla(ctx.bridge, tokens[None], components=heads)
    atp = _atp_heads(ctx, tokens, resamples, target, heads, d)
    return choose_panel(ctx.bridge, target, d.values[0], policy=ctx.cfg.panel, seed=seed, atp_heads=atp)


def _atp_heads(ctx: _Context, tokens: Any, resamples: Any, target: Any, heads: list[Any], d: Any) -> Any:
    """AtP estimates of every head (advdla.methods 'atp'), or None where that method is not available."""
    try:
        from advdla.methods import ExampleBatch, get_method
    except ImportError:
        return None
    batch = ExampleBatch(tokens=tokens[None], resamples=resamples[None], t1=d.t1, t2=d.t2, panels=[heads], targets=[target])
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


def _manifest(ctx: _Context, rows: list[dict[str, Any]], *, test_seed: int, search_info: dict[str, Any],
              previous: dict[str, Any] | None) -> dict[str, Any]:
    import advdla

    cfg, chain = ctx.cfg, _chain(ctx, rows, test_seed)
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    history = list((previous or {}).get("test_history", [])) if previous and previous.get("name") == cfg.name else []
    history.append({"seed": test_seed, "fingerprint": chain.fingerprint, "created": now})
    m = {"schema_version": SCHEMA_VERSION, "name": cfg.name, "version": cfg.version, "description": cfg.description,
         "created": now, "advdla_version": advdla.__version__, "libraries": _libraries(), "model": cfg.model,
         "model_card": ctx.bridge.advdla_card.to_dict(), "corpus": {"name": ctx.corpus.name, "fingerprint": ctx.corpus.fingerprint},
         "config": cfg.to_dict(), "thresholds": cfg.to_dict()["thresholds"], "panel_policy": dataclasses.asdict(cfg.panel),
         "seed": cfg.seed, "test_seed": test_seed, "test_history": history, "splits": split_counts(rows),
         "targets": [t.name for t in ctx.targets], "search": search_info, "fingerprint": chain.fingerprint,
         "fingerprints": chain.to_list(), "files": {}}
    m["changelog"] = _changelog(previous, m, regenerated=test_seed != cfg.seed)
    assert set(m) <= set(MANIFEST_FIELDS)
    return m


def _changelog(previous: dict[str, Any] | None, m: dict[str, Any], *, regenerated: bool) -> list[dict[str, Any]]:
    """Keep the old suite's changelog; add a line when the version moves, the test split is regenerated, or data change."""
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
    import importlib.metadata as md

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
    log = "\n".join(f"- v{e['version']} ({e['date']}): {e['note']} (fingerprint {e['fingerprint'][:12]})" for e in m["changelog"])
    thr = ", ".join(f"{k}={v}" for k, v in m["thresholds"].items())
    return f"""# {m['name']} (version {m['version']})

{m['description']}

Model `{m['model']}` (weights {m['model_card']['weights_fingerprint'][:12]}), corpus `{m['corpus']['name']}`,
targets {', '.join(m['targets'])}, R = {m['config']['resamples']} resamples, seed {m['seed']}, test seed {m['test_seed']}.
Adversarial thresholds: {thr}. Fingerprint: `{m['fingerprint']}`.

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
