"""One suite build shared by several workers through a database: units of work, claims, leases, results.

Context: a build's expensive parts are its searches (one per split and target) and the ground truth of each
candidate; every one of them is a deterministic function of the config, so it does not matter which worker
computes it, only that each is computed once and read back exactly. :class:`SharedBuild` offers the interface of
:class:`advdla.suites.partial.PartialBuild` (``step``, ``steps``, ``examples``, ...) on top of one table in a
database that every worker reaches through the same SQLAlchemy URL (SQLite for processes on one machine,
PostgreSQL for several machines)::

    advdla_build_units(build, name, state, owner, heartbeat, result)
      build      hash of what is being built (config, weights, corpus, test seed): builds never mix
      name       the unit: step/NAME (a search, a planning step), example/ID (one ground truth), save/HOST:PATH
      state      claimed (a worker computes it) or done (``result`` holds its JSON)

Intuition: every worker runs the same build, in the same order. Where the build needs a list of units it
walks them in order, claims the first one nobody holds (a row lock: ``SELECT ... FOR UPDATE SKIP LOCKED`` on
PostgreSQL, the whole file by ``BEGIN IMMEDIATE`` on SQLite, then an insert that loses a race cleanly),
computes it outside any transaction, and writes its result in a transaction of its own. When nothing is left
to claim it waits for the others' results, then assembles them in order exactly as a single process would,
so the suite and its fingerprint are the same. A list that stops early (adversarial candidates: the first n
that hold on the final truth) is claimed only while its done prefix is not yet enough: at most one unneeded
unit per worker.

A killed worker loses only the unit it was computing: a claim is a lease that a thread of its owner renews
every ``lease / 4`` seconds, and a claim not renewed for ``lease`` seconds, or whose owner was a process on
this machine that no longer runs, is taken over by the next worker that looks. (Workers on several machines
compare their clocks through the heartbeats: keep them synchronised, as NTP does, to well under ``lease``.)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Float, MetaData, String, Table, Text, create_engine, delete, event, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from advdla.errors import AdvdlaError
from advdla.search.storage import with_driver
from advdla.suites.fingerprint import canonical_json
from advdla.suites.store import Example

__all__ = ["LEASE_S", "SharedBuild", "check_database_url", "open_database"]

LEASE_S = 60.0  # a claim not renewed for this long is taken over (its owner renews it every LEASE_S / 4)
POLL_S = 0.2  # how often a worker with nothing to claim looks for the others' results

_meta = MetaData()
UNITS = Table(
    "advdla_build_units", _meta,
    Column("build", String(64), primary_key=True),
    Column("name", String(255), primary_key=True),
    Column("state", String(8), nullable=False),
    Column("owner", String(255), nullable=False),
    Column("heartbeat", Float, nullable=False),
    Column("result", Text, nullable=True),
)

_HOW = "give sqlite:///PATH (processes on one machine) or postgresql://USER@HOST/DB (several machines)"


def check_database_url(url: str) -> str:
    """``url`` if it names a SQLite file in an existing folder or a PostgreSQL database; else one clear error."""
    try:
        u = make_url(url)
    except ArgumentError:
        raise AdvdlaError(f"--db {url!r} is not a database URL: {_HOW}") from None
    backend = u.get_backend_name()
    if backend == "sqlite":
        if not u.database or u.database == ":memory:":
            raise AdvdlaError(f"--db {url!r} names no database file (workers share a file): {_HOW}")
        if not Path(u.database).parent.resolve().is_dir():
            raise AdvdlaError(f"--db {url!r}: no folder {Path(u.database).parent}: create it or give another path")
    elif backend != "postgresql":
        raise AdvdlaError(f"--db {url!r}: unsupported database {backend!r}: {_HOW}")
    return url


def open_database(url: str) -> Engine:
    """An engine whose transactions take their locks up front (SQLite: ``BEGIN IMMEDIATE``, WAL, long timeout)."""
    check_database_url(url)
    if make_url(url).get_backend_name() == "postgresql":
        return create_engine(with_driver(url), pool_pre_ping=True)
    engine = create_engine(url, connect_args={"timeout": 120, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _connect(dbapi: Any, _record: Any) -> None:
        dbapi.isolation_level = None  # let SQLAlchemy's "begin" below open the transactions, not the driver
        dbapi.execute("PRAGMA journal_mode=WAL")
        dbapi.execute("PRAGMA synchronous=NORMAL")

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")  # the write lock now: claims never deadlock on an upgrade

    return engine


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine (a zombie, killed but not yet reaped, counts as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


class SharedBuild:
    """The units of one build in a database shared by its workers (the interface of ``PartialBuild``)."""

    shared = True

    def __init__(self, url: str, dest: Path, key: dict[str, Any], *, lease: float = LEASE_S,
                 poll: float = POLL_S) -> None:
        self.build = hashlib.sha256(canonical_json(key).encode()).hexdigest()[:32]
        self.root = dest.parent / f".{dest.name}.workers"  # this machine's scratch: the searches' Optuna studies
        self.owner = f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"
        self.lease, self.poll = lease, poll
        self._values: dict[str, Any] = {}  # finished units, decoded (they never change)
        try:
            self.engine = open_database(url)
            _meta.create_all(self.engine)
        except SQLAlchemyError as exc:
            first = (str(exc).splitlines() or [""])[0][:200]
            raise AdvdlaError(f"cannot open the build database {url!r} ({type(exc).__name__}: {first}): {_HOW}, "
                              f"reachable from this machine") from None
        self._stop = threading.Event()
        self._beat = threading.Thread(target=self._heartbeat, name="advdla-lease", daemon=True)
        self._beat.start()

    # ------------------------------------------------------------------ PartialBuild's interface

    @property
    def examples_done(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).where(
                UNITS.c.build == self.build, UNITS.c.state == "done", UNITS.c.name.like("example/%"))).scalar_one()

    def search_dir(self, name: str) -> Path:
        return self.root / "search" / name

    def step(self, name: str, compute: Callable[[], Any]) -> Any:
        return self.steps([(name, compute)])[0]

    def steps(self, jobs: list[tuple[str, Callable[[], Any]]]) -> list[Any]:
        """The steps' JSON values in order, each computed once by whichever worker claims it first."""
        return self._map([(f"step/{n}", c) for n, c in jobs], encode=lambda v: v)

    def example(self, example_id: str, compute: Callable[[], Example]) -> Example:
        return self.examples([(example_id, compute)])[0]

    def examples(self, jobs: list[tuple[str, Callable[[], Example]]], *,
                 enough: Callable[[list[Example]], bool] | None = None,
                 after: Callable[[], None] | None = None) -> list[Example]:
        """The examples in order up to the first prefix that is ``enough``, spread over the workers."""
        return self._map([(f"example/{eid}", c) for eid, c in jobs], encode=lambda e: e.to_row(), enough=enough,
                         after=after)

    def save(self, dest: Path, write: Callable[[], Path]) -> Path:
        """The suite written once per machine and destination (by the first worker there to claim it)."""
        where = f"{socket.gethostname()}:{dest.resolve()}"
        name = where if len(where) < 200 else hashlib.sha256(where.encode()).hexdigest()
        return Path(self._map([(f"save/{name}", lambda: str(write()))], encode=str)[0])

    @contextlib.contextmanager
    def removed_on_error(self) -> Iterator[None]:
        """Nothing to remove: the database keeps what was done (an error is the same in every worker)."""
        yield

    def remove(self) -> None:
        """Stop renewing claims and drop this machine's scratch (the units stay in the database: other workers
        may still be reading them)."""
        self.close()
        shutil.rmtree(self.root, ignore_errors=True)

    def close(self) -> None:
        self._stop.set()
        self._beat.join(timeout=5)
        self.engine.dispose()

    # ------------------------------------------------------------------ claims

    def _map(self, jobs: list[tuple[str, Callable[[], Any]]], *, encode: Callable[[Any], Any],
             enough: Callable[[list[Any]], bool] | None = None, after: Callable[[], None] | None = None) -> list[Any]:
        names = [n for n, _ in jobs]
        while True:
            states = self._refresh(names)
            prefix, complete = _prefix(names, self._values, enough)
            if complete:
                return prefix
            job = self._claim_next(jobs, states, enough)
            if job is None:
                time.sleep(self.poll)
                continue
            self._compute(*job, encode=encode)
            if after is not None:
                after()

    def _refresh(self, names: list[str]) -> dict[str, Any]:
        """The states of the units not known to be done, reading the results that are new since last time."""
        todo = [n for n in names if n not in self._values]
        states: dict[str, Any] = {}
        with self.engine.connect() as conn:
            for i in range(0, len(todo), 500):
                rows = conn.execute(select(UNITS.c.name, UNITS.c.state, UNITS.c.owner, UNITS.c.heartbeat,
                                           UNITS.c.result).where(UNITS.c.build == self.build,
                                                                 UNITS.c.name.in_(todo[i:i + 500])))
                states.update({r.name: r for r in rows})
        for name, row in states.items():
            if row.state == "done":
                self._values[name] = _decoder(name)(json.loads(row.result))
        return states

    def _claim_next(self, jobs: list[tuple[str, Callable[[], Any]]], states: dict[str, Any],
                    enough: Callable[[list[Any]], bool] | None) -> tuple[str, Callable[[], Any]] | None:
        """The first unit, in order, that may still be needed and that this worker now holds; None: none free."""
        for i, (name, compute) in enumerate(jobs):
            if name in self._values:
                continue
            if enough is not None and enough([self._values[n] for n, _ in jobs[:i] if n in self._values]):
                return None  # units from here on are needed only if an earlier one, still running, is rejected
            row = states.get(name)
            if row is not None and not self._abandoned(row, time.time()):
                continue
            if self._claim(name):
                return name, compute
        return None

    def _abandoned(self, row: Any, now: float) -> bool:
        if row.state == "done":
            return False
        host, pid, _ = row.owner.split("/")
        return now - row.heartbeat > self.lease or (host == socket.gethostname() and not _alive(int(pid)))

    def _claim(self, name: str) -> bool:
        """Take the unit if nobody holds it (or its holder is gone); False when another worker has it or it is done."""
        where = (UNITS.c.build == self.build, UNITS.c.name == name)
        with self.engine.begin() as conn:
            row = conn.execute(select(UNITS.c.state, UNITS.c.owner, UNITS.c.heartbeat).where(*where)
                               .with_for_update(skip_locked=True)).first()
            now = time.time()
            if row is None:  # absent, or locked by a worker claiming it this instant: the insert tells which
                insert = (postgresql if conn.dialect.name == "postgresql" else sqlite).insert
                stmt = insert(UNITS).values(build=self.build, name=name, state="claimed", owner=self.owner,
                                            heartbeat=now).on_conflict_do_nothing()
                return conn.execute(stmt).rowcount == 1
            if not self._abandoned(row, now):
                return False
            conn.execute(update(UNITS).where(*where).values(owner=self.owner, heartbeat=now))
            return True

    def _compute(self, name: str, compute: Callable[[], Any], *, encode: Callable[[Any], Any]) -> None:
        """Compute a claimed unit outside any transaction, then store its result in a transaction of its own."""
        where = (UNITS.c.build == self.build, UNITS.c.name == name)
        try:
            text = json.dumps(encode(compute()), allow_nan=False)
        except BaseException:
            with self.engine.begin() as conn:  # give it back at once rather than after the lease
                conn.execute(delete(UNITS).where(*where, UNITS.c.owner == self.owner, UNITS.c.state == "claimed"))
            raise
        with self.engine.begin() as conn:  # a taken-over unit may be stored twice: the same value, kept once
            conn.execute(update(UNITS).where(*where, UNITS.c.state != "done")
                         .values(state="done", result=text, owner=self.owner, heartbeat=time.time()))
        self._values[name] = _decoder(name)(json.loads(text))  # the value exactly as another worker will read it

    def _heartbeat(self) -> None:
        """Renew this worker's claims until closed (a failed renewal is retried: the lease leaves room for it)."""
        while not self._stop.wait(self.lease / 4):
            try:
                with self.engine.begin() as conn:
                    conn.execute(update(UNITS).where(UNITS.c.build == self.build, UNITS.c.owner == self.owner,
                                                     UNITS.c.state == "claimed").values(heartbeat=time.time()))
            except SQLAlchemyError:
                continue


def _decoder(name: str) -> Callable[[Any], Any]:
    return Example.from_row if name.startswith("example/") else (lambda v: v)


def _prefix(names: list[str], values: dict[str, Any], enough: Callable[[list[Any]], bool] | None
            ) -> tuple[list[Any], bool]:
    """The done values in order up to the first missing one; complete when none is missing or the prefix is enough."""
    out: list[Any] = []
    for name in names:
        if enough is not None and enough(out):
            return out, True
        if name not in values:
            return out, False
        out.append(values[name])
    return out, True
