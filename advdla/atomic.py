"""Atomic file writes: a crash or a kill never leaves half a file, and readers see the old file or the new one.

The text goes to a temporary file in the destination's folder (same filesystem, so the rename is atomic),
is flushed to disk, and replaces the destination with ``os.replace``; on any failure the temporary file is
removed. Every JSON or text result advdla writes goes through here. ``mkstemp`` makes its file private (0600);
the file is given the mode an ordinary ``open()`` would (0666 less the umask: 0644 under umask 022) before the
rename, so records, checkpoints and figures are readable by whoever may read the folder.

Commands also check here, before they create anything, that their destination can be written
(:func:`check_writable`), and remove what a failed run created (:func:`removed_on_failure`), so that a refused
command leaves the disk as it found it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from advdla.errors import AdvdlaError


def umask_mode() -> int:
    """The mode ``open()`` gives a new file: 0666 less the process's umask (read by setting it and back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (creating its folder), with the umask's mode."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, umask_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_atomic(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Atomically create ``path`` with ``write(tmp)``, which writes the whole file at ``tmp`` (Parquet, PNG ...).

    ``tmp`` is an empty file in the destination's folder; it is flushed to disk, given the umask's mode and renamed
    over ``path`` once ``write`` returns, and removed if it raises.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, umask_mode())
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


# ------------------------------------------------------------------------------------------ destinations


def check_writable(path: str | os.PathLike, *, flag: str, kind: str = "dir") -> Path:
    """Refuse, before anything is created, a destination that cannot be written; returns it as an absolute path.

    ``kind`` is ``"dir"`` (a folder, new or existing, that the command writes into) or ``"file"`` (a file, new or
    existing, replaced atomically). ``flag`` names the option in the message (``--out``). The nearest existing
    folder on the way to ``path`` must be a folder the user may write into; as root, where file modes do not
    count, that is tried by creating and removing an empty folder in it. Nothing is left behind.
    """
    p = Path(os.path.abspath(Path(path).expanduser()))
    what = f"{flag} {path}"
    if os.path.lexists(p):
        if kind == "file" and os.path.isdir(p):
            raise AdvdlaError(f"{what} is a folder: give a file path there (e.g. {Path(path) / 'results.json'})")
        if kind == "dir" and not os.path.isdir(p):
            raise AdvdlaError(f"{what} is a file, not a folder: give a new or existing folder there")
        folder = p if kind == "dir" else p.parent
    else:
        folder = p.parent
        while not os.path.lexists(folder):
            folder = folder.parent
        if not os.path.isdir(folder):
            raise AdvdlaError(f"cannot create {what}: {folder} is a file, not a folder; choose another {flag}")
    if not _can_write(folder):
        raise AdvdlaError(f"cannot write {what}: {folder} is not writable (permission denied or a read-only file "
                          f"system); choose another {flag}")
    return p


def _can_write(folder: Path) -> bool:
    if not os.access(folder, os.W_OK | os.X_OK):
        return False
    try:
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            return False
    except (OSError, AttributeError):
        pass
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # root passes os.access everywhere: try it
        try:
            os.rmdir(tempfile.mkdtemp(prefix=".advdla-probe-", dir=folder))
        except OSError:
            return False
    return True


@contextlib.contextmanager
def removed_on_failure(path: str | os.PathLike, *, keep: Callable[[], bool] | None = None) -> Iterator[Path]:
    """Undo what the block created at ``path`` if it raises an exception (not on Ctrl-C, which keeps partial work
    such as a search study to resume): the folder itself (and the parents it needed) if it did not exist before,
    else the entries that are new at its top level. Files the block changed in place cannot be restored.

    ``keep()``, asked when the block fails, may say that what it wrote is worth keeping (finished stages of a run)."""
    p = Path(os.path.abspath(Path(path).expanduser()))
    existed = os.path.isdir(p)
    before = set(os.listdir(p)) if existed else set()
    top = p
    while not os.path.lexists(top.parent):
        top = top.parent
    created_top = not os.path.lexists(top)
    try:
        yield p
    except Exception:
        if keep is not None and keep():
            raise
        if existed:
            with contextlib.suppress(OSError):
                for name in set(os.listdir(p)) - before:
                    _remove(p / name)
        elif created_top:
            _remove(top)
        raise


def _remove(path: Path) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            os.unlink(path)
