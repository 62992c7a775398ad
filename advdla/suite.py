"""Benchmark suites on disk: the schema, loading, atomic saving, verification and a summary.

Context: a suite is the benchmark's data: prompts (adversarial ones found by the search, natural controls
drawn from the corpus) with causal ground truth per component of each example's panel (see
:mod:`advdla.groundtruth`). Users must be able to trust it, so a suite folder holds only data (nothing that
executes when loaded) and describes itself:

    suites/NAME/
      data/dev.parquet, data/test.parquet   one row per example (Truth.to_row() + example_id, split, kind, ...)
      manifest.json                          name, version, fingerprint chain, file hashes, thresholds, ...
      README.md                              what it is, and a changelog line per version

Any tool reads it: ``datasets.load_dataset("parquet", data_files={"dev": ..., "test": ...})``. The
fingerprint chain (:mod:`advdla.fingerprint`) runs model weights -> tokenizer -> corpus -> config [->
test split regenerated] -> examples; :func:`verify_suite` recomputes it, the file hashes, and a sample of
the ground truth on the model itself. Building lives in :mod:`advdla.suite_build`.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from advdla.errors import AdvdlaError
from advdla.fingerprint import Chain, canonical_json, hash_rows, sha256_file

__all__ = ["SCHEMA_VERSION", "Suite", "load_suite", "save_suite", "verify_suite", "suite_info", "example_id",
           "TRUTH_COLUMNS", "VALUE_COLUMNS", "MANIFEST_FIELDS", "SPLITS", "KINDS"]

SCHEMA_VERSION = 1
SPLITS = ("dev", "test")
KINDS = ("adversarial", "natural")
DATA_FILES = {split: f"data/{split}.parquet" for split in SPLITS}
# Per-panel-component ground-truth columns (lists aligned with ``panel``), compared by verify within TOLERANCE.
VALUE_COLUMNS = ("dla", "te_mean", "te_std", "oe_mean", "oe_std", "de_mean", "de_std")
TRUTH_COLUMNS = ("tokens", "resamples", "t1", "t2", "ld", "target", "panel", *VALUE_COLUMNS)
ROW_COLUMNS = ("example_id", "split", "kind", "text", *TRUTH_COLUMNS)
TOLERANCE = 1e-4
MANIFEST_FIELDS = {
    "schema_version": "integer; this code reads up to SCHEMA_VERSION",
    "name": "the suite's name", "version": "integer, from the config; a new version adds a changelog line",
    "description": "one paragraph", "created": "UTC time of the build (not fingerprinted)",
    "advdla_version": "advdla that built it", "libraries": "library versions that built it",
    "model": "registry name of the model", "model_card": "advdla.models.ModelCard as a dict",
    "corpus": "{name, fingerprint}", "config": "the suite config, canonical", "thresholds": "adversarial cut-offs",
    "panel_policy": "advdla.groundtruth.PanelPolicy as a dict", "seed": "build seed", "test_seed": "seed of the test split",
    "test_history": "every test split this suite has had: [{seed, fingerprint, created}]",
    "splits": "{split: {kind: count}}", "targets": "target components", "search": "what the search did",
    "fingerprint": "the chain's last link", "fingerprints": "the chain: [{step, args, fingerprint}]",
    "files": "{relative path: sha256}", "changelog": "[{version, date, note, fingerprint}]",
}


@dataclass
class Suite:
    """A loaded suite: ``dataset`` (an HF ``datasets.Dataset``, dev rows then test rows) and its ``manifest``."""

    path: Path
    dataset: Any
    manifest: dict[str, Any]

    @property
    def name(self) -> str:
        return self.manifest["name"]

    @property
    def version(self) -> int:
        return self.manifest["version"]

    @property
    def fingerprint(self) -> str:
        return self.manifest["fingerprint"]

    def rows(self, split: str | None = None, kind: str | None = None) -> list[dict[str, Any]]:
        """The examples as dicts, optionally only one split ('dev'|'test') and/or kind ('adversarial'|'natural')."""
        _check_choice("split", split, SPLITS)
        _check_choice("kind", kind, KINDS)
        return [r for r in self.dataset.to_list()
                if (split is None or r["split"] == split) and (kind is None or r["kind"] == kind)]

    def __len__(self) -> int:
        return len(self.dataset)


def _check_choice(what: str, value: str | None, allowed: tuple[str, ...]) -> None:
    if value is not None and value not in allowed:
        raise AdvdlaError(f"unknown {what} {value!r}: use one of {', '.join(allowed)}")


def example_id(tokens: list[int], target: str, kind: str) -> str:
    """Stable id: the same prompt, target and kind always get the same 16 hex digits."""
    return hashlib.sha256(canonical_json([tokens, target, kind]).encode()).hexdigest()[:16]


# --------------------------------------------------------------------------------------------- loading


def load_suite(path: str | Path) -> Suite:
    """Read a suite folder (Parquet + JSON only: nothing in it is executed). Bad folders raise one-line errors."""
    path = Path(path)
    manifest = read_manifest(path)
    return Suite(path, _read_dataset(path), manifest)


def read_manifest(path: Path) -> dict[str, Any]:
    file = path / "manifest.json"
    if not path.is_dir():
        raise AdvdlaError(f"suite {path}: no such directory; build one with `advdla suite build suites/NAME.yaml`")
    if not file.is_file():
        raise AdvdlaError(f"suite {path}: manifest.json is missing; this is not a suite folder (or it is incomplete)")
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AdvdlaError(f"suite {path}: manifest.json is not valid JSON ({exc})") from None
    _check_manifest(manifest, path)
    return manifest


def _check_manifest(m: Any, path: Path) -> None:
    if not isinstance(m, dict):
        raise AdvdlaError(f"suite {path}: manifest.json must hold a JSON object")
    schema = m.get("schema_version")
    if not isinstance(schema, int):
        raise AdvdlaError(f"suite {path}: manifest.json has no integer schema_version")
    if schema > SCHEMA_VERSION:
        raise AdvdlaError(f"suite {path}: schema version {schema} is newer than this advdla understands "
                          f"({SCHEMA_VERSION}); upgrade advdla")
    unknown = sorted(set(m) - set(MANIFEST_FIELDS))
    if unknown:
        raise AdvdlaError(f"suite {path}: unknown manifest field(s) {', '.join(unknown)}; "
                          f"known fields: {', '.join(MANIFEST_FIELDS)}")
    missing = sorted(k for k in ("name", "version", "fingerprint", "fingerprints", "files", "model") if k not in m)
    if missing:
        raise AdvdlaError(f"suite {path}: manifest.json lacks {', '.join(missing)}")


def _read_dataset(path: Path) -> Any:
    """Both splits as one Dataset via pyarrow (no dataset scripts, no cache writes)."""
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = []
    for split, rel in DATA_FILES.items():
        file = path / rel
        if not file.is_file():
            raise AdvdlaError(f"suite {path}: {rel} is missing; the suite is incomplete (rebuild it)")
        try:
            tables.append(pq.read_table(file))
        except (pa.ArrowInvalid, OSError) as exc:
            raise AdvdlaError(f"suite {path}: {rel} is not a readable Parquet file ({str(exc)[:120]})") from None
    try:
        table = pa.concat_tables(tables, promote_options="permissive")
    except pa.ArrowInvalid as exc:
        raise AdvdlaError(f"suite {path}: the split files have incompatible columns ({str(exc)[:120]})") from None
    missing = [c for c in ROW_COLUMNS if c not in table.column_names]
    if missing:
        raise AdvdlaError(f"suite {path}: the data lacks column(s) {', '.join(missing)}")
    return datasets.Dataset(table.replace_schema_metadata(None))


# --------------------------------------------------------------------------------------------- saving


def save_suite(rows: list[dict[str, Any]], manifest: dict[str, Any], dest: str | Path, *, force: bool = False,
               readme: str) -> Path:
    """Write a suite atomically: into a temporary folder next to ``dest``, then ``os.replace``.

    An existing ``dest`` is an error unless ``force``; then it is first moved aside to ``DEST.old-TIME`` (never
    deleted), so a suite is never overwritten silently. Fills ``manifest['files']`` with the files' sha256.
    """
    dest = Path(dest)
    check_destination(dest, force=force)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _write_files(tmp, rows, manifest, readme)
        if dest.exists():
            aside = dest.parent / f"{dest.name}.old-{time.strftime('%Y%m%d-%H%M%S')}"
            os.replace(dest, aside)
        os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def check_destination(dest: Path, *, force: bool) -> None:
    """Refuse to overwrite an existing suite unless ``force`` (checked before building, to fail fast)."""
    if dest.exists() and not force:
        raise AdvdlaError(f"{dest} already exists: pass --force to replace it (the old one is moved aside), "
                          f"or choose another --out")


def _write_files(tmp: Path, rows: list[dict[str, Any]], manifest: dict[str, Any], readme: str) -> None:
    import datasets
    import pyarrow.parquet as pq

    (tmp / "data").mkdir(parents=True)
    files = {}
    for split, rel in DATA_FILES.items():
        part = [r for r in rows if r["split"] == split]
        table = datasets.Dataset.from_list(part, features=_features(rows)).data.table
        pq.write_table(table, tmp / rel)  # plain pyarrow: no progress bar, HF schema metadata kept
        files[rel] = sha256_file(tmp / rel)
    (tmp / "README.md").write_text(readme, encoding="utf-8")
    files["README.md"] = sha256_file(tmp / "README.md")
    manifest["files"] = files
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def _features(rows: list[dict[str, Any]]) -> Any:
    """Explicit column types, so an empty split still has the full schema and ints stay ints."""
    import datasets

    ints, floats, strs = datasets.Value("int64"), datasets.Value("float64"), datasets.Value("string")
    spec: dict[str, Any] = {"example_id": strs, "split": strs, "kind": strs, "text": strs,
                            "tokens": datasets.Sequence(ints), "resamples": datasets.Sequence(datasets.Sequence(ints)),
                            "t1": ints, "t2": ints, "ld": floats, "target": strs, "panel": datasets.Sequence(strs)}
    spec.update({c: datasets.Sequence(floats) for c in VALUE_COLUMNS})
    for key, value in (rows[0].items() if rows else []):
        if key not in spec:
            spec[key] = ints if isinstance(value, int) else floats if isinstance(value, float) else strs
    return datasets.Features(spec)


# --------------------------------------------------------------------------------------------- verifying


def rows_fingerprint_args(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The 'examples' step's arguments: a hash of every row and the counts per split and kind."""
    return {"rows_sha256": hash_rows(rows), "counts": split_counts(rows)}


