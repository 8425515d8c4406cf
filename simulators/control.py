"""The control endpoints (off unless the app is created with ``control=True``).

* ``POST /_sim/profile`` ``{"profile": "<name>" | {...profile...}, "scale": 0.5?}`` switches profile now.
* ``GET /_sim/profile`` returns the active profile.
* ``POST /_sim/reset`` ``{"seed": 8}?`` starts afresh under the same profile: request numbers from 0, logs,
  counters and metrics cleared, timeline restarted; optionally with another seed.
* ``GET /_sim/decisions`` returns the decision log (the whole bounded log).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson

from simulators.profile import ProfileError, load_profile

if TYPE_CHECKING:
    from simulators.backend import Engine


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _err(status: int, message: str) -> tuple[int, bytes]:
    body = {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}
    return status, orjson.dumps(body)


async def handle_control(engine: Engine, method: str, path: str, body: bytes) -> tuple[int, bytes]:
    if path == "/_sim/decisions" and method == "GET":
        return 200, orjson.dumps({"seed": engine.seed, "name": engine.name, "decisions": engine.decision_log()})
    if path == "/_sim/profile" and method == "GET":
        return 200, orjson.dumps(engine.profile.model_dump(mode="json", by_alias=True))
    if path == "/_sim/reset" and method == "POST":
        try:
            payload = orjson.loads(body) if body.strip() else {}
        except orjson.JSONDecodeError:
            return _err(400, "The body is not valid JSON.")
        seed = payload.get("seed") if isinstance(payload, dict) else None
        if not isinstance(payload, dict) or not (seed is None or isinstance(seed, str) or _is_int(seed)):
            return _err(400, "expected an empty body or {'seed': <integer or string>}")
        engine.reset(seed)
        return 200, orjson.dumps({"profile": engine.profile.name, "seed": engine.seed, "seq": engine.seq})
    if path == "/_sim/profile" and method == "POST":
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            return _err(400, "The body is not valid JSON.")
        if not isinstance(payload, dict) or not isinstance(payload.get("profile"), str | dict):
            return _err(400, "expected {'profile': <name or profile object>, 'scale': <optional number>}")
        ref = payload["profile"]
        if isinstance(ref, str) and not ref.replace("-", "").replace("_", "").isalnum():
            return _err(400, "a profile name is letters, digits, '-' and '_' (a file in simulators/profiles)")
        scale = payload.get("scale")
        if scale is not None and (not isinstance(scale, int | float) or scale <= 0):
            return _err(400, "'scale' must be a positive number")
        try:
            profile = load_profile(ref, scale=scale)
        except ProfileError as exc:
            return _err(400, str(exc))
        engine.set_profile(profile)
        return 200, orjson.dumps({"profile": profile.name, "seq": engine.seq})
    return _err(404, f"Not found: {method} {path}")
