"""advdla's cache folder, and building an entry in it exactly once, atomically.

Context: the first use of a model may download and convert hundreds of MB. Two processes doing that at the
same moment must not corrupt each other, and a failed or interrupted build must leave nothing that a later
run could mistake for a finished one.

Intuition: every entry is built in a private temporary folder next to its final place, under a file lock,
and renamed into place only when complete (a rename within one file system is atomic). A reader therefore
sees either no entry or a whole one. Locks live in ``locks/``, outside ``models/``, so the models folder
holds only finished entries (and, after a crash, temporary folders that the next build sweeps away).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["advdla_home", "models_dir", "build_once"]


def advdla_home() -> Path:
    """``$ADVDLA_HOME``, default ``~/.cache/advdla``."""
    return Path(os.environ.get("ADVDLA_HOME") or Path.home() / ".cache" / "advdla").expanduser()


def models_dir() -> Path:
    return advdla_home() / "models"


def build_once(name: str, build: Callable[[Path], None], *, timeout: float = 3600) -> Path:
    """``models_dir()/name``, calling ``build(tmp_dir)`` to fill it first if it does not exist yet.

    ``build`` writes into an empty temporary folder; if it raises, the folder is removed and the error
    propagates. Concurrent callers wait on the lock and then find the finished entry.
    """
    from filelock import FileLock

    final = models_dir() / name
    if final.is_dir():
        return final
    locks = advdla_home() / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    final.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(locks / f"{name}.lock"), timeout=timeout):
        if final.is_dir():  # another process finished while we waited
            return final
        _sweep_stale(final)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=final.parent))
        try:
            build(tmp)
            tmp.chmod(0o755)  # mkdtemp makes it private; the finished entry is an ordinary folder
            os.replace(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)  # a no-op after a successful rename
    return final


def _sweep_stale(final: Path) -> None:
    """Remove temporary folders left by a build that was killed (we hold the lock: nobody else is writing)."""
    for stale in final.parent.glob(f".{final.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
