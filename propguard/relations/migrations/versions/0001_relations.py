"""Instance-image relations table with its "newest first per instance" indexes.

Revision ID: 0001_relations
Revises:
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0001_relations"
down_revision = None
branch_labels = None
depends_on = None

TABLE = "instance_image_relations"


def _datetime():
    return sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("image_id", sa.String(36), nullable=False),
        sa.Column("instance_uuid", sa.String(36)),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("backup_type", sa.String(255)),
        sa.Column("origin", sa.String(255), nullable=False),
        sa.Column("service_user_id", sa.String(64)),
        sa.Column("service_project_id", sa.String(64)),
        sa.Column("requester_user_id", sa.String(64)),
        sa.Column("requester_project_id", sa.String(64)),
        sa.Column("image_owner", sa.String(255)),
        sa.Column("instance_project_id", sa.String(255)),
        sa.Column("image_name", sa.String(255)),
        sa.Column("base_image_ref", sa.String(255)),
        sa.Column("request_id", sa.String(255)),
        sa.Column("global_request_id", sa.String(255)),
        sa.Column("recorded_at", _datetime(), nullable=False),
        sa.Column("image_created_at", _datetime()),
        sa.Column("compute_patched_at", _datetime()),
        sa.Column("upload_completed_at", _datetime()),
        sa.Column("upload_method", sa.String(16)),
        sa.Column("provenance", sa.String(32), nullable=False),
        sa.Column("asserted", sa.JSON, nullable=False),
        sa.Column("mismatches", sa.JSON, nullable=False),
        sa.Column("deleted_at", _datetime()),
        sa.Column("deleted_via", sa.String(16)),
        sa.Column("deleted_reason", sa.String(16)),
        sa.Column("deleted_request_id", sa.String(255)),
        sa.Column("deleted_by_user_id", sa.String(64)),
        sa.Column("deleted_by_project_id", sa.String(64)),
        sa.UniqueConstraint("image_id", name="uq_relations_image_id"),
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
    )
    op.create_index(
        "ix_relations_instance_kind_type_recent",
        TABLE,
        ["instance_uuid", "kind", "backup_type", "recorded_at", "id"],
    )
    op.create_index("ix_relations_instance_recent", TABLE, ["instance_uuid", "recorded_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_relations_instance_recent", table_name=TABLE)
    op.drop_index("ix_relations_instance_kind_type_recent", table_name=TABLE)
    op.drop_table(TABLE)
