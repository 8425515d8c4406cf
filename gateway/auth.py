"""Stage: who is calling. API keys arrive as ``Authorization: Bearer <key>`` or ``X-API-Key``.

Keys are configured only as SHA-256 hashes. The presented key is hashed and looked up; the lookup is on the
digest, so its timing says nothing about any stored key, and the final comparison is constant time. Two sources:
the configuration file's consumers, then the virtual keys of the database (gateway/keys/directory.py: an
in-memory copy, so the lookup never waits for the database). The two cannot shadow each other.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from gateway.call import Call, Handler, Reply
from gateway.config import Settings
from gateway.errors import AuthenticationFailed, PermissionDenied
from gateway.identity import Identity, config_identity
from gateway.keys.directory import KeyDirectory


def presented_key(headers: Mapping[str, str]) -> str | None:
    auth = headers.get("authorization")
    if auth:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        return None
    key = headers.get("x-api-key")
    return key.strip() if key and key.strip() else None


class KeyRing:
    def __init__(self, settings: Settings, directory: KeyDirectory | None = None) -> None:
        self._by_hash = {c.key_sha256: config_identity(c) for c in settings.consumers}
        self._admin = settings.admin_key_sha256
        self.directory = directory

    def identify(self, headers: Mapping[str, str]) -> Identity:
        key = presented_key(headers)
        if key is None:
            raise AuthenticationFailed(
                "You didn't provide an API key. Provide it as 'Authorization: Bearer <key>' or 'X-API-Key'.",
                code="missing_api_key",
            )
        digest = hashlib.sha256(key.encode()).hexdigest()
        found = self._by_hash.get(digest)
        if found is None and self.directory is not None:
            found = self.directory.lookup(digest)
        if found is None or not hmac.compare_digest(found.consumer.key_sha256, digest):
            raise AuthenticationFailed(f"Incorrect API key provided: {_redact(key)}.")
        return found

    def is_admin(self, headers: Mapping[str, str]) -> bool:
        key = presented_key(headers)
        if key is None or self._admin is None:
            return False
        return hmac.compare_digest(hashlib.sha256(key.encode()).hexdigest(), self._admin)


def _redact(key: str) -> str:
    return f"{key[:3]}***{key[-4:]}" if len(key) > 10 else "***"


class AuthStage:
    def __init__(self, keys: KeyRing, permission: str) -> None:
        self._keys = keys
        self._permission = permission

    async def __call__(self, call: Call, next_: Handler) -> Reply:
        identity = self._keys.identify(call.headers)
        consumer = identity.consumer
        if self._permission not in consumer.permissions:
            raise PermissionDenied(f"This API key may not use this endpoint (needs '{self._permission}').")
        call.consumer = consumer
        call.identity = identity
        rec = call.record
        rec.consumer = consumer.name
        rec.priority = consumer.priority
        rec.key_id = identity.key_id
        rec.key_name = identity.key_name
        if identity.tags:
            rec.tags = dict(identity.tags)
        return await next_(call)


class AdminStage:
    """Admin routes: the admin key only (401 ``invalid_admin_key`` otherwise)."""

    def __init__(self, keys: KeyRing) -> None:
        self._keys = keys

    async def __call__(self, call: Call, next_: Handler) -> Reply:
        if not self._keys.is_admin(call.headers):
            raise AuthenticationFailed("This endpoint needs the admin key.", code="invalid_admin_key")
        return await next_(call)
