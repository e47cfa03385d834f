"""Workflows: documents, runs, steps, trigger firings, and the run that created a task.

Revision ID: 0009_workflows
Revises: 0008_auth
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.db.models import UTCDateTime

revision: str = "0009_workflows"
down_revision: str | None = "0008_auth"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "workflows",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("trigger_kinds", sa.String(255), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("api_key_id", sa.String(32), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_workflows_api_key_id", "workflows", ["api_key_id"])
    op.create_table(
        "workflow_runs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("workflow_id", sa.String(32), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("trigger", sa.String(64), nullable=False),
        sa.Column("input", sa.JSON(), nullable=False),
        sa.Column("input_media", sa.String(255), nullable=True),
        sa.Column("artifacts", sa.JSON(), nullable=False),
        sa.Column("api_key_id", sa.String(32), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("claimed_by", sa.String(128), nullable=True),
        sa.Column("claim_token", sa.String(32), nullable=True),
        sa.Column("lease_expires_at", UTCDateTime(), nullable=True),
        sa.Column("next_check_at", UTCDateTime(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=True),
        sa.Column("completed_at", UTCDateTime(), nullable=True),
    )
    op.create_index("ix_workflow_runs_due", "workflow_runs", ["status", "next_check_at"])
    op.create_index("ix_workflow_runs_workflow_id", "workflow_runs", ["workflow_id"])
    op.create_index("ix_workflow_runs_api_key_id", "workflow_runs", ["api_key_id"])
    op.create_index("ix_workflow_runs_created_at", "workflow_runs", ["created_at"])
    op.create_table(
        "workflow_steps",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("step_id", sa.String(64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("uses", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("history", sa.JSON(), nullable=False),
        sa.Column("task_id", sa.String(32), nullable=True),
        sa.Column("output", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=True),
        sa.Column("started_at", UTCDateTime(), nullable=True),
        sa.Column("completed_at", UTCDateTime(), nullable=True),
        sa.UniqueConstraint("run_id", "step_id", name="uq_workflow_steps_run_step"),
    )
    op.create_index("ix_workflow_steps_run_id", "workflow_steps", ["run_id"])
    op.create_index("ix_workflow_steps_task_id", "workflow_steps", ["task_id"])
    op.create_table(
        "workflow_fires",
        sa.Column("workflow_id", sa.String(32), nullable=False),
        sa.Column("fire_key", sa.String(128), nullable=False),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("workflow_id", "fire_key", name="pk_workflow_fires"),
    )
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("workflow_run_id", sa.String(32), nullable=True))
        batch.create_index("ix_tasks_workflow_run_id", ["workflow_run_id"])


def downgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.drop_index("ix_tasks_workflow_run_id")
        batch.drop_column("workflow_run_id")
    op.drop_table("workflow_fires")
    op.drop_table("workflow_steps")
    op.drop_table("workflow_runs")
    op.drop_table("workflows")
