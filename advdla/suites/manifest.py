"""A suite's manifest (what it is, how it was built, its fingerprint chain, its changelog) and its README.

Context: a suite folder describes itself (as lm-evaluation-harness results do): the manifest records the config,
the model card, the corpus, the library versions, the counts per split and mechanism, what the search and the
build did, and the fingerprint chain; the README says the same for a reader, with the columns
(:data:`COLUMNS_DOC`) and how to load the data without advdla. Every field is listed, with its meaning, in
:data:`advdla.suites.store.MANIFEST_FIELDS`.

Intuition: the fingerprint is a chain, as in HF datasets (each link the hash of the previous one plus the step's
name and arguments): model weights -> tokenizer -> corpus -> config -> (a regenerated test split's seed) ->
examples. The same steps give the same fingerprint, on any machine; the build time (``created``) is recorded
but never hashed. A rebuild hands on the replaced suite's changelog and test history, adding a line when the
version moves, the test split is regenerated, or the data change.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import advdla
from advdla.suites.context import BuildContext
from advdla.suites.fingerprint import Chain, library_versions
from advdla.suites.store import MANIFEST_FIELDS, SCHEMA_VERSION, SPLITS, Example, rows_fingerprint_args, split_counts

__all__ = ["COLUMNS_DOC", "build_manifest", "previous_manifest", "render_readme"]


def previous_manifest(dest: Path) -> dict[str, Any] | None:
    """The manifest of the suite about to be replaced (for its changelog), read as plain JSON so that a suite of
    an older schema still hands its changelog on; None when there is none or it is unreadable."""
    try:
        m = json.loads((dest / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return m if isinstance(m, dict) else None


def _chain(ctx: BuildContext, rows: list[dict[str, Any]], test_seed: int) -> Chain:
    """The fingerprint chain: weights -> tokenizer -> corpus -> config (-> a regenerated test seed) -> examples."""
    card = ctx.bridge.advdla_card
    chain = Chain().add("weights", {"model": ctx.cfg.model, "sha256": card.weights_fingerprint})
    chain.add("tokenizer", {"sha256": card.tokenizer_fingerprint})
    chain.add("corpus", {"name": ctx.corpus.name, "sha256": ctx.corpus.fingerprint})
    chain.add("config", {"config": ctx.cfg.to_dict()})
    if test_seed != ctx.cfg.seed:
        chain.add("regenerate-test", {"seed": test_seed})
    return chain.add("examples", rows_fingerprint_args(rows))


def build_manifest(ctx: BuildContext, examples: list[Example], *, test_seed: int, search_info: dict[str, Any],
                   build_info: dict[str, Any], previous: dict[str, Any] | None) -> dict[str, Any]:
    """The manifest of a suite of ``examples`` built in ``ctx`` (``previous``: the one it replaces, or None)."""
    rows = [e.to_row() for e in examples]
    cfg, chain = ctx.cfg, _chain(ctx, rows, test_seed)
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
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
        "test_history": _test_history(previous, cfg.name, {"seed": test_seed, "fingerprint": chain.fingerprint,
                                                           "created": now}),
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


def _test_history(previous: dict[str, Any] | None, name: str, entry: dict[str, Any]) -> list[dict[str, Any]]:
    """Every test split the suite has had: the replaced suite's (if it is the same suite), then ``entry``."""
    history = list(previous.get("test_history", [])) if previous and previous.get("name") == name else []
    return history + [entry]


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
