"""Verify a suite end to end: file hashes, the fingerprint chain, the model, and a sample of re-derived truth.

Context: a suite is only worth citing if anyone can check that its numbers are what the model says. Verify
re-reads everything from disk (never trusting the manifest's own claims), and re-computes the ground truth of
a seeded sample of examples on the model named in the manifest; the first difference stops it with one line.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from advdla.attribution import magnitude_rank
from advdla.components import parse_components
from advdla.criteria import Thresholds
from advdla.errors import AdvdlaError
from advdla.models import load_model
from advdla.suites.fingerprint import Chain, library_versions, sha256_file
from advdla.suites.store import DATA_FILES, Example, read_dataset, read_manifest, rows_fingerprint_args
from advdla.suites.truth import VALUE_COLUMNS, ground_truth, target_mechanism

__all__ = ["verify_suite", "check_splits", "check_example", "check_truth", "library_differences", "TOLERANCE",
           "MAX_SPLIT_OVERLAP"]

TOLERANCE = 1e-4  # |re-derived - stored| allowed for every LD, DLA and effect value
MAX_SPLIT_OVERLAP = 0.3  # share of positions at which a dev and a test prompt may hold the same token


def verify_suite(path: str | Path, *, sample: int = 3, bridge: Any = None, seed: int = 0) -> dict[str, Any]:
    """Check a suite end to end; raise :class:`AdvdlaError` naming the first thing that differs.

    1. every file's sha256 against the manifest; 2. the fingerprint chain, recomputed link by link, its
    'examples' step against the rows actually stored; 3. the model named in the manifest (or ``bridge``):
    its weights and tokenizer fingerprints; 4. the splits: no dev prompt shares more than
    :data:`MAX_SPLIT_OVERLAP` of its tokens, position by position, with a test prompt; 5. every example: its two
    resample sets disjoint from each other and from the prompt, ie_mean = te_mean - de_mean, its mechanism label
    what its stored truth says; 6. the ground truth of ``sample`` seeded-random examples, re-derived on the
    model, within :data:`TOLERANCE`. Returns a summary of what was checked.
    """
    path = Path(path)
    manifest = read_manifest(path)
    _check_files(path, manifest)
    rows = read_dataset(path).to_list()
    chain = _check_chain(manifest, rows)
    bridge = bridge if bridge is not None else load_model(manifest["model"])
    _check_model(bridge, manifest)
    examples = [Example.from_row(r) for r in rows]
    check_splits(examples)
    thresholds = Thresholds(**manifest["thresholds"])
    for e in examples:
        check_example(e, thresholds)
    picked = random.Random(seed).sample(range(len(rows)), min(sample, len(rows)))
    for i in picked:
        check_truth(bridge, examples[i])
    return {
        "path": str(path),
        "files": len(manifest["files"]),
        "chain_steps": len(chain.links),
        "fingerprint": chain.fingerprint,
        "model": manifest["model"],
        "examples_rederived": [rows[i]["example_id"] for i in picked],
    }


def check_splits(examples: list[Example]) -> None:
    """No dev prompt may share more than MAX_SPLIT_OVERLAP of its tokens, position by position, with a test prompt."""
    dev = [e for e in examples if e.split == "dev"]
    test = [e for e in examples if e.split == "test"]
    for d in dev:
        for t in test:
            if len(d.tokens) == len(t.tokens):
                share = float((d.tokens == t.tokens).float().mean())
                if share > MAX_SPLIT_OVERLAP:
                    raise AdvdlaError(f"dev example {d.example_id} and test example {t.example_id} share {share:.0%} "
                                      f"of their tokens position by position (at most {MAX_SPLIT_OVERLAP:.0%}): "
                                      f"the splits leak; rebuild the suite")


def check_example(e: Example, thresholds: Thresholds) -> None:
    """The example's own consistency: disjoint counterfactuals, IE = TE - DE, and the stored mechanism label."""
    where = f"example {e.example_id} ({e.split}, {e.kind})"
    truth_rows, method_rows = {tuple(r) for r in e.resamples.tolist()}, {tuple(r) for r in e.method_resamples.tolist()}
    if truth_rows & method_rows or tuple(e.tokens.tolist()) in truth_rows | method_rows:
        raise AdvdlaError(f"{where}: a method resample equals a truth resample or the prompt: the truth is not "
                          f"independent of what methods see")
    if (e.truth.ie_mean - (e.truth.te_mean - e.truth.de_mean)).abs().max() > TOLERANCE:
        raise AdvdlaError(f"{where}: ie_mean is not te_mean - de_mean")
    label = target_mechanism(e.truth, e.target, thresholds) if e.kind == "adversarial" else "none"
    if label != e.mechanism or (e.kind == "adversarial" and label == "none"):
        raise AdvdlaError(f"{where}: stored mechanism {e.mechanism!r}, its truth says {label!r}")
    rank = int(magnitude_rank(e.truth.dla, e.truth.panel.index(e.target)))
    if e.kind == "natural" and not (rank <= thresholds.top_k and e.truth.ld > thresholds.margin):
        raise AdvdlaError(f"{where}: a natural control must have LD > {thresholds.margin} and its target in DLA's top "
                          f"{thresholds.top_k}; it has LD {e.truth.ld:.3g} and rank {rank}")


