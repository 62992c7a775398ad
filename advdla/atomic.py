"""Atomic file writes: a crash or a kill never leaves half a file, and readers see the old file or the new one.

The text goes to a temporary file in the destination's folder (same filesystem, so the rename is atomic),
is flushed to disk, and replaces the destination with ``os.replace``; on any failure the temporary file is
removed. Every JSON or text result advdla writes goes through here.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (creating its folder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_atomic(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Atomically create ``path`` with ``write(tmp)``, which writes the whole file at ``tmp`` (Parquet, PNG ...).

    ``tmp`` is an empty file in the destination's folder; it is flushed to disk and renamed over ``path`` once
    ``write`` returns, and removed if it raises.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def jsonable(o: Any) -> Any:
    """``json.dumps``'s fallback for advdla objects: to_dict(), tensors/arrays via tolist(), dataclasses, else str."""
    if hasattr(o, "to_dict"):
        return o.to_dict()
    if hasattr(o, "tolist"):
        return o.tolist()
    if dataclasses.is_dataclass(o) and not isinstance(o, type):
        return dataclasses.asdict(o)
    return str(o)


def write_json_atomic(
    path: str | os.PathLike, payload: Any, *, sort_keys: bool = False, allow_nan: bool = True
) -> Path:
    """Write ``payload`` as indented JSON (plus a final newline) atomically."""
    text = json.dumps(payload, indent=2, sort_keys=sort_keys, allow_nan=allow_nan, default=jsonable) + "\n"
    return write_text_atomic(path, text)


def nan_to_none(x: Any) -> Any:
    """NaN or infinity (an undefined metric, a fit on too few points, x / 0) as None, in nested dicts, lists and
    tuples, so the JSON written is strict (``json`` would write ``NaN``, which is not JSON)."""
    if isinstance(x, dict):
        return {k: nan_to_none(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [nan_to_none(v) for v in x]
    return None if isinstance(x, float) and not math.isfinite(x) else x
