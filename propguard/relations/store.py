"""The relations store: SQLAlchemy engine, Alembic schema control, idempotent writes, queries.

Backends: SQLite (a file path, the default kind), PostgreSQL and
MariaDB/MySQL by SQLAlchemy URL. ``postgresql://`` means psycopg (3) and
``mysql://`` PyMySQL, the drivers propguard installs.

Writes are *events* (plain dicts, see :mod:`propguard.relations.events`), each
applied idempotently, so the outbox can replay them after an outage without
duplicates: a ``created`` event inserts the relation unless its image already
has one, the later ones are UPDATEs that set what is not set yet.

Pooling and reconnects are SQLAlchemy's: a connection found dead is
invalidated with the whole pool generation (SQLAlchemy's "optimistic"
disconnect handling); the statement is retried once on a fresh connection,
and if that fails too the store is :class:`StoreUnavailable` and the caller
uses the outbox.
"""

from __future__ import annotations

import datetime as dt
import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite

from propguard.relations import models
from propguard.relations.models import TABLE

#: Alembic's version table of this store (not Glance's ``alembic_version``:
#: the store may live in a database next to others).
VERSION_TABLE = "propguard_relations_version"
SCRIPT_LOCATION = "propguard.relations:migrations"
UPGRADE_COMMAND = "propguard db upgrade"


class StoreError(Exception):
    """The store cannot be used as configured (bad URL, schema not current)."""


class StoreUnavailable(StoreError):
    """The database cannot be reached now (the event goes to the outbox)."""


class StoreRefused(StoreError):
    """The database refused a value of a read (bad input: the API answers 400)."""


# -- URLs and engines --------------------------------------------------------


def normalize_url(connection: str) -> str:
    """``relations_connection`` as an SQLAlchemy URL.

    A value without ``://`` is an SQLite file path (made absolute). Bare
    ``postgresql://``/``postgres://`` take psycopg 3 and ``mysql://``/``mariadb://``
    take PyMySQL, the drivers propguard depends on.
    """
    connection = connection.strip()
    if not connection:
        raise StoreError("relations_connection is empty")
    if "://" not in connection:
        return f"sqlite:///{os.path.abspath(os.path.expanduser(connection))}"
    scheme, rest = connection.split("://", 1)
    scheme = {
        "postgresql": "postgresql+psycopg",
        "postgres": "postgresql+psycopg",
        "mysql": "mysql+pymysql",
        "mariadb": "mysql+pymysql",
    }.get(scheme, scheme)
    return f"{scheme}://{rest}"


def redacted(connection: str) -> str:
    """The URL without its password, for logs and messages."""
    try:
        return sa.engine.make_url(normalize_url(connection)).render_as_string(hide_password=True)
    except Exception:
        return "<unparsable relations_connection>"


def create_engine(
    connection: str, *, timeout: float = 2.0, statement_timeout: bool = True
) -> sa.Engine:
    """An engine whose every wait gives up after ``timeout``: connecting, the pool, and
    (``statement_timeout``) each statement and each lock it waits for.

    PostgreSQL: ``statement_timeout`` and ``lock_timeout`` (and
    ``idle_in_transaction_session_timeout``) set at connect. MariaDB:
    ``max_statement_time``, ``lock_wait_timeout`` and ``innodb_lock_wait_timeout``
    (whole seconds, at least 1) set on each new connection; MySQL:
    ``max_execution_time`` (SELECT only) and the two lock timeouts; PyMySQL's read
    and write timeouts on top. SQLite: the busy timeout; WAL journal with
    ``synchronous=FULL`` (a committed relation survives a power cut).
    ``propguard db upgrade`` passes ``statement_timeout=False``: a migration
    rewrites the whole table and must not be cut short.
    """
    try:
        url = sa.engine.make_url(normalize_url(connection))
    except sa.exc.ArgumentError as exc:
        raise StoreError(f"relations_connection is not a database URL or path: {exc}") from None
    backend = url.get_backend_name()
    seconds = max(1, math.ceil(timeout))
    millis = max(1, int(timeout * 1000))
    kwargs: dict[str, Any] = {"pool_timeout": timeout}
    connect_args: dict[str, Any] = {}
    if backend == "sqlite":
        if url.database and url.database != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(url.database)) or ".", exist_ok=True)
        connect_args["timeout"] = timeout
    elif backend == "postgresql":
        connect_args["connect_timeout"] = seconds
        # a peer that vanishes mid-statement: give up after timeout, not TCP's minutes
        connect_args["tcp_user_timeout"] = millis
        if statement_timeout:
            connect_args["options"] = (
                f"-c statement_timeout={millis} -c lock_timeout={millis} "
                f"-c idle_in_transaction_session_timeout={max(millis, 10000)}"
            )
        kwargs["pool_recycle"] = 3600
    elif backend in ("mysql", "mariadb"):
        connect_args.update(connect_timeout=seconds, read_timeout=seconds, write_timeout=seconds)
        kwargs["pool_recycle"] = 3600  # below MariaDB's default wait_timeout
    else:
        raise StoreError(f"relations_connection: unsupported database {backend!r}")
    try:
        engine = sa.create_engine(url, connect_args=connect_args, **kwargs)
    except (ImportError, sa.exc.ArgumentError) as exc:
        raise StoreError(f"relations_connection {redacted(connection)}: {exc}") from None
    if backend == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    elif backend in ("mysql", "mariadb") and statement_timeout:
        sa.event.listen(engine, "connect", _mysql_timeouts(timeout))
    return engine