def _check_files(path: Path, manifest: dict[str, Any]) -> None:
    expected = set(DATA_FILES.values()) | {"README.md"}
    if set(manifest["files"]) != expected:
        raise AdvdlaError(
            f"suite {path}: manifest lists files {sorted(manifest['files'])}, expected {sorted(expected)}"
        )
    for rel, digest in manifest["files"].items():
        file = path / rel
        if not file.is_file():
            raise AdvdlaError(f"suite {path}: {rel} is missing")
        actual = sha256_file(file)
        if actual != digest:
            raise AdvdlaError(f"suite {path}: {rel} was modified: sha256 {actual[:12]} != manifest {digest[:12]}")


def _check_chain(manifest: dict[str, Any], rows: list[dict[str, Any]]) -> Chain:
    chain = Chain.replay(manifest["fingerprints"])
    if chain.fingerprint != manifest["fingerprint"]:
        raise AdvdlaError(
            f"manifest fingerprint {manifest['fingerprint'][:12]} is not the chain's last link {chain.fingerprint[:12]}"
        )
    card = manifest.get("model_card", {})
    for step, key, value in (
        ("weights", "sha256", card.get("weights_fingerprint")),
        ("tokenizer", "sha256", card.get("tokenizer_fingerprint")),
        ("config", "config", manifest.get("config")),
    ):
        if chain.step(step)["args"].get(key) != value:
            raise AdvdlaError(f"the fingerprint chain's {step} step does not match the manifest's {step}")
    if chain.step("examples")["args"] != rows_fingerprint_args(rows):
        raise AdvdlaError("the stored examples do not match the fingerprint chain's 'examples' step (rows changed)")
    return chain


def _check_model(bridge: Any, manifest: dict[str, Any]) -> None:
    """The model's weights and tokenizer fingerprints are the manifest's, exactly: a registry name means one exact set
    of weights (downloaded ones pinned by sha256, generated ones shipped as files), so a difference is another model.
    The message names both fingerprints and the library versions that differ from the build's."""
    card, want = bridge.advdla_card, manifest.get("model_card", {})
    if card.weights_fingerprint != want.get("weights_fingerprint"):
        raise AdvdlaError(
            f"the suite's files are intact, but model {card.name!r} loaded here has weights "
            f"{card.weights_fingerprint[:12]} and the suite was built on {manifest['model']!r} with weights "
            f"{str(want.get('weights_fingerprint'))[:12]} ({library_differences(manifest)}; the model here comes from "
            f"{card.source}): load the suite's model, or rebuild the suite on this one (`advdla suite build CONFIG "
            f"--force`)"
        )
    if card.tokenizer_fingerprint != want.get("tokenizer_fingerprint"):
        raise AdvdlaError(f"model {card.name!r}: its tokenizer differs from the one the suite was built with "
                          f"({library_differences(manifest)}): use the suite's model and tokenizer")


def library_differences(manifest: dict[str, Any]) -> str:
    """'installed libraries differ from the build's: transformers 5.24.0 -> 5.25.0', or that none does."""
    built, here = manifest.get("libraries") or {}, library_versions()
    diff = [f"{lib} {built[lib]} -> {here.get(lib, 'not installed')}" for lib in sorted(built)
            if built[lib] != here.get(lib, "not installed")]
    return ("installed libraries differ from the build's: " + ", ".join(diff) if diff
            else "the installed libraries are the build's versions")


def check_truth(bridge: Any, example: Example) -> None:
    """Re-derive one example's ground truth on the same tokens, resamples, panel and (t1, t2)."""
    stored = example.truth
    fresh = ground_truth(
        bridge,
        example.tokens,
        example.resamples,
        parse_components(stored.panel, bridge.cfg),
        t1=stored.t1,
        t2=stored.t2,
    )
    where = f"example {example.example_id} ({example.split}, {example.kind})"
    for col in ("t1", "t2"):
        if getattr(fresh, col) != getattr(stored, col):
            raise AdvdlaError(
                f"{where}: {col} is {getattr(fresh, col)} on the model, {getattr(stored, col)} in the suite"
            )
    _within(where, "ld", fresh.ld, stored.ld)
    for col in VALUE_COLUMNS:
        for comp, got, want in zip(stored.panel, getattr(fresh, col).tolist(), getattr(stored, col).tolist()):
            _within(where, f"{col}[{comp}]", got, want)


def _within(where: str, what: str, got: float, want: float) -> None:
    """A re-derived value agrees with the stored one within :data:`TOLERANCE` (NaN never does)."""
    if not abs(got - want) <= TOLERANCE:
        raise AdvdlaError(f"{where}: {what} is {got:.6g} on the model, {want:.6g} in the suite: they differ by "
                          f"{abs(got - want):.3g}, more than the tolerance of {TOLERANCE:g}")
