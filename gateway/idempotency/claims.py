"""Idempotency records on Redis: claim.lua and finish.lua, keyed per consumer:
``<prefix>:{<consumer>}:idem:<SHA-256 of the Idempotency-Key>``."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib.resources import files
from typing import Any

from gateway.store.client import StateClient


def _lua(name: str) -> str:
    return files("gateway.idempotency").joinpath(name).read_text()


@dataclass(frozen=True, slots=True)
class Claim:
    kind: str  # new | mismatch | running | done
    retry_ms: int = 0
    status: int = 0
    stream: bool = False
    body: bytes = b""


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


class IdempotencyStore:
    def __init__(self, redis: StateClient, *, prefix: str) -> None:
        self._prefix = prefix
        self._claim = redis.register_script(_lua("claim.lua"))
        self._finish = redis.register_script(_lua("finish.lua"))

    def key(self, consumer: str, idempotency_key: str) -> str:
        digest = hashlib.sha256(idempotency_key.encode()).hexdigest()
        return f"{self._prefix}:{{{consumer}}}:idem:{digest}"

    async def claim(self, key: str, fingerprint: str, claim_ms: int) -> Claim:
        raw = await self._claim(keys=[key], args=[fingerprint, claim_ms])
        kind = _text(raw[0])
        if kind == "running":
            return Claim(kind, retry_ms=max(0, int(raw[1])))
        if kind == "done":
            body = raw[3] if isinstance(raw[3], bytes) else _text(raw[3]).encode()
            return Claim(kind, status=int(raw[1]), stream=_text(raw[2]) == "1", body=body)
        return Claim(kind)

    async def finish(self, key: str, fingerprint: str, status: int, stream: bool, body: bytes, ttl_ms: int) -> bool:
        return int(await self._finish(keys=[key], args=[fingerprint, status, int(stream), body, ttl_ms])) == 1

    async def release(self, key: str, fingerprint: str) -> bool:
        return int(await self._finish(keys=[key], args=[fingerprint, "", 0, b"", 0])) == 1
