"""Names instead of paths: ``--suite planted-erasure`` finds a shipped suite, and the leaderboard folder has a
default that works from any directory.

A suite name is looked up, after a folder of that name here, in the project's ``suites/`` (a source checkout's),
then in each folder of ``$ADVDLA_SUITES`` (``os.pathsep``-separated, like ``PATH``). The leaderboard folder is
``--dir``, else ``$ADVDLA_LEADERBOARD``, else ``./leaderboard`` where it exists, else the project's
``leaderboard/``. Nothing here imports torch: a name that resolves to nothing stops before any heavy import, with
the places looked in and the names that exist.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from advdla.errors import AdvdlaError, did_you_mean

__all__ = ["PROJECT", "suite_dirs", "shipped_suites", "resolve_suite", "leaderboard_dir", "suites_dir_for"]

PROJECT = Path(__file__).resolve().parents[2]  # the source checkout holding advdla/, suites/ and leaderboard/


def suite_dirs() -> list[Path]:
    """The folders a suite name is looked up in: the project's suites/, then $ADVDLA_SUITES's, in that order."""
    extra = [Path(p).expanduser() for p in os.environ.get("ADVDLA_SUITES", "").split(os.pathsep) if p]
    return list(dict.fromkeys([PROJECT / "suites", *extra]))


def shipped_suites() -> list[tuple[Path, dict[str, Any]]]:
    """Every suite in :func:`suite_dirs` (a folder with a manifest.json), with its manifest; the first of a name
    wins, as in :func:`resolve_suite`."""
    found: dict[str, tuple[Path, dict[str, Any]]] = {}
    for d in suite_dirs():
        if not d.is_dir():
            continue
        for sub in sorted(d.iterdir()):
            manifest = sub / "manifest.json"
            if sub.name.startswith(".") or sub.name in found or not manifest.is_file():
                continue
            try:
                found[sub.name] = (sub, json.loads(manifest.read_text(encoding="utf-8")))
            except (OSError, ValueError):
                found[sub.name] = (sub, {})  # listed; `suite verify` says what is wrong with it
    return list(found.values())


def resolve_suite(value: str, *, flag: str = "--suite") -> Path:
    """A suite folder from a path or a shipped suite's name. A path (it holds a ``/``, or starts with ``.`` or
    ``~``) is returned as it is, for the suite's reader to check and explain; a name that is no folder here and no
    suite in :func:`suite_dirs` stops with one line naming the suites there."""
    path = Path(value).expanduser()
    if path.is_dir() or os.sep in value or (os.altsep or os.sep) in value or value.startswith((".", "~")):
        return path
    for d in suite_dirs():
        if (d / value / "manifest.json").is_file():
            return d / value
    names = [p.name for p, _ in shipped_suites()]
    where = ", ".join(str(d) for d in suite_dirs())
    raise AdvdlaError(f"{flag} {value}: no such suite folder, and no suite of that name in {where}; give a suite "
                      f"folder or one of {', '.join(names) or '(none shipped)'} (`advdla suite list`; more folders: "
                      f"ADVDLA_SUITES=DIR; a new one: `advdla suite build CONFIG.yaml`){did_you_mean(value, names)}")


def leaderboard_dir(value: str | None, *, create: bool = False) -> Path:
    """``--dir``, else $ADVDLA_LEADERBOARD, else ./leaderboard where it exists, else the project's leaderboard/.

    With ``create`` (``leaderboard add``) a missing default is ./leaderboard, made by the caller; without it (show,
    render) a missing folder stops with where it looked and the option to pass.
    """
    if value is not None:
        return Path(value).expanduser()
    env = os.environ.get("ADVDLA_LEADERBOARD")
    candidates = [Path(env).expanduser()] if env else [Path("leaderboard"), PROJECT / "leaderboard"]
    for c in candidates:
        if c.is_dir():
            return c
    if create:
        return candidates[0]
    raise AdvdlaError(f"no leaderboard folder: looked in {' and '.join(str(c.resolve()) for c in candidates)}; pass "
                      f"--dir DIR, or add records first with `advdla leaderboard add FILE`")


def suites_dir_for(board: Path) -> Path:
    """The suites a leaderboard's records are checked against when ``--suites`` is not given: suites/ next to the
    board where that exists, else the project's."""
    beside = board.resolve().parent / "suites"
    return beside if beside.is_dir() else PROJECT / "suites"
