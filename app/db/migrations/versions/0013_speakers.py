"""Speaker diarization: enrolled voices (``speakers``) and a ``diarize`` flag on tasks.

Revision ID: 0013_speakers
Revises: 0012_batch_owner
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.db.models import UTCDateTime

revision: str = "0013_speakers"
down_revision: str | None = "0012_batch_owner"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "speakers",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("embedding", sa.JSON(), nullable=False),
        sa.Column("sample_seconds", sa.Float(), nullable=False),
        sa.Column("api_key_id", sa.String(32), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_speakers_api_key_id", "speakers", ["api_key_id"])
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("diarize", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("diarize")
    op.drop_index("ix_speakers_api_key_id", table_name="speakers")
    op.drop_table("speakers")
