"""Virtual keys, consumer budgets, their change counter, the audit log and usage records.

Revision ID: 0001
Revises:
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


# long: one schema step, read as a whole: every table and index of the first version, in creation order.
def upgrade() -> None:
    op.create_table(
        "virtual_keys",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("key_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("key_hint", sa.String(16), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("consumer", sa.String(64), nullable=False),
        sa.Column("tier", sa.String(64)),
        sa.Column("limits", sa.JSON),
        sa.Column("models", sa.JSON),
        sa.Column("usd_per_day", sa.Float),
        sa.Column("usd_per_month", sa.Float),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("permissions", sa.JSON, nullable=False),
        sa.Column("expires_at", sa.Float),
        sa.Column("tags", sa.JSON, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("revoked_at", sa.Float),
        sa.Column("revision", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_virtual_keys_consumer", "virtual_keys", ["consumer"])
    op.create_index("ix_virtual_keys_revision", "virtual_keys", ["revision"])
    op.create_table(
        "consumer_budgets",
        sa.Column("consumer", sa.String(64), primary_key=True),
        sa.Column("usd_per_day", sa.Float),
        sa.Column("usd_per_month", sa.Float),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("revision", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_consumer_budgets_revision", "consumer_budgets", ["revision"])
    counter = op.create_table(
        "change_counter",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
    )
    op.bulk_insert(counter, [{"name": "keys", "value": 0}])
    op.create_table(
        "audit_log",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(64), nullable=False),
        sa.Column("detail", sa.JSON, nullable=False),
    )
    op.create_index("ix_audit_log_ts", "audit_log", ["ts"])
    op.create_table(
        "usage_records",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("run_id", sa.String(128)),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("consumer", sa.String(64)),
        sa.Column("key_id", sa.String(64)),
        sa.Column("key_name", sa.String(128)),
        sa.Column("model", sa.String(128)),
        sa.Column("provider", sa.String(64)),
        sa.Column("stream", sa.Boolean, nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("error_type", sa.String(64)),
        sa.Column("tokens_in", sa.Integer, nullable=False),
        sa.Column("tokens_out", sa.Integer, nullable=False),
        sa.Column("cost_usd", sa.Float, nullable=False),
        sa.Column("ttft_s", sa.Float),
        sa.Column("latency_s", sa.Float),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("retries", sa.Integer, nullable=False),
        sa.Column("cache", sa.String(8)),
        sa.Column("idempotent_replay", sa.Boolean, nullable=False),
        sa.Column("tags", sa.JSON),
    )
    op.create_index("ix_usage_records_ts", "usage_records", ["ts"])
    op.create_index("ix_usage_records_key_ts", "usage_records", ["key_id", "ts"])
    op.create_index("ix_usage_records_run", "usage_records", ["run_id"])


def downgrade() -> None:
    op.drop_table("usage_records")
    op.drop_table("audit_log")
    op.drop_table("change_counter")
    op.drop_table("consumer_budgets")
    op.drop_table("virtual_keys")
