"""A scenario, resolved: the simulator profile of each upstream and the gateway configuration.

The gateway configuration is generated (consumers with hashed keys, one provider per upstream, one model group
routing ``request_mix.model`` to every upstream by weight, prices from the simulator profiles), then the
scenario's ``gateway:`` overlay is merged over it (mappings merge, lists replace).
"""

from __future__ import annotations

import copy
from typing import Any

from experiments.scenario import ReloadSpec, Scenario, UpstreamSpec
from gateway.config import ConfigError, Settings, hash_key, parse_settings
from simulators.profile import Profile, ProfileError, profile_from_dict

REPLAY_URL = "http://{name}.sim"
UNREACHABLE_URL = "http://unreachable.invalid"


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def profile_dict(u: UpstreamSpec) -> dict[str, Any]:
    """The simulator profile of an upstream, as a dict ``simulators`` accepts (``base:`` inherits)."""
    d: dict[str, Any] = {"base": u.profile, **copy.deepcopy(u.profile_overrides)}
    d["name"] = f"{u.name}-scenario"
    d["timeline"] = {"scale": u.timeline_scale, "phases": copy.deepcopy(u.timeline)}
    if u.accepted_keys is not None:
        d["api_keys"] = list(u.accepted_keys)
    return d


def profile_of(u: UpstreamSpec) -> Profile:
    return profile_from_dict(profile_dict(u), source=f"upstreams.{u.name}")


def gateway_dict(
    sc: Scenario,
    *,
    base_urls: dict[str, str],
    seed: int,
    request_log: str | None = None,
    run_id: str | None = None,
    metrics_port: int = 0,
    port: int = 8000,
) -> dict[str, Any]:
    """The gateway configuration for ``sc``; ``base_urls`` maps upstream name -> URL root (no ``/v1``)."""
    prices: dict[str, Any] = {}
    for u in sc.upstreams:
        p = profile_of(u).prices
        prices[u.model] = {"input_per_1m": p.input_per_1m, "output_per_1m": p.output_per_1m}
    raw: dict[str, Any] = {
        "seed": seed,
        "server": {"host": "127.0.0.1", "port": port, "metrics_port": metrics_port},
        "consumers": [
            {
                "name": c.name,
                "key_sha256": hash_key(c.key),
                "tier": c.tier,
                "priority": c.priority,
                "permissions": ["chat", "models"],
                **({"limits": c.limits.model_dump(exclude_none=True)} if c.limits is not None else {}),
                **({"budget": c.budget.model_dump(exclude_none=True)} if c.budget is not None else {}),
            }
            for c in sc.consumers
        ],
        "providers": [
            {
                "name": u.name,
                "kind": u.flavour,
                "base_url": (UNREACHABLE_URL if u.unreachable and u.name not in base_urls else base_urls[u.name])
                + ("/v1beta" if u.flavour == "gemini" else "/v1"),
            }
            for u in sc.upstreams
        ],
        "models": [
            {
                "name": sc.request_mix.model,
                "routes": [{"provider": u.name, "model": u.model, "weight": u.weight} for u in sc.upstreams],
            }
        ],
        "prices": prices,
        "observability": {"request_log_path": request_log, "run_id": run_id},
    }
    return merge(raw, sc.gateway)


def reloaded_dict(raw: dict[str, Any], spec: ReloadSpec) -> dict[str, Any]:
    """The configuration ``raw`` after a reload of ``spec``: each named upstream's route takes its new weight,
    then the overlay is merged over it."""
    out = copy.deepcopy(raw)
    for group in out["models"]:
        for route in group["routes"]:
            if route["provider"] in spec.weights:
                route["weight"] = spec.weights[route["provider"]]
    return merge(out, spec.gateway)


def gateway_settings(sc: Scenario, **kw: Any) -> Settings:
    return parse_settings(gateway_dict(sc, **kw), source=f"scenario {sc.name} (gateway)")


def check_resolvable(sc: Scenario) -> None:
    """Raise ValueError naming the upstream profile or the gateway overlay that does not validate."""
    for u in sc.upstreams:
        try:
            profile_of(u)
        except ProfileError as exc:
            raise ValueError(str(exc).replace("\n", "\n  ")) from None
    urls = {u.name: REPLAY_URL.format(name=u.name) for u in sc.upstreams}
    try:
        raw = gateway_dict(sc, base_urls=urls, seed=sc.seed)
        parse_settings(raw, source=f"scenario {sc.name} (gateway)")
        for i, spec in enumerate(sc.reloads):
            raw = reloaded_dict(raw, spec)
            parse_settings(raw, source=f"scenario {sc.name} (reloads[{i}])")
    except ConfigError as exc:
        raise ValueError(str(exc).replace("\n", "\n  ")) from None
