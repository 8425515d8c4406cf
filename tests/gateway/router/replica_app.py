"""uvicorn factory for the breaker-sharing test: the real gateway app, with a state-store timeout generous enough
that a loaded machine's event-loop lag is not mistaken for a store outage (that path has its own tests)."""

from __future__ import annotations

from fastapi import FastAPI

from gateway.app import create_app
from gateway.environ import settings_from_env
from gateway.state import connect_state


def build() -> FastAPI:
    settings = settings_from_env()
    return create_app(settings, state=connect_state(settings.state.redis_url, timeout_s=5.0))
