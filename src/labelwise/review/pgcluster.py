"""A throwaway PostgreSQL cluster for tests and benchmarks: Debian's ``initdb`` + ``pg_ctl``
on a temporary folder and a free port on 127.0.0.1 (run as the ``postgres`` user when we are
root), fsync off, stopped (``-m immediate``) and removed after. Not for real data.

``throwaway_cluster()`` yields a ``postgresql+psycopg://postgres@127.0.0.1:PORT`` URL prefix
(add ``/DBNAME``); :func:`create_database` makes a new empty database in it. The binaries are
``$LABELWISE_PG_BIN``, else the newest ``/usr/lib/postgresql/N/bin``;
:class:`PostgresUnavailableError` when they or psycopg are missing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from labelwise.errors import MissingDependencyError

__all__ = ["PostgresUnavailableError", "create_database", "pg_bin", "throwaway_cluster"]


class PostgresUnavailableError(MissingDependencyError):
    """The PostgreSQL server binaries or psycopg 3 are not installed."""


def pg_bin() -> Path:
    """$LABELWISE_PG_BIN, else the newest /usr/lib/postgresql/N/bin (Debian's layout)."""
    if os.environ.get("LABELWISE_PG_BIN"):
        return Path(os.environ["LABELWISE_PG_BIN"])
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                   key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0)
    return found[-1].parent if found else Path("/usr/lib/postgresql/15/bin")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd
    runuser = shutil.which("runuser")
    return [runuser, "-u", "postgres", "--", *cmd] if runuser else ["su", "postgres", "-c",
                                                                     " ".join(cmd)]


def check_available() -> Path:
    """The binaries' folder; :class:`PostgresUnavailableError` (with the install hint) when
    initdb, pg_ctl or psycopg is missing."""
    binaries = pg_bin()
    if not (binaries / "initdb").exists() or not (binaries / "pg_ctl").exists():
        raise PostgresUnavailableError(f"PostgreSQL binaries absent ({binaries}/initdb, pg_ctl): "
                                       "apt-get install postgresql (make test does when root)")
    try:
        import psycopg  # noqa: F401
    except ImportError as exc:
        raise PostgresUnavailableError("PostgreSQL needs psycopg 3: pip install "
                                       "'labelwise[review]'") from exc
    return binaries


@contextlib.contextmanager
def throwaway_cluster(*, max_connections: int = 60) -> Iterator[str]:
    """Yield a ``postgresql+psycopg://`` URL prefix (add a database name) of a fresh cluster."""
    binaries = check_available()
    base = Path(tempfile.mkdtemp(prefix="labelwise-pg-"))
    data = base / "data"
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
        base.chmod(0o700)
    port = _free_port()
    env = {**os.environ, "LC_ALL": "C"}
    try:
        subprocess.run(_as_postgres([str(binaries / "initdb"), "-D", str(data), "-A", "trust",
                                     "-U", "postgres", "-E", "UTF8", "--no-sync"]),
                       check=True, capture_output=True, env=env, timeout=120)
        opts = (f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off "
                f"-c max_connections={int(max_connections)}")
        subprocess.run(_as_postgres([str(binaries / "pg_ctl"), "-D", str(data), "-o", opts,
                                     "-l", str(base / "log"), "-w", "-t", "60", "start"]),
                       check=True, capture_output=True, env=env, timeout=120)
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}"
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(_as_postgres([str(binaries / "pg_ctl"), "-D", str(data), "-m",
                                         "immediate", "-w", "stop"]),
                           capture_output=True, env=env, timeout=120)
        shutil.rmtree(base, ignore_errors=True)


def create_database(prefix: str) -> str:
    """A new empty database in the cluster at ``prefix``; its URL."""
    import psycopg

    name = "t" + uuid.uuid4().hex[:12]
    with psycopg.connect(prefix.replace("postgresql+psycopg", "postgresql") + "/postgres",
                         autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return f"{prefix}/{name}"
