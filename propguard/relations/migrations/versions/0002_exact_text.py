"""Compared text columns compared exactly (binary, no padding) on MariaDB and MySQL.

MariaDB and MySQL compare a VARCHAR under its collation: the server's default
(``utf8mb4_general_ci`` and the like) equates ``Daily``, ``DAILY`` and
``daily `` with ``daily``, so a listing filtered on one backup type, and
Nova's rotation answered from the relations, would count (and let Nova
delete) another schedule's backups. Every column the store compares gets a
binary collation that does not pad: ``utf8mb4_nopad_bin`` on MariaDB
(``utf8mb4_bin`` would still ignore trailing spaces), ``utf8mb4_0900_bin``
on MySQL 8. PostgreSQL (deterministic collations, VARCHAR keeps trailing
spaces) and SQLite (BINARY) already compare exactly: nothing to do there.

Revision ID: 0002_exact_text
Revises: 0001_relations
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_exact_text"
down_revision = "0001_relations"
branch_labels = None
depends_on = None

TABLE = "instance_image_relations"

#: (column, length, nullable): every text column a query compares.
COMPARED = (
    ("image_id", 36, False),
    ("instance_uuid", 36, True),
    ("kind", 32, False),
    ("backup_type", 255, True),
    ("origin", 255, False),
    ("image_owner", 255, True),
    ("instance_project_id", 255, True),
    ("request_id", 255, True),
)


def exact_collation(connection: sa.Connection) -> str:
    """The binary, no-pad utf8mb4 collation of this server."""
    version = str(connection.execute(sa.text("SELECT VERSION()")).scalar_one())
    return "utf8mb4_nopad_bin" if "mariadb" in version.lower() else "utf8mb4_0900_bin"


def _modify(collation: str | None) -> None:
    connection = op.get_bind()
    clauses = []
    for name, length, nullable in COMPARED:
        collate = f" COLLATE {collation}" if collation else ""
        null = "NULL" if nullable else "NOT NULL"
        clauses.append(f"MODIFY `{name}` VARCHAR({length}) CHARACTER SET utf8mb4{collate} {null}")
    connection.execute(sa.text(f"ALTER TABLE `{TABLE}` " + ", ".join(clauses)))


def upgrade() -> None:
    if op.get_bind().dialect.name in ("mysql", "mariadb"):
        _modify(exact_collation(op.get_bind()))


def downgrade() -> None:
    if op.get_bind().dialect.name in ("mysql", "mariadb"):
        # back to the table's default collation (the server's, as 0001 created it)
        connection = op.get_bind()
        default = connection.execute(
            sa.text(
                "SELECT TABLE_COLLATION FROM information_schema.TABLES "
                "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = :t"
            ),
            {"t": TABLE},
        ).scalar_one()
        _modify(default)
