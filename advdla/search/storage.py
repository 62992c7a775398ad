"""Where a search study lives: opening Optuna storages, the study with its space key, and the database-URL helpers
that the search and the suite build's workers share.

Context: a study lives in an Optuna storage, by default ``sqlite:///OUT/study.db``; any RDB URL
(``postgresql://user:pw@host/db`` for workers on many machines) or ``journal:PATH`` (a journal file, safe for
several processes on one machine) works with ``--storage URL --study NAME``. Optuna and the suite build's work
queue both talk to SQLAlchemy. ``postgresql://`` means a different driver to different SQLAlchemy versions
(psycopg 3 for 2.1, psycopg2 for 2.0), so a URL is given the driver that is installed before either opens it.

Intuition: a study remembers what shaped its search space (:meth:`advdla.search.config.SearchConfig.space_key`);
resuming it with other space arguments would mix trials of two spaces, so :func:`open_study` refuses that in one
line naming what differs.
"""

from __future__ import annotations

import importlib.util
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import optuna
from optuna.storages.journal import JournalFileBackend, JournalStorage
from sqlalchemy.exc import IntegrityError, OperationalError

from advdla.errors import AdvdlaError

__all__ = ["with_driver", "open_storage", "open_study"]


def with_driver(url: str) -> str:
    """``postgresql://...`` with the installed driver named (``postgresql+psycopg://...``); other URLs unchanged."""
    if not url.startswith("postgresql://"):
        return url
    driver = next((d for d in ("psycopg", "psycopg2") if importlib.util.find_spec(d)), None)
    return f"postgresql+{driver}://{url.removeprefix('postgresql://')}" if driver else url


def open_storage(url: str) -> Any:
    """An Optuna storage: an RDB URL (sqlite:///, postgresql://...) or ``journal:PATH``; one line on failure."""
    try:
        if url.startswith("journal:"):
            path = url.removeprefix("journal:")
            return JournalStorage(JournalFileBackend(path, lock_obj=_journal_lock(path)))
        kwargs = {"creator": _sqlite_creator(url)} if url.startswith("sqlite:///") else {}
        return _rdb_storage(url, kwargs)
    except Exception as exc:  # bad URL, unreachable server, missing driver, unwritable path: all one line
        first = (str(exc).splitlines() or [""])[0][:200]
        raise AdvdlaError(f"cannot open storage {url!r} ({type(exc).__name__}: {first}); give a reachable RDB URL "
                          f"(sqlite:///PATH, postgresql://user:pw@host/db) or journal:PATH") from None


class _FlockLock:
    """An exclusive ``fcntl.flock`` on ``PATH.flock`` around each journal append (Optuna's lock interface:
    ``acquire``, ``release``; its base class is private, so this one does not subclass it).

    Why not Optuna's default (a symlink lock): a worker killed while holding it leaves the link behind, every other
    worker waits out a 30 s grace period and then breaks it, and two survivors breaking it at once race (one
    unlinks the lock the other just took). The kernel drops an flock when its holder dies, so a killed worker
    never stalls or races the others.
    """

    def __init__(self, path: str) -> None:
        self._path, self._fd = f"{path}.flock", None

    def acquire(self) -> bool:
        import fcntl

        self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        return True

    def release(self) -> None:
        import fcntl

        fd, self._fd = self._fd, None
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def _journal_lock(path: str) -> _FlockLock | None:
    """An flock where the platform has one (POSIX); elsewhere None: Optuna's default lock."""
    try:
        import fcntl  # noqa: F401
    except ImportError:
        return None
    return _FlockLock(path)


def _rdb_storage(url: str, engine_kwargs: dict[str, Any], tries: int = 5) -> Any:
    """RDBStorage, retried when another process is creating the same fresh schema at that moment.

    Two workers (or a worker and a reader) opening a new database together race on creating its tables and
    its schema-version row; the loser sees "already exists" (or a duplicate version row) and, a moment later,
    a complete schema it can simply use.
    """
    url = with_driver(url)
    for attempt in range(tries):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
        except (OperationalError, IntegrityError) as exc:
            racing = "already exists" in str(exc) or "alembic_version" in str(exc)
            if not racing or attempt == tries - 1:
                raise
            time.sleep(0.2 * (attempt + 1))


def _sqlite_creator(url: str) -> Any:
    """SQLite connections in WAL mode with a long lock timeout: several local workers can share the file, and a
    commit costs no fsync of the whole database (WAL + synchronous=NORMAL survives a killed process)."""
    path = url.removeprefix("sqlite:///")
    if not Path(path).parent.is_dir():
        raise FileNotFoundError(f"no directory {Path(path).parent}")

    def connect() -> Any:
        conn = sqlite3.connect(path, timeout=60, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    return connect


def open_study(storage: Any, *, name: str, directions: list[str], space_key: dict[str, Any]) -> optuna.Study:
    """The study ``name`` in ``storage``, created if new; a stored study made with another ``space_key`` is refused
    in one line naming each field that differs."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=storage, study_name=name, directions=directions, load_if_exists=True)
    stored = study.user_attrs.get("advdla_space")
    if stored is None:
        study.set_user_attr("advdla_space", space_key)
    elif stored != space_key:
        diff = ", ".join(f"{k}={stored.get(k)!r} (now {v!r})" for k, v in space_key.items() if stored.get(k) != v)
        raise AdvdlaError(f"study {name!r} was created with {diff}: resume with the same arguments or use "
                          "another --study/--out")
    return study
