"""API keys, and the key that created each task.

The new ``cancelled`` task status needs no schema change: ``tasks.status`` is a plain string column.

Revision ID: 0008_auth
Revises: 0007_link_metadata
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.db.models import UTCDateTime

revision: str = "0008_auth"
down_revision: str | None = "0007_link_metadata"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("is_admin", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.Column("last_used_at", UTCDateTime(), nullable=True),
        sa.UniqueConstraint("key_hash", name="uq_api_keys_key_hash"),
    )
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("api_key_id", sa.String(32), nullable=True))
        batch.create_index("ix_tasks_api_key_id", ["api_key_id"])


def downgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.drop_index("ix_tasks_api_key_id")
        batch.drop_column("api_key_id")
    op.drop_table("api_keys")
