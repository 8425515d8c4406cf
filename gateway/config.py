"""Gateway configuration: one YAML file, validated with pydantic; secrets only from the environment.

An invalid file fails at start with :class:`ConfigError`, whose message names the file and each bad field.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gateway.settings.budget import Budget, BudgetSettings
from gateway.settings.cache import CacheSettings
from gateway.settings.connection import ConnectionLimits
from gateway.settings.db import DatabaseSettings
from gateway.settings.idempotency import IdempotencySettings
from gateway.settings.observability import ObservabilitySettings
from gateway.settings.quota import Limits, QuotaSettings
from gateway.settings.router import RouterSettings
from gateway.settings.store import StateSettings
from gateway.settings.upstream import HealthCheck

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


# libyaml's loader when PyYAML has it: the same safe subset, about a tenth of the pure-Python loader's time (a
# reload parses the file on the event loop: docs/OPERATIONS.md, "Reload").
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class ConfigError(Exception):
    """The configuration file is missing or invalid."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ServerSettings(_Model):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    metrics_port: int = Field(default=9090, ge=0, le=65535, description="0 disables the metrics listener")
    limits: ConnectionLimits = ConnectionLimits()


class Tier(Limits):
    """A tier's limits, and the models its consumers may use (none = every model)."""

    models: tuple[str, ...] | None = Field(default=None, description="model names or aliases; none = all")


class Consumer(_Model):
    name: str = Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")
    key_sha256: str
    tier: str = "default"
    limits: Limits | None = None
    models: tuple[str, ...] | None = Field(
        default=None, description="model names or aliases this key may use; none = the tier's list"
    )
    priority: int = Field(default=1, ge=0, le=9, description="higher is more important; shed last")
    permissions: frozenset[Literal["chat", "pin", "models", "served_by"]] = frozenset({"chat", "models"})
    budget: Budget | None = Field(default=None, description="dollar budget of this consumer")

    @field_validator("key_sha256")
    @classmethod
    def _hex(cls, v: str) -> str:
        if not _SHA256.match(v):
            raise ValueError("must be the lowercase hex SHA-256 of the API key")
        return v


class Provider(_Model):
    name: str = Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")
    kind: Literal["openai", "vllm", "gemini"]
    base_url: str = Field(
        description="e.g. https://api.openai.com/v1, http://vllm:8000/v1, https://generativelanguage.googleapis.com/v1beta"
    )
    api_key_env: str | None = Field(default=None, description="environment variable holding the upstream key")
    health_check: HealthCheck | None = Field(
        default=None, description="an active check of the upstream, off the request path (none = not checked)"
    )


class Route(_Model):
    provider: str
    model: str = Field(description="the model name the upstream knows")
    weight: float = Field(default=1.0, ge=0)


class ModelGroup(_Model):
    name: str = Field(description="the model name clients ask for")
    routes: list[Route] = Field(min_length=1)
    aliases: list[str] = []
    owned_by: str = "faultline"
    kind: Literal["chat", "embedding"] = Field(
        default="chat", description="chat: /v1/chat/completions; embedding: /v1/embeddings"
    )


class Price(_Model):
    input_per_1m: float = Field(ge=0, description="USD per million prompt tokens")
    output_per_1m: float = Field(ge=0, description="USD per million completion tokens")


class Settings(_Model):
    seed: int = 0
    server: ServerSettings = ServerSettings()
    state: StateSettings = StateSettings()
    database: DatabaseSettings = DatabaseSettings()
    admin_key_sha256: str | None = None
    tiers: dict[str, Tier] = {"default": Tier()}
    consumers: list[Consumer] = []
    providers: list[Provider] = Field(min_length=1)
    models: list[ModelGroup] = Field(min_length=1)
    prices: dict[str, Price] = {}
    quota: QuotaSettings = QuotaSettings()
    budget: BudgetSettings = BudgetSettings()
    idempotency: IdempotencySettings = IdempotencySettings()
    cache: CacheSettings = CacheSettings()
    router: RouterSettings = RouterSettings()
    observability: ObservabilitySettings = ObservabilitySettings()

    @model_validator(mode="after")
    def _references(self) -> Settings:
        providers = {p.name for p in self.providers}
        if len(providers) != len(self.providers):
            raise ValueError("providers: names must be unique")
        for g in self.models:
            for r in g.routes:
                if r.provider not in providers:
                    raise ValueError(f"models.{g.name}: unknown provider {r.provider!r}")
        names = [n for g in self.models for n in (g.name, *g.aliases)]
        if len(set(names)) != len(names):
            raise ValueError("models: names and aliases must be unique")
        for c in self.consumers:
            if c.tier not in self.tiers:
                raise ValueError(f"consumers.{c.name}: unknown tier {c.tier!r}")
        known = set(names)
        lists = [(f"consumers.{c.name}", c.models) for c in self.consumers]
        lists += [(f"tiers.{name}", t.models) for name, t in self.tiers.items()]
        for where, allowed in lists:
            for m in allowed or ():
                if m not in known:
                    raise ValueError(f"{where}.models: unknown model {m!r}")
        if len({c.key_sha256 for c in self.consumers}) != len(self.consumers):
            raise ValueError("consumers: two consumers share a key")
        return self

    @model_validator(mode="after")
    def _cached_groups(self) -> Settings:
        unknown = sorted(set(self.cache.groups) - {m.name for m in self.models})
        if unknown:
            raise ValueError(f"cache.groups: unknown model group(s) {', '.join(unknown)}")
        return self

    def limits_for(self, consumer: Consumer) -> Limits:
        return consumer.limits if consumer.limits is not None else self.tiers[consumer.tier]

    def models_for(self, consumer: Consumer) -> tuple[str, ...] | None:
        """The model names a consumer may use (its own list, else its tier's); None = every model."""
        return consumer.models if consumer.models is not None else self.tiers[consumer.tier].models


def hash_key(key: str) -> str:
    """The form in which API keys are stored in the configuration."""
    return hashlib.sha256(key.encode()).hexdigest()


def load_settings(path: str | Path) -> Settings:
    p = Path(path)
    try:
        raw = yaml.load(p.read_text(), Loader=_LOADER)
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML: {exc}") from None
    return parse_settings(raw, source=str(p))


def parse_settings(raw: object, *, source: str = "<config>") -> Settings:
    try:
        return Settings.model_validate(raw if raw is not None else {})
    except ValidationError as exc:
        lines = [f"  {'.'.join(str(x) for x in err['loc']) or '(top level)'}: {err['msg']}" for err in exc.errors()]
        raise ConfigError(f"{source}: invalid configuration:\n" + "\n".join(lines)) from None
