"""Batches: several uploads created together and followed as one.

Revision ID: 0006_batches
Revises: 0005_summaries
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.db.models import UTCDateTime

revision: str = "0006_batches"
down_revision: str | None = "0005_summaries"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "batches",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("batch_id", sa.String(32), nullable=True))
    op.create_index("ix_tasks_batch_id", "tasks", ["batch_id"])


def downgrade() -> None:
    op.drop_index("ix_tasks_batch_id", table_name="tasks")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("batch_id")
    op.drop_table("batches")
