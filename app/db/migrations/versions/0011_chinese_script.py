"""The Chinese script a task's output is converted to.

Revision ID: 0011_chinese_script
Revises: 0010_task_completed_index
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_chinese_script"
down_revision: str | None = "0010_task_completed_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("chinese_script", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("chinese_script")
