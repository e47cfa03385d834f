"""Metadata of tasks created from a media link (TikTok, Douyin, YouTube, Bilibili, ...).

Revision ID: 0007_link_metadata
Revises: 0006_batches
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_link_metadata"
down_revision: str | None = "0006_batches"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("link_url", sa.Text(), nullable=True))
        batch.add_column(sa.Column("link_webpage_url", sa.Text(), nullable=True))
        batch.add_column(sa.Column("link_title", sa.Text(), nullable=True))
        batch.add_column(sa.Column("link_author", sa.String(255), nullable=True))
        batch.add_column(sa.Column("link_duration", sa.Float(), nullable=True))
        batch.add_column(sa.Column("link_thumbnail", sa.Text(), nullable=True))
        batch.add_column(sa.Column("link_media_id", sa.String(255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        for column in (
            "link_media_id",
            "link_thumbnail",
            "link_duration",
            "link_author",
            "link_title",
            "link_webpage_url",
            "link_url",
        ):
            batch.drop_column(column)
