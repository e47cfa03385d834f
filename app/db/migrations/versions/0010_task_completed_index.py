"""An index on (status, completed_at) of tasks, for the catch-up sweep of task.completed triggers.

Revision ID: 0010_task_completed_index
Revises: 0009_workflows
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010_task_completed_index"
down_revision: str | None = "0009_workflows"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_tasks_status_completed", "tasks", ["status", "completed_at"])


def downgrade() -> None:
    op.drop_index("ix_tasks_status_completed", table_name="tasks")
