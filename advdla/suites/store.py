"""Benchmark suites on disk: the one row type (:class:`Example`), the schema, loading and atomic saving.

Context: a suite is the benchmark's data: prompts (adversarial ones found by the search, natural controls
drawn from the corpus) with causal ground truth per component of each example's panel (see
:mod:`advdla.suites.truth`). Users must be able to trust it, so a suite folder holds only data (nothing that
executes when loaded) and describes itself:

    suites/NAME/
      data/dev.parquet, data/test.parquet   one row per example (:meth:`Example.to_row`)
      manifest.json                          name, version, fingerprint chain, file hashes, thresholds, ...
      README.md                              what it is, and a changelog line per version

Any tool reads it: ``datasets.load_dataset("parquet", data_files={"dev": ..., "test": ...})``. The
fingerprint chain (:mod:`advdla.suites.fingerprint`) runs model weights -> tokenizer -> corpus -> config [->
test split regenerated] -> examples; :mod:`advdla.suites.verify` recomputes it, the file hashes, and a sample
of the ground truth on the model itself. Building lives in :mod:`advdla.suites.build`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from jaxtyping import Int
from torch import Tensor

from advdla.errors import AdvdlaError
from advdla.suites.fingerprint import canonical_json, hash_rows, sha256_file
from advdla.suites.truth import VALUE_COLUMNS, Truth

__all__ = ["SCHEMA_VERSION", "Example", "Suite", "load_suite", "save_suite", "read_manifest", "example_id",
           "VALUE_COLUMNS", "ROW_COLUMNS", "MANIFEST_FIELDS", "SPLITS", "KINDS", "DATA_FILES",
           "check_destination", "check_choice", "read_dataset", "rows_fingerprint_args", "split_counts", "suite_info"]

SCHEMA_VERSION = 2  # 2: two disjoint resample sets, DE/IE/zero-ablation columns, mechanism, source_doc
SPLITS = ("dev", "test")
KINDS = ("adversarial", "natural")
DATA_FILES = {split: f"data/{split}.parquet" for split in SPLITS}


@dataclass(frozen=True)
class Example:
    """One suite example: the only definition of a suite row (a Parquet row is :meth:`to_row` of one).

    ``tokens`` is the prompt; ``resamples`` the truth's R_truth same-length counterfactual texts and
    ``method_resamples`` the R_method texts methods receive (pairwise distinct documents, none the prompt's: a
    method never sees the truth's counterfactuals). ``target`` is the component the example was built around,
    ``truth`` what the model does on it (:class:`advdla.suites.truth.Truth`), ``mechanism`` why DLA misleads on
    it (``compensation`` | ``baseline`` | ``mixed``; ``none`` for natural controls). ``source_doc`` is the corpus
    document the prompt was built on (the cluster of the bootstrap), ``trial`` the search trial (-1: none),
    ``resample_seed`` the seed its resamples were drawn with.
    """

    example_id: str
    split: str
    kind: str
    text: str
    tokens: Int[Tensor, " pos"]
    resamples: Int[Tensor, "r pos"]
    method_resamples: Int[Tensor, "rm pos"]
    target: str
    truth: Truth
    mechanism: str = "none"
    source_doc: int = -1
    trial: int = -1
    resample_seed: int = -1

    def to_row(self) -> dict[str, Any]:
        """The flat Parquet row: identity, tokens, resamples, target, then every Truth field as plain lists."""
        t = self.truth
        row = {"example_id": self.example_id, "split": self.split, "kind": self.kind, "text": self.text,
               "tokens": self.tokens.tolist(), "resamples": self.resamples.tolist(),
               "method_resamples": self.method_resamples.tolist(), "t1": t.t1, "t2": t.t2, "ld": t.ld,
               "target": self.target, "mechanism": self.mechanism, "panel": list(t.panel)}
        row.update({c: getattr(t, c).tolist() for c in VALUE_COLUMNS})
        return row | {"source_doc": self.source_doc, "trial": self.trial, "resample_seed": self.resample_seed}

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Example:
        """Read a row (a dict with :data:`ROW_COLUMNS`; trial and resample_seed optional)."""
        values = {c: torch.tensor(list(row[c]), dtype=torch.float64) for c in VALUE_COLUMNS}
        truth = Truth(t1=int(row["t1"]), t2=int(row["t2"]), ld=float(row["ld"]), panel=list(row["panel"]), **values)
        return cls(example_id=str(row["example_id"]), split=row["split"], kind=row["kind"], text=row["text"],
                   tokens=torch.tensor(list(row["tokens"]), dtype=torch.long),
                   resamples=_int_rows(row["resamples"]), method_resamples=_int_rows(row["method_resamples"]),
                   target=row["target"], truth=truth, mechanism=row["mechanism"], source_doc=int(row["source_doc"]),
                   trial=int(row.get("trial", -1)), resample_seed=int(row.get("resample_seed", -1)))

    def with_split(self, split: str) -> Example:
        return dataclasses.replace(self, split=split)


def _int_rows(rows: Any) -> Int[Tensor, "r pos"]:
    return torch.tensor([list(x) for x in rows], dtype=torch.long)


ROW_COLUMNS = ("example_id", "split", "kind", "text", "tokens", "resamples", "method_resamples", "t1", "t2", "ld",
               "target", "mechanism", "panel", *VALUE_COLUMNS, "source_doc")
MANIFEST_FIELDS = {
    "schema_version": "integer; this code reads up to SCHEMA_VERSION",
    "name": "the suite's name", "version": "integer, from the config; a new version adds a changelog line",
    "description": "one paragraph", "created": "UTC time of the build (not fingerprinted)",
    "advdla_version": "advdla that built it", "libraries": "library versions that built it",
    "model": "registry name of the model", "model_card": "advdla.models.ModelCard as a dict",
    "corpus": "{name, fingerprint}", "config": "the suite config, canonical", "thresholds": "adversarial cut-offs",
    "panel_policy": "advdla.suites.config.PanelPolicy as a dict", "seed": "build seed",
    "test_seed": "seed of the test split",
    "test_history": "every test split this suite has had: [{seed, fingerprint, created}]",
    "splits": "{split: {kind: count}}", "targets": "target components", "search": "what the search did",
    "fingerprint": "the chain's last link", "fingerprints": "the chain: [{step, args, fingerprint}]",
    "files": "{relative path: sha256}", "changelog": "[{version, date, note, fingerprint}]",
    "mechanisms": "{split: {mechanism: count}} of the adversarial examples",
    "build": "what the build scanned and rejected: natural windows scanned per split, candidates whose final truth "
             "failed the adversarial thresholds",
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
        """The stored rows as dicts, optionally one split ('dev'|'test') and/or kind ('adversarial'|'natural')."""
        check_choice("split", split, SPLITS)
        check_choice("kind", kind, KINDS)
        return [r for r in self.dataset.to_list()
                if (split is None or r["split"] == split) and (kind is None or r["kind"] == kind)]

    def examples(self, split: str | None = None, kind: str | None = None) -> list[Example]:
        """The examples, typed (same filters as :meth:`rows`)."""
        return [Example.from_row(r) for r in self.rows(split, kind)]

    def __len__(self) -> int:
        return len(self.dataset)


def check_choice(what: str, value: str | None, allowed: tuple[str, ...]) -> None:
    """A split or kind filter must name one that exists (None: no filter)."""
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
    return Suite(path, read_dataset(path), manifest)


def read_manifest(path: Path) -> dict[str, Any]:
    """The suite's manifest.json, checked for shape and schema version."""
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
    if schema < SCHEMA_VERSION:
        raise AdvdlaError(f"suite {path} has schema version {schema}, from an older advdla (one resample set, no "
                          f"direct/indirect columns): rebuild it with `advdla suite build suites/{m.get('name')}.yaml "
                          f"--force`")
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


def read_dataset(path: Path) -> Any:
    """Both splits as one Dataset via pyarrow (no dataset scripts, no cache writes)."""
    tables = []
    for rel in DATA_FILES.values():
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


def save_suite(examples: list[Example], manifest: dict[str, Any], dest: str | Path, *, force: bool = False,
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
        _write_files(tmp, [e.to_row() for e in examples], manifest, readme)
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
    (tmp / "data").mkdir(parents=True)
    files = {}
    for split, rel in DATA_FILES.items():
        part = [r for r in rows if r["split"] == split]
        table = datasets.Dataset.from_list(part, features=_features()).data.table
        pq.write_table(table, tmp / rel)  # plain pyarrow: no progress bar, HF schema metadata kept
        files[rel] = sha256_file(tmp / rel)
    (tmp / "README.md").write_text(readme, encoding="utf-8")
    files["README.md"] = sha256_file(tmp / "README.md")
    manifest["files"] = files
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def _features() -> Any:
    """Explicit column types, so an empty split still has the full schema and ints stay ints."""
    ints, floats, strs = datasets.Value("int64"), datasets.Value("float64"), datasets.Value("string")
    token_rows = datasets.Sequence(datasets.Sequence(ints))
    spec: dict[str, Any] = {"example_id": strs, "split": strs, "kind": strs, "text": strs,
                            "tokens": datasets.Sequence(ints), "resamples": token_rows, "method_resamples": token_rows,
                            "t1": ints, "t2": ints, "ld": floats, "target": strs, "mechanism": strs,
                            "panel": datasets.Sequence(strs)}
    spec.update({c: datasets.Sequence(floats) for c in VALUE_COLUMNS})
    spec.update({"source_doc": ints, "trial": ints, "resample_seed": ints})
    return datasets.Features(spec)


def rows_fingerprint_args(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The 'examples' step's arguments: a hash of every stored row and the counts per split and kind."""
    return {"rows_sha256": hash_rows(rows), "counts": split_counts(rows)}


def split_counts(rows: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    return {s: {k: sum(1 for r in rows if r["split"] == s and r["kind"] == k) for k in KINDS} for s in SPLITS}


def suite_info(suite: Suite) -> dict[str, Any]:
    """Counts per split and kind, targets, thresholds and fingerprints, as plain data."""
    m = suite.manifest
    rows = suite.dataset.select_columns(["split", "kind", "target"]).to_list()
    return {"name": m["name"], "version": m["version"], "path": str(suite.path), "model": m["model"],
            "created": m.get("created"), "counts": split_counts(rows),
            "targets": sorted({r["target"] for r in rows}), "thresholds": m.get("thresholds", {}),
            "panel_policy": m.get("panel_policy", {}), "seed": m.get("seed"), "test_seed": m.get("test_seed"),
            "fingerprint": m["fingerprint"],
            "fingerprints": [{"step": link["step"], "fingerprint": link["fingerprint"]} for link in m["fingerprints"]]}
