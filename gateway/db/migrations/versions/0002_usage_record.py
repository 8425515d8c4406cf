"""Usage records keep the whole request-log record (never prompt text), so the reports can read a run from the
database as from its JSONL log.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("usage_records") as batch:
        batch.add_column(sa.Column("record", sa.JSON))


def downgrade() -> None:
    with op.batch_alter_table("usage_records") as batch:
        batch.drop_column("record")
