"""The system of record: keys, audit trail and usage in a SQL database (PostgreSQL, or SQLite embedded)."""
