"""The relation table: one row per image Nova created through a qualifying service token.

One row per Glance image (``image_id`` is unique): the instance it was made
from (``instance_uuid``; NULL for a volume-backed snapshot, whose request
does not name the instance), what it is (``kind``), who asserted it
(``origin``, the service user mapped through ``relations_origins``), who
asked (requester user/project), what the later compute-side requests under
the same request id added (instance project, upload), and when and why it
was deleted. Rows are never removed: a deleted image keeps its relation with
``deleted_at`` set, and nothing cascades from instances (backups outlive
their instance).

Ordering is ``recorded_at`` (microseconds, the filter's clock when Glance
answered the create) then ``id`` (monotonic per database): Glance's own
``created_at`` has one-second resolution.

The schema is created and changed only by the Alembic migrations in
``propguard/relations/migrations`` (``propguard db upgrade``); this module is
the model they are checked against.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from propguard.relations.kinds import (  # noqa: F401  (re-exported)
    BACKUP,
    KINDS,
    SERVICE_TOKEN_CONFIRMED,
    SHELVE,
    SNAPSHOT,
    VIA_RECONCILE,
    VIA_SERVICE,
    VIA_USER,
    VOLUME_SNAPSHOT,
)

# Keystone ids are at most 64 characters; Glance's owner column is 255.
ID = sa.String(64)
UUID = sa.String(36)
TEXT255 = sa.String(255)


def _datetime() -> sa.types.TypeEngine:
    """A naive UTC timestamp with microseconds on every backend (MySQL/MariaDB: DATETIME(6))."""
    return sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def _big_id() -> sa.types.TypeEngine:
    """64-bit autoincrement key; SQLite only autoincrements INTEGER PRIMARY KEY."""
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class Base(DeclarativeBase):
    pass


class Relation(Base):
    __tablename__ = "instance_image_relations"

    id: Mapped[int] = mapped_column(_big_id(), primary_key=True, autoincrement=True)
    image_id: Mapped[str] = mapped_column(UUID, nullable=False)
    instance_uuid: Mapped[str | None] = mapped_column(UUID)
    kind: Mapped[str] = mapped_column(sa.String(32), nullable=False)
    backup_type: Mapped[str | None] = mapped_column(TEXT255)
    origin: Mapped[str] = mapped_column(TEXT255, nullable=False)
    service_user_id: Mapped[str | None] = mapped_column(ID)
    service_project_id: Mapped[str | None] = mapped_column(ID)
    requester_user_id: Mapped[str | None] = mapped_column(ID)
    requester_project_id: Mapped[str | None] = mapped_column(ID)
    image_owner: Mapped[str | None] = mapped_column(TEXT255)
    instance_project_id: Mapped[str | None] = mapped_column(TEXT255)
    image_name: Mapped[str | None] = mapped_column(TEXT255)
    base_image_ref: Mapped[str | None] = mapped_column(TEXT255)
    request_id: Mapped[str | None] = mapped_column(TEXT255)
    global_request_id: Mapped[str | None] = mapped_column(TEXT255)
    recorded_at: Mapped[dt.datetime] = mapped_column(_datetime(), nullable=False)
    image_created_at: Mapped[dt.datetime | None] = mapped_column(_datetime())
    compute_patched_at: Mapped[dt.datetime | None] = mapped_column(_datetime())
    upload_completed_at: Mapped[dt.datetime | None] = mapped_column(_datetime())
    upload_method: Mapped[str | None] = mapped_column(sa.String(16))
    provenance: Mapped[str] = mapped_column(sa.String(32), nullable=False)
    asserted: Mapped[dict] = mapped_column(sa.JSON, nullable=False)
    mismatches: Mapped[list] = mapped_column(sa.JSON, nullable=False)
    deleted_at: Mapped[dt.datetime | None] = mapped_column(_datetime())
    deleted_via: Mapped[str | None] = mapped_column(sa.String(16))
    deleted_reason: Mapped[str | None] = mapped_column(sa.String(16))
    deleted_request_id: Mapped[str | None] = mapped_column(TEXT255)
    deleted_by_user_id: Mapped[str | None] = mapped_column(ID)
    deleted_by_project_id: Mapped[str | None] = mapped_column(ID)

    __table_args__ = (
        sa.UniqueConstraint("image_id", name="uq_relations_image_id"),
        # "images of instance X [of kind K [and backup type T]], newest first":
        # an index range scan read backwards, stopped after LIMIT rows.
        sa.Index(
            "ix_relations_instance_kind_type_recent",
            "instance_uuid",
            "kind",
            "backup_type",
            "recorded_at",
            "id",
        ),
        sa.Index("ix_relations_instance_recent", "instance_uuid", "recorded_at", "id"),
        {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"},
    )


TABLE = Relation.__table__
