"""Per-batch checkpoints of a scoring run, so that a killed ``advdla score --out FILE`` resumes where it stopped.

Context: path-wise IG over SmolLM2's full panel (300 components) costs about 56 s an example on two CPU cores,
over an hour a split, and one record covers the whole split. So after every batch the
method's estimates so far go to a small JSON file beside the output (``.FILE.METHOD.partial.json``, written
atomically), under a key: the method, its version and options, the seed, and the suite (name, version,
fingerprint) and split. A rerun with the same key skips the examples the checkpoint holds and adds its time to
the time already spent; a checkpoint with any other key is ignored and overwritten. Once the records are
written the checkpoints go.

Why resuming gives the uninterrupted result: every built-in method's estimate of an example depends on that
example alone (``random`` seeds each example from its own hash), and a resumed run cuts the remaining examples
into the same batches as the first run did (checkpoints hold whole batches).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from advdla.atomic import write_json_atomic

__all__ = ["Checkpoint", "checkpoint_for"]


@dataclass(frozen=True)
class Checkpoint:
    """Where one method's partial estimates live, and the key that says which run they belong to."""

    path: Path
    key: dict[str, Any]

    def load(self) -> tuple[dict[str, list[float]], float]:
        """The estimates by example id and the seconds already spent (empty and 0 without a matching checkpoint)."""
        try:
            raw = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}, 0.0
        if raw.get("key") != self._canonical():
            return {}, 0.0
        return {k: [float(x) for x in v] for k, v in raw["estimates"].items()}, float(raw["wall_time_s"])

    def save(self, estimates: dict[str, list[float]], wall_time_s: float) -> None:
        write_json_atomic(self.path, {"key": self._canonical(), "wall_time_s": wall_time_s, "estimates": estimates})

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)

    def _canonical(self) -> dict[str, Any]:
        return json.loads(json.dumps(self.key, sort_keys=True, default=str))  # what a JSON round trip gives back


def checkpoint_for(out: str | Path, method: str, *, version: str, params: dict[str, Any],
                   manifest: dict[str, Any], split: str) -> Checkpoint:
    """The checkpoint of ``method`` scored into the records file ``out``."""
    out = Path(out)
    suite = {k: manifest.get(k) for k in ("name", "version", "fingerprint")}
    key = {"method": method, "version": version, "params": params, "suite": suite, "split": split}
    return Checkpoint(out.parent / f".{out.name}.{method}.partial.json", key)