def split_counts(rows: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    return {s: {k: sum(1 for r in rows if r["split"] == s and r["kind"] == k) for k in KINDS} for s in SPLITS}


def verify_suite(path: str | Path, *, sample: int = 3, bridge: Any = None, seed: int = 0) -> dict[str, Any]:
    """Check a suite end to end; raise :class:`AdvdlaError` naming the first thing that differs.

    1. every file's sha256 against the manifest; 2. the fingerprint chain, recomputed link by link, its
    'examples' step against the rows actually stored; 3. the model named in the manifest (or ``bridge``):
    its weights and tokenizer fingerprints; 4. the ground truth of ``sample`` seeded-random examples,
    re-derived on the model, within 1e-4. Returns a summary of what was checked.
    """
    path = Path(path)
    manifest = read_manifest(path)
    _check_files(path, manifest)
    suite = Suite(path, _read_dataset(path), manifest)
    rows = suite.dataset.to_list()
    chain = _check_chain(manifest, rows)
    if bridge is None:
        from advdla.models import load_model

        bridge = load_model(manifest["model"])
    _check_model(bridge, manifest)
    picked = random.Random(seed).sample(range(len(rows)), min(sample, len(rows)))
    for i in picked:
        _check_truth(bridge, rows[i])
    return {"path": str(path), "files": len(manifest["files"]), "chain_steps": len(chain.links),
            "fingerprint": chain.fingerprint, "model": manifest["model"], "examples_rederived": [rows[i]["example_id"] for i in picked]}


def _check_files(path: Path, manifest: dict[str, Any]) -> None:
    expected = set(DATA_FILES.values()) | {"README.md"}
    if set(manifest["files"]) != expected:
        raise AdvdlaError(f"suite {path}: manifest lists files {sorted(manifest['files'])}, expected {sorted(expected)}")
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
        raise AdvdlaError(f"manifest fingerprint {manifest['fingerprint'][:12]} is not the chain's last link {chain.fingerprint[:12]}")
    card = manifest.get("model_card", {})
    for step, key, value in (("weights", "sha256", card.get("weights_fingerprint")),
                             ("tokenizer", "sha256", card.get("tokenizer_fingerprint")),
                             ("config", "config", manifest.get("config"))):
        if chain.step(step)["args"].get(key) != value:
            raise AdvdlaError(f"the fingerprint chain's {step} step does not match the manifest's {step}")
    if chain.step("examples")["args"] != rows_fingerprint_args(rows):
        raise AdvdlaError("the stored examples do not match the fingerprint chain's 'examples' step (rows changed)")
    return chain


def _check_model(bridge: Any, manifest: dict[str, Any]) -> None:
    card, want = bridge.advdla_card, manifest.get("model_card", {})
    if card.weights_fingerprint != want.get("weights_fingerprint"):
        raise AdvdlaError(f"model {card.name!r} has weights {card.weights_fingerprint[:12]}, the suite was built on "
                          f"{manifest['model']!r} with weights {str(want.get('weights_fingerprint'))[:12]}")
    if card.tokenizer_fingerprint != want.get("tokenizer_fingerprint"):
        raise AdvdlaError(f"model {card.name!r}: its tokenizer differs from the one the suite was built with")


def _check_truth(bridge: Any, row: dict[str, Any]) -> None:
    """Re-derive one example's ground truth on the same tokens, resamples, panel and (t1, t2)."""
    import torch

    from advdla.components import parse_component
    from advdla.groundtruth import ground_truth

    panel = [parse_component(n, bridge.cfg) for n in row["panel"]]
    truth = ground_truth(bridge, torch.tensor(row["tokens"]), torch.tensor(row["resamples"]), panel,
                         target=parse_component(row["target"], bridge.cfg), t1=row["t1"], t2=row["t2"])
    fresh = truth.to_row()
    where = f"example {row['example_id']} ({row['split']}, {row['kind']})"
    for col in ("t1", "t2"):
        if fresh[col] != row[col]:
            raise AdvdlaError(f"{where}: {col} is {fresh[col]} on the model, {row[col]} in the suite")
    if abs(fresh["ld"] - row["ld"]) > TOLERANCE:
        raise AdvdlaError(f"{where}: ld is {fresh['ld']:.6g} on the model, {row['ld']:.6g} in the suite")
    for col in VALUE_COLUMNS:
        for comp, got, stored in zip(row["panel"], fresh[col], row[col]):
            if not abs(got - stored) <= TOLERANCE:
                raise AdvdlaError(f"{where}: {col}[{comp}] is {got:.6g} on the model, {stored:.6g} in the suite "
                                  f"(tolerance {TOLERANCE})")


# --------------------------------------------------------------------------------------------- summary


def suite_info(suite: Suite) -> dict[str, Any]:
    """Counts per split and kind, targets, thresholds and fingerprints, as plain data."""
    m = suite.manifest
    rows = suite.dataset.select_columns(["split", "kind", "target"]).to_list()
    counts = split_counts(rows)
    return {"name": m["name"], "version": m["version"], "path": str(suite.path), "model": m["model"],
            "created": m.get("created"), "counts": counts,
            "targets": sorted({r["target"] for r in rows}), "thresholds": m.get("thresholds", {}),
            "panel_policy": m.get("panel_policy", {}), "seed": m.get("seed"), "test_seed": m.get("test_seed"),
            "fingerprint": m["fingerprint"], "fingerprints": [{"step": l["step"], "fingerprint": l["fingerprint"]}
                                                               for l in m["fingerprints"]]}
