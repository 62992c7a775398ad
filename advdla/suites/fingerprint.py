"""Fingerprint chains: what a suite was made from, as one hash per step, each hash covering all steps before it.

Context (the HF ``datasets`` idea): a dataset's fingerprint is ``hash(previous fingerprint, step name, step
arguments)``. The same steps with the same arguments give the same fingerprint, and changing any step changes
every fingerprint after it, so the last link alone says "this exact model, tokenizer, corpus, config and data".

A suite's chain is ``model weights -> tokenizer -> corpus -> config [-> test split regenerated] -> examples``;
each step's arguments are plain JSON (fingerprints of the inputs, the canonical config, a hash of the rows).
Nothing time- or machine-dependent goes in, so a rebuild on the same inputs reproduces every link.

    >>> chain = Chain().add("weights", {"sha256": "ab"}).add("config", {"seed": 0})
    >>> chain.fingerprint == Chain.replay(chain.to_list()).fingerprint
    True
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import json
import math
import platform
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from advdla.errors import AdvdlaError

__all__ = ["canonical_json", "sha256_text", "sha256_file", "next_fingerprint", "hash_rows", "Chain", "ROOT",
           "library_versions", "LIBRARIES"]

ROOT = "0" * 64  # the fingerprint before the first step
LIBRARIES = ("torch", "transformers", "transformer-lens", "datasets", "pyarrow", "numpy", "optuna")


def library_versions() -> dict[str, str]:
    """Python's and :data:`LIBRARIES`' installed versions: what a manifest records (not part of any fingerprint,
    which must not depend on the machine), and what a failed check compares with."""
    out = {"python": platform.python_version()}
    for lib in LIBRARIES:
        try:
            out[lib] = md.version(lib)
        except md.PackageNotFoundError:
            out[lib] = "not installed"
    return out


def canonical_json(obj: Any) -> str:
    """One spelling per value: sorted keys, no spaces, floats as Python's shortest repr; NaN/inf refused.

    Refusing non-finite floats matters: ``json.dumps`` writes ``NaN`` (not JSON), and NaN != NaN would make a
    value that can never verify.
    """
    return json.dumps(_plain(obj), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _plain(obj: Any) -> Any:
    """Tuples -> lists, numpy/torch scalars and arrays -> Python values, so equal data hashes equally."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if hasattr(obj, "tolist"):  # numpy / torch
        return _plain(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        raise AdvdlaError(f"cannot fingerprint a non-finite number ({obj}); the data holds NaN or inf")
    return obj


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def next_fingerprint(prev: str, step: str, args: Any) -> str:
    """sha256(prev + step + canonical JSON of args): the HF-datasets update rule."""
    return sha256_text(prev + step + canonical_json(args))


def hash_rows(rows: Iterable[dict[str, Any]]) -> str:
    """sha256 over the rows' canonical JSON, in order (row order is part of the data: splits are ordered)."""
    h = hashlib.sha256()
    for row in rows:
        h.update(hashlib.sha256(canonical_json(row).encode()).digest())
    return h.hexdigest()


@dataclass
class Chain:
    """An ordered list of (step, args, fingerprint) links starting from :data:`ROOT`."""

    links: list[dict[str, Any]] = field(default_factory=list)

    @property
    def fingerprint(self) -> str:
        return self.links[-1]["fingerprint"] if self.links else ROOT

    def add(self, step: str, args: Any) -> Chain:
        fp = next_fingerprint(self.fingerprint, step, args)
        self.links.append({"step": step, "args": _plain(args), "fingerprint": fp})
        return self

    def to_list(self) -> list[dict[str, Any]]:
        return [dict(link) for link in self.links]

    def step(self, name: str) -> dict[str, Any]:
        for link in self.links:
            if link["step"] == name:
                return link
        raise AdvdlaError(
            f"the fingerprint chain has no step {name!r} (steps: {', '.join(l['step'] for l in self.links)})"
        )

    @classmethod
    def replay(cls, links: list[dict[str, Any]]) -> Chain:
        """Recompute every fingerprint from the recorded steps; raise on the first link that does not match."""
        chain = cls()
        for i, link in enumerate(links):
            if not isinstance(link, dict) or set(link) != {"step", "args", "fingerprint"}:
                raise AdvdlaError(f"fingerprint chain link {i} is malformed: expected keys step, args, fingerprint")
            chain.add(link["step"], link["args"])
            if chain.fingerprint != link["fingerprint"]:
                raise AdvdlaError(
                    f"fingerprint chain broken at step {i} ({link['step']}): recorded "
                    f"{link['fingerprint'][:12]}, recomputed {chain.fingerprint[:12]}"
                )
        return chain