def _mysql_timeouts(timeout: float):
    seconds = max(1, math.ceil(timeout))

    def set_timeouts(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("SELECT VERSION()")
            version = str(cursor.fetchone()[0])
            if "mariadb" in version.lower():
                statement = f"SET SESSION max_statement_time = {float(timeout)!r}"
            else:
                statement = f"SET SESSION max_execution_time = {max(1, int(timeout * 1000))}"
            cursor.execute(statement)
            cursor.execute(
                f"SET SESSION lock_wait_timeout = {seconds}, innodb_lock_wait_timeout = {seconds}"
            )
        finally:
            cursor.close()

    return set_timeouts


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()


# -- schema ------------------------------------------------------------------


def _alembic_config(connection: sa.Connection):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    heads = ScriptDirectory.from_config(config).get_heads()
    if len(heads) != 1:
        raise StoreError(f"relations migrations have {len(heads)} heads: {heads}")
    return heads[0]


def current_revision(engine: sa.Engine) -> str | None:
    """The store's Alembic revision; None for an empty database."""
    from alembic.runtime.migration import MigrationContext

    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
            return context.get_current_revision()
    except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
        raise StoreUnavailable(f"cannot reach {_engine_name(engine)}: {exc.orig}") from None


def upgrade(engine: sa.Engine, revision: str = "head") -> str:
    """Migrate the store to ``revision`` (default: the newest); returns the revision reached."""
    from alembic import command

    try:
        with engine.begin() as connection:
            command.upgrade(_alembic_config(connection), revision)
    except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
        raise StoreUnavailable(f"cannot reach {_engine_name(engine)}: {exc.orig}") from None
    return current_revision(engine) or ""


def check_current(engine: sa.Engine) -> None:
    """Raise :class:`StoreError` naming the upgrade command unless the schema is at head."""
    have, want = current_revision(engine), head_revision()
    if have != want:
        state = "empty (no relations schema)" if have is None else f"at revision {have}"
        raise StoreError(
            f"propguard: the relations store {_engine_name(engine)} is {state}, "
            f"this propguard needs {want}: run `{UPGRADE_COMMAND} --connection URL` "
            f"(or `{UPGRADE_COMMAND} --config-file glance-api.conf`) first"
        )


def _engine_name(engine: sa.Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


def open_store(connection: str, *, timeout: float = 2.0, auto_upgrade: bool | None = None):
    """A :class:`RelationStore` ready to use, as the filter opens it at start.

    SQLite is upgraded in place (an embedded file nobody else migrates);
    PostgreSQL and MariaDB must already be current (``propguard db upgrade``),
    or this raises :class:`StoreError` naming the command. An unreachable
    server raises :class:`StoreUnavailable`.
    """
    engine = create_engine(connection, timeout=timeout)
    if auto_upgrade is None:
        auto_upgrade = engine.dialect.name == "sqlite"
    try:
        if auto_upgrade:
            upgrade(engine)
        else:
            check_current(engine)
    except BaseException:
        engine.dispose()
        raise
    return RelationStore(engine)


# -- the store -----------------------------------------------------------------


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def parse_time(value: str | None) -> dt.datetime | None:
    """An ISO-8601 time (Glance's ``2026-11-29T10:00:00Z`` or ours) as naive UTC."""
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (TypeError, ValueError):
        return None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(dt.UTC).replace(tzinfo=None)
    return parsed


class RelationStore:
    """Reads and idempotent writes of the relations table."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        #: the same pool, each statement committed on its own
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        dbapi = engine.dialect.loaded_dbapi
        self._dbapi_unavailable = (dbapi.OperationalError, dbapi.InterfaceError)

    def dispose(self) -> None:
        self.engine.dispose()

    # -- writes ----------------------------------------------------------

    def apply(self, events: Sequence[Mapping[str, Any]]) -> None:
        """Apply ``events`` in order, in one transaction (all or none).

        Raises :class:`StoreUnavailable` when the database cannot be reached
        (after one retry on a fresh connection if SQLAlchemy found the pooled
        one dead); other database errors propagate.
        """
        if not events:
            return
        statements = [self._statement(event) for event in events]
        self._run(statements)

    def _run(self, statements: list[sa.Executable]) -> None:
        for attempt in (1, 2):
            try:
                if len(statements) == 1:
                    # one statement is atomic by itself: one round trip, no BEGIN/COMMIT
                    with self._autocommit.connect() as connection:
                        connection.execute(statements[0])
                    return
                with self.engine.begin() as connection:
                    for statement in statements:
                        connection.execute(statement)
                return
            except sa.exc.DBAPIError as exc:
                if attempt == 1 and exc.connection_invalidated:
                    continue  # the pool was refreshed: one more try on a new connection
                if isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError) or (
                    exc.connection_invalidated
                ):
                    raise StoreUnavailable(str(exc.orig)) from exc
                raise
            except sa.exc.TimeoutError as exc:  # no pooled connection within pool_timeout
                raise StoreUnavailable(str(exc)) from exc
            except self._dbapi_unavailable as exc:
                # A driver error SQLAlchemy did not wrap (e.g. PyMySQL failing while a
                # stale pooled connection is switched to autocommit): drop the pool's
                # connections, as SQLAlchemy does for a disconnect, and try once more.
                self.engine.dispose(close=False)
                if attempt == 1:
                    continue
                raise StoreUnavailable(str(exc)) from exc

    def _statement(self, event: Mapping[str, Any]) -> sa.Executable:
        kind = event["event"]
        if kind == "created":
            return self._insert(event)
        at = parse_time(event["at"]) or _now()
        image = TABLE.c.image_id == event["image_id"]
        same_request = TABLE.c.request_id == event.get("request_id")
        if kind == "uploaded":
            return (
                sa.update(TABLE)
                .where(image, same_request)
                .values(
                    upload_completed_at=sa.func.coalesce(TABLE.c.upload_completed_at, at),
                    upload_method=sa.func.coalesce(TABLE.c.upload_method, event.get("method")),
                )
            )
        if kind == "patched":
            values: dict[str, Any] = {
                "compute_patched_at": sa.func.coalesce(TABLE.c.compute_patched_at, at)
            }
            if event.get("owner_id"):
                values["instance_project_id"] = sa.func.coalesce(
                    TABLE.c.instance_project_id, event["owner_id"]
                )
            return sa.update(TABLE).where(image, same_request).values(**values)
        if kind == "member_added":
            return (
                sa.update(TABLE)
                .where(image, same_request)
                .values(
                    instance_project_id=sa.func.coalesce(
                        TABLE.c.instance_project_id, event["member"]
                    )
                )
            )
        if kind == "deleted":
            return (
                sa.update(TABLE)
                .where(image, TABLE.c.deleted_at.is_(None))
                .values(
                    deleted_at=at,
                    deleted_via=event["via"],
                    deleted_reason=_deleted_reason(event),
                    deleted_request_id=event.get("request_id"),
                    deleted_by_user_id=event.get("user_id"),
                    deleted_by_project_id=event.get("project_id"),
                )
            )
        raise ValueError(f"unknown relation event {kind!r}")

    def _insert(self, event: Mapping[str, Any]) -> sa.Executable:
        row = {column: event.get(column) for column in _INSERTED}
        row["recorded_at"] = parse_time(event["at"]) or _now()
        row["image_created_at"] = parse_time(event.get("image_created_at"))
        row["provenance"] = event.get("provenance") or models.SERVICE_TOKEN_CONFIRMED
        row["asserted"] = dict(event.get("asserted") or {})
        row["mismatches"] = list(event.get("mismatches") or [])
        if self.dialect == "postgresql":
            return (
                postgresql.insert(TABLE)
                .values(row)
                .on_conflict_do_nothing(index_elements=["image_id"])
            )
        if self.dialect == "sqlite":
            return (
                sqlite.insert(TABLE).values(row).on_conflict_do_nothing(index_elements=["image_id"])
            )
        statement = mysql.insert(TABLE).values(row)
        return statement.on_duplicate_key_update(image_id=statement.inserted.image_id)

    def ping(self) -> None:
        """Raise :class:`StoreUnavailable` unless the database answers now."""
        self._read(sa.select(sa.literal(1)))

    # -- reads -----------------------------------------------------------

    def _read(self, statement: sa.Executable) -> list[dict[str, Any]]:
        """Rows of ``statement``. Never a bare database error: a value the database
        refuses is :class:`StoreRefused` (400), anything else :class:`StoreUnavailable`
        (503: unreachable, timed out, locked, or a schema not as expected)."""
        try:
            # autocommit: one round trip (no BEGIN, no ROLLBACK when the connection returns)
            with self._autocommit.connect() as connection:
                return [dict(row._mapping) for row in connection.execute(statement)]
        except sa.exc.DataError as exc:
            raise StoreRefused(str(exc.orig)) from exc
        except (sa.exc.DBAPIError, sa.exc.TimeoutError) as exc:
            raise StoreUnavailable(str(getattr(exc, "orig", exc))) from exc
        except self._dbapi_unavailable as exc:
            self.engine.dispose(close=False)
            raise StoreUnavailable(str(exc)) from exc

    def get(self, image_id: str) -> dict[str, Any] | None:
        rows = self._read(sa.select(TABLE).where(TABLE.c.image_id == image_id))
        return rows[0] if rows else None

    def list_for_instance(
        self,
        instance_uuid: str,
        *,
        kind: str | None = None,
        backup_type: str | None = None,
        origin: str | None = None,
        include_deleted: bool = False,
        owner: str | None = None,
        limit: int = 25,
        after: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """Relations of the instance, newest first (``recorded_at``, then ``id``).

        ``owner``: only images this project owns (None: all). ``after``: the
        row of the page's marker; rows strictly older follow it.
        """
        query = sa.select(TABLE).where(TABLE.c.instance_uuid == instance_uuid)
        query = _filtered(query, kind, backup_type, origin, include_deleted, owner)
        if after is not None:
            query = query.where(
                sa.or_(
                    TABLE.c.recorded_at < after["recorded_at"],
                    sa.and_(TABLE.c.recorded_at == after["recorded_at"], TABLE.c.id < after["id"]),
                )
            )
        query = query.order_by(TABLE.c.recorded_at.desc(), TABLE.c.id.desc()).limit(limit)
        return self._read(query)

    def list_recent(
        self, *, kind: str | None = None, include_deleted: bool = False, limit: int = 100
    ) -> list[dict[str, Any]]:
        """The newest relations of any instance (``propguard relations list`` without --instance)."""
        query = _filtered(sa.select(TABLE), kind, None, None, include_deleted, None)
        return self._read(query.order_by(TABLE.c.id.desc()).limit(limit))

    def rotation_ids(
        self,
        instance_uuid: str,
        backup_type: str,
        origin: str,
        instance_project_id: str | None = None,
    ) -> list[str]:
        """Ids of the live backups Nova's rotation may count for this instance and type.

        ``instance_project_id``: the instance's project as nova-compute gave it
        for the backup being made; relations whose compute side named another
        project are not counted (see ``propguard.relations.rotation``).
        """
        query = sa.select(TABLE.c.image_id).where(
            TABLE.c.instance_uuid == instance_uuid,
            TABLE.c.kind == models.BACKUP,
            TABLE.c.backup_type == backup_type,
            TABLE.c.origin == origin,
            TABLE.c.deleted_at.is_(None),
        )
        if instance_project_id is not None:
            query = query.where(
                sa.or_(
                    TABLE.c.instance_project_id.is_(None),
                    TABLE.c.instance_project_id == instance_project_id,
                )
            )
        query = query.order_by(TABLE.c.recorded_at.desc(), TABLE.c.id.desc())
        return [row["image_id"] for row in self._read(query)]

    def relation_of_request(self, image_ids: Iterable[str], request_id: str) -> list[dict]:
        return self._read(
            sa.select(TABLE).where(
                TABLE.c.request_id == request_id, TABLE.c.image_id.in_(list(image_ids))
            )
        )

    def anchor(self, instance_uuid: str, request_id: str) -> dict[str, Any] | None:
        """The backup of this instance created under ``request_id`` (the one being rotated for)."""
        rows = self._read(
            sa.select(TABLE)
            .where(
                TABLE.c.instance_uuid == instance_uuid,
                TABLE.c.request_id == request_id,
                TABLE.c.kind == models.BACKUP,
            )
            .order_by(TABLE.c.id.desc())
            .limit(1)
        )
        return rows[0] if rows else None

    def live_batches(self, batch: int = 500) -> Iterator[list[dict[str, Any]]]:
        """Every relation not marked deleted, in batches of ``batch`` (by id)."""
        last = 0
        while True:
            rows = self._read(
                sa.select(TABLE.c.id, TABLE.c.image_id)
                .where(TABLE.c.deleted_at.is_(None), TABLE.c.id > last)
                .order_by(TABLE.c.id)
                .limit(batch)
            )
            if not rows:
                return
            yield rows
            last = rows[-1]["id"]

    def count(self, *, include_deleted: bool = True) -> int:
        query = sa.select(sa.func.count().label("n")).select_from(TABLE)
        if not include_deleted:
            query = query.where(TABLE.c.deleted_at.is_(None))
        return int(self._read(query)[0]["n"])


def _filtered(query, kind, backup_type, origin, include_deleted, owner):
    if kind is not None:
        query = query.where(TABLE.c.kind == kind)
    if backup_type is not None:
        query = query.where(TABLE.c.backup_type == backup_type)
    if origin is not None:
        query = query.where(TABLE.c.origin == origin)
    if not include_deleted:
        query = query.where(TABLE.c.deleted_at.is_(None))
    if owner is not None:
        query = query.where(TABLE.c.image_owner == owner)
    return query


def _deleted_reason(event: Mapping[str, Any]) -> Any:
    """Why the image went, from who deleted it and what the relation is.

    A DELETE relayed by Nova's service token under the relation's own request
    id before its upload completed is Nova cleaning up a failed snapshot
    (``aborted``); otherwise it is backup rotation (a backup), unshelve or
    deletion of a shelved server (a shelve image), or another Nova action
    (``nova``). Without the service
    token a user deleted it; ``reconciled``: found gone from Glance.
    """
    via = event["via"]
    if via == models.VIA_RECONCILE:
        return "reconciled"
    if via == models.VIA_USER:
        return "user"
    return sa.case(
        (
            sa.and_(
                TABLE.c.request_id == event.get("request_id"),
                TABLE.c.upload_completed_at.is_(None),
            ),
            "aborted",
        ),
        (TABLE.c.kind == models.BACKUP, "rotation"),
        (TABLE.c.kind == models.SHELVE, "unshelve"),
        else_="nova",
    )


#: Columns a ``created`` event carries under the same names.
_INSERTED = (
    "image_id",
    "instance_uuid",
    "kind",
    "backup_type",
    "origin",
    "service_user_id",
    "service_project_id",
    "requester_user_id",
    "requester_project_id",
    "image_owner",
    "instance_project_id",
    "image_name",
    "base_image_ref",
    "request_id",
    "global_request_id",
)
