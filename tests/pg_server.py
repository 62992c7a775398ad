"""A throwaway PostgreSQL server for tests, from the Debian ``postgresql`` package's binaries.

``postgres_url`` (a pytest fixture, session scope) runs ``initdb`` into a fresh folder under /tmp, starts the
server with ``pg_ctl`` listening only on a Unix socket in that folder (no TCP port, so nothing else on the
machine can collide with it or reach it), creates a database and yields its SQLAlchemy URL
(``postgresql://postgres@/advdla?host=SOCKET_DIR``). Afterwards it stops the server and removes the folder.

PostgreSQL refuses to run as root, so as root the server runs as the ``postgres`` system user the package
creates (``runuser -u postgres --``) and the folder is handed to it; as anyone else it runs as that user.
Durability is switched off (``fsync=off``): the server is thrown away, only the clients get killed.

Without the package (or the psycopg2 driver) the tests that use it are skipped with a line saying what to
install; with ``ADVDLA_REQUIRE_POSTGRES=1`` (set by ``.ci/run``) they fail instead, so CI never passes by
skipping them.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

DATABASE = "advdla"
INSTALL = "install the Debian package (apt-get install -y postgresql) and the driver (pip install -e '.[test]')"


class PostgresUnavailable(RuntimeError):
    """The server cannot be started here: no binaries, no driver, no unprivileged user, or it failed to start."""


def find_bin_dir() -> Path:
    """The newest ``/usr/lib/postgresql/VERSION/bin`` that holds initdb and pg_ctl (or the ones on PATH)."""
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: _version(Path(d).parent.name), reverse=True)
    for d in dirs + [str(Path(p).parent) for p in filter(None, [shutil.which("initdb"), shutil.which("pg_ctl")])]:
        if Path(d, "initdb").is_file() and Path(d, "pg_ctl").is_file():
            return Path(d)
    raise PostgresUnavailable("no PostgreSQL server binaries (initdb, pg_ctl) in /usr/lib/postgresql/*/bin or on PATH")


def _version(name: str) -> tuple[int, ...]:
    return tuple(int(p) for p in name.split(".") if p.isdigit()) or (0,)


def _as_server_user() -> tuple[list[str], str | None]:
    """(the command prefix that runs a program as the server's user, that user to chown the folder to or None)."""
    if os.geteuid() != 0:
        return [], None
    runuser = shutil.which("runuser")
    try:
        import pwd

        pwd.getpwnam("postgres")
    except KeyError:
        raise PostgresUnavailable("running as root, and no 'postgres' system user to run the server as") from None
    if runuser is None:
        raise PostgresUnavailable("running as root and there is no runuser to run the server as the 'postgres' user")
    return [runuser, "-u", "postgres", "--"], "postgres"


def _run(cmd: list[str], what: str, timeout: float = 120) -> None:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise PostgresUnavailable(f"{what} did not finish in {timeout:.0f} s") from None
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise PostgresUnavailable(f"{what} failed (exit {proc.returncode}): {' | '.join(tail)}")


@contextmanager
def running_postgres(database: str = DATABASE) -> Iterator[str]:
    """Start a server in a fresh folder, create ``database``, yield its SQLAlchemy URL; stop and remove it after."""
    bin_dir = find_bin_dir()
    try:
        import psycopg2  # noqa: F401  (the test extra's driver; the tests read the study through it)
    except ImportError:
        raise PostgresUnavailable("the PostgreSQL driver psycopg2 is not installed (psycopg2-binary)") from None
    prefix, owner = _as_server_user()
    root = Path(tempfile.mkdtemp(prefix="advdla-pg-"))  # under /tmp: a pytest tmp_path is not reachable by another user
    data, sock, log = root / "data", root / "sock", root / "server.log"
    sock.mkdir()
    if owner is not None:
        shutil.chown(root, owner)
        shutil.chown(sock, owner)
    try:
        _run([*prefix, str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync",
              "-E", "UTF8", "--locale=C"], "initdb")
        opts = f"-k {sock} -c listen_addresses='' -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        pg_ctl = [*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-w", "-t", "60"]
        _run([*pg_ctl, "-l", str(log), "-o", opts, "start"], "pg_ctl start")
        _run([*prefix, str(bin_dir / "createdb"), "-h", str(sock), "-U", "postgres", database], "createdb")
        yield f"postgresql://postgres@/{database}?host={sock}"
    finally:
        if (data / "postmaster.pid").exists():  # started, even if pg_ctl gave up waiting for it
            subprocess.run([*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                           capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


def _unavailable(reason: str) -> None:
    """Skip, or fail where PostgreSQL is required (``ADVDLA_REQUIRE_POSTGRES=1``, as in CI)."""
    message = f"PostgreSQL test server unavailable: {reason}; {INSTALL}"
    if os.environ.get("ADVDLA_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"{message} (ADVDLA_REQUIRE_POSTGRES=1: required here, not skipped)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """The SQLAlchemy URL of a database on a throwaway PostgreSQL server, shared by the session's tests."""
    server = running_postgres()
    try:
        url = server.__enter__()
    except PostgresUnavailable as exc:
        _unavailable(str(exc))
    try:
        yield url
    finally:
        server.__exit__(None, None, None)
