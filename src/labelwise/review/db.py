"""Opening a review database: URL, engine, schema version.

``open_db(url)``: ``url`` is a SQLAlchemy URL (``sqlite:///file.db``,
``postgresql+psycopg://user@host:port/db``; ``postgresql://`` means psycopg 3) or a plain
file path (SQLite). SQLite runs in WAL mode with foreign keys on, and every transaction is
``BEGIN IMMEDIATE`` (one writer at a time, so a read-then-write is never raced).

The schema is versioned by Alembic; its scripts ship in ``labelwise/review/migrations`` and
run programmatically. At open: the database's version is read; an empty database is created
only when ``create=True`` (``labelwise review init``); an older version is migrated to the
current one (reported in ``Database.migrated``), never used as it is; a
version this labelwise does not know (a newer one), or tables without a version, is an error.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from .errors import DatabaseUnavailableError, SchemaVersionError

__all__ = ["Database", "head_revision", "migrate", "normalize_url", "open_db", "schema_revision"]

_MIGRATIONS = Path(__file__).with_name("migrations")


def _sqlalchemy():
    try:
        import sqlalchemy
    except ImportError as exc:  # pragma: no cover - depends on the environment
        from labelwise.errors import MissingDependencyError

        raise MissingDependencyError("the review database needs SQLAlchemy and Alembic: pip "
                                     "install 'labelwise[review]'") from exc
    return sqlalchemy


def normalize_url(url: str) -> str:
    """A SQLAlchemy URL: a plain path becomes ``sqlite:///ABS``; ``postgresql://`` and
    ``postgres://`` use psycopg 3."""
    url = str(url)
    if "://" not in url:
        return "sqlite:///" + str(Path(url).resolve())
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def redact(url: str) -> str:
    """The URL without its password."""
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


def _config(connection):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    return ScriptDirectory.from_config(cfg).get_current_head()


def schema_revision(engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def migrate(engine, revision: str = "head") -> None:
    """Upgrade the schema to ``revision`` (Alembic, in one transaction)."""
    from alembic import command

    with engine.begin() as conn:
        command.upgrade(_config(conn), revision)


def _make_engine(url: str, **kw: Any):
    sa = _sqlalchemy()
    url = normalize_url(url)
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False},
                                  **kw)

        @sa.event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn, _record):
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @sa.event.listens_for(engine, "begin")
        def _on_begin(conn):
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    kw.setdefault("pool_pre_ping", True)
    kw.setdefault("connect_args", {"connect_timeout": 10})
    return sa.create_engine(url, **kw)


def open_db(url: str, *, create: bool = False, **engine_kw: Any) -> Database:
    """The the review database at ``url``, its schema at the current version (see
    the module docstring); raises :class:`DatabaseUnavailableError` when it does not answer."""
    sa = _sqlalchemy()
    engine = _make_engine(url, **engine_kw)
    shown = redact(normalize_url(url))
    migrated = None
    try:
        current = schema_revision(engine)
        head = head_revision()
        if current is None:
            tables = set(sa.inspect(engine).get_table_names())
            if tables:
                raise SchemaVersionError(
                    f"{shown}: holds tables ({', '.join(sorted(tables)[:5])}) but no labelwise "
                    "review schema version; not a review database")
            if not create:
                raise SchemaVersionError(f"{shown}: empty database; run labelwise review init "
                                         "--db URL first")
            migrate(engine)
            migrated = (None, head)
        elif current != head:
            from alembic.script import ScriptDirectory
            from alembic.util import CommandError

            script = ScriptDirectory.from_config(_config(None))
            try:
                known = script.get_revision(current) is not None
            except CommandError:
                known = False
            if not known:
                raise SchemaVersionError(
                    f"{shown}: schema version {current!r} is unknown to this labelwise (its "
                    f"newest is {head!r}); upgrade labelwise")
            migrate(engine)
            migrated = (current, head)
    except sa.exc.OperationalError as exc:
        engine.dispose()
        raise DatabaseUnavailableError(f"{shown}: database unreachable: "
                                       f"{str(exc.orig).strip().splitlines()[0]}") from exc
    except BaseException:
        engine.dispose()
        raise
    return Database(engine, shown, migrated)


class Database:
    """An open review database: ``engine`` (SQLAlchemy), ``url`` (password hidden),
    ``migrated`` ((from, to) revisions when :func:`open_db` created or upgraded the schema,
    else None)."""

    def __init__(self, engine, url: str, migrated: tuple[str | None, str] | None) -> None:
        self.engine = engine
        self.url = url
        self.migrated = migrated

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
