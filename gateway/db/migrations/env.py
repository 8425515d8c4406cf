"""Alembic's environment: migrations run on the connection :func:`gateway.db.migrate.upgrade` hands over
(``config.attributes["connection"]``), inside its transaction; there is no alembic.ini and no offline mode."""

from __future__ import annotations

from alembic import context

from gateway.db.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
