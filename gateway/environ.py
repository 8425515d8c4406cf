"""The settings of a process, from its environment: ``GATEWAY_CONFIG`` (the YAML file), ``REDIS_URL`` (overrides
``state.redis_url``), ``DATABASE_URL`` (overrides ``database.url``); each provider's ``api_key_env`` is read
when its adapter is built."""

from __future__ import annotations

import os

from gateway.config import ConfigError, Settings, load_settings


def settings_from_env(path: str | None = None) -> Settings:
    config = path or os.environ.get("GATEWAY_CONFIG")
    if not config:
        raise ConfigError("no configuration: pass --config FILE or set GATEWAY_CONFIG")
    settings = load_settings(config)
    redis_url = os.environ.get("REDIS_URL")
    if redis_url:
        settings = settings.model_copy(update={"state": settings.state.model_copy(update={"redis_url": redis_url})})
    database_url = os.environ.get("DATABASE_URL")
    if database_url:
        db = settings.database.model_copy(update={"url": database_url})
        settings = settings.model_copy(update={"database": db})
    return settings
