"""The key that created each batch, so a batch whose tasks were all deleted stays its owner's.

Existing batches take the key of their tasks (a batch's tasks all carry the key that created it);
a batch with no task left keeps NULL, which only admin keys see.

Revision ID: 0012_batch_owner
Revises: 0011_chinese_script
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_batch_owner"
down_revision: str | None = "0011_chinese_script"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("batches") as batch:
        batch.add_column(sa.Column("api_key_id", sa.String(32), nullable=True))
    op.execute(
        "UPDATE batches SET api_key_id = "
        "(SELECT MIN(tasks.api_key_id) FROM tasks WHERE tasks.batch_id = batches.id)"
    )


def downgrade() -> None:
    with op.batch_alter_table("batches") as batch:
        batch.drop_column("api_key_id")
