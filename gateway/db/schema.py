"""The tables of the system of record (SQLAlchemy Core). The migrations in ``migrations/versions`` create them;
this module is what the code reads and writes through, and a test checks the two agree.

Times are seconds since the Unix epoch (doubles), like the request log, so both databases group by UTC day the
same way (``floor(ts / 86400)``). Money is USD as a double, like ``cost_usd`` in the request log.
"""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Boolean, Column, Float, Index, Integer, MetaData, String, Table

metadata = MetaData()

# An autoincrementing 64-bit id on PostgreSQL; SQLite autoincrements only an INTEGER PRIMARY KEY.
_ID = BigInteger().with_variant(Integer(), "sqlite")

virtual_keys = Table(
    "virtual_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("key_sha256", String(64), nullable=False, unique=True),
    Column("key_hint", String(16), nullable=False),  # "fl-…a1b2": enough to recognise it, never enough to use it
    Column("name", String(128), nullable=False),
    Column("consumer", String(64), nullable=False, index=True),
    Column("tier", String(64)),
    Column("limits", JSON),
    Column("models", JSON),  # allowlist of model names; null = every model
    Column("usd_per_day", Float),
    Column("usd_per_month", Float),
    Column("priority", Integer, nullable=False),
    Column("permissions", JSON, nullable=False),
    Column("expires_at", Float),
    Column("tags", JSON, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("revoked_at", Float),
    Column("revision", BigInteger, nullable=False, index=True),  # order of changes; replicas read what is newer
)

consumer_budgets = Table(
    "consumer_budgets",
    metadata,
    Column("consumer", String(64), primary_key=True),
    Column("usd_per_day", Float),
    Column("usd_per_month", Float),
    Column("updated_at", Float, nullable=False),
    Column("revision", BigInteger, nullable=False, index=True),
)

# One row per counter ("keys"): bumped first in every transaction that changes a key or a consumer budget, so
# those transactions are serialised and their revisions commit in order (a replica that has read revision N has
# seen every change up to N).
change_counter = Table(
    "change_counter",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("ts", Float, nullable=False, index=True),
    Column("actor", String(128), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", String(64), nullable=False),
    Column("detail", JSON, nullable=False),
)

usage_records = Table(
    "usage_records",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("request_id", String(128), nullable=False),
    Column("run_id", String(128)),
    Column("ts", Float, nullable=False),
    Column("consumer", String(64)),
    Column("key_id", String(64)),
    Column("key_name", String(128)),
    Column("model", String(128)),
    Column("provider", String(64)),
    Column("stream", Boolean, nullable=False),
    Column("status", Integer, nullable=False),
    Column("outcome", String(32), nullable=False),
    Column("error_type", String(64)),
    Column("tokens_in", Integer, nullable=False),
    Column("tokens_out", Integer, nullable=False),
    Column("cost_usd", Float, nullable=False),
    Column("ttft_s", Float),
    Column("latency_s", Float),
    Column("attempts", Integer, nullable=False),
    Column("retries", Integer, nullable=False),
    Column("cache", String(8)),  # hit | miss | null (not cacheable)
    Column("idempotent_replay", Boolean, nullable=False),
    Column("tags", JSON),
    Column("record", JSON),  # the request-log record itself (gateway/requestrecord.py): what the reports read
    Index("ix_usage_records_ts", "ts"),
    Index("ix_usage_records_key_ts", "key_id", "ts"),
    Index("ix_usage_records_run", "run_id"),
)
