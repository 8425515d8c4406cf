"""uvicorn factory for the replica tests: the real gateway app with its default state-store client."""

from __future__ import annotations

from fastapi import FastAPI

from gateway.app import create_app
from gateway.environ import settings_from_env
from gateway.state import connect_state


def build() -> FastAPI:
    settings = settings_from_env()
    return create_app(settings, state=connect_state(settings.state.redis_url))
