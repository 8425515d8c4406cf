"""Every problem of a scenario file at once, each named by its path in one notation: ``load.phases[0].end_s``.

:func:`schema_problems` formats pydantic's errors (a discriminated union's tag, e.g. an expectation's kind, is
taken out of the path and shown after it); :func:`reference_problems` checks what the schema cannot - windows
inside the run, names that must exist or be unique - on the raw mapping, so it reports even when other fields
are invalid. Works on plain dicts (no import of the scenario models).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError

STATE_STORE = "state_store"


def path(loc: Iterable[Any]) -> str:
    """``("load", "phases", 0, "end_s")`` -> ``load.phases[0].end_s``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + str(part)
    return out or "(top level)"


def schema_problems(exc: ValidationError, tagged: dict[str, set[str]] | None = None) -> list[str]:
    """One line per pydantic error. ``tagged``: list fields of discriminated unions and their tags (taken out of
    the path: ``expectations[0].min_availability.valeu`` -> ``expectations[0].valeu (min_availability)``)."""
    lines = []
    for err in exc.errors():
        loc, tag = list(err["loc"]), ""
        if len(loc) > 2 and isinstance(loc[1], int) and str(loc[2]) in (tagged or {}).get(str(loc[0]), set()):
            tag = f" ({loc.pop(2)})"
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"{path(loc)}{tag}: {msg}")
    return lines


def _list(raw: Any, *keys: str) -> list[Any]:
    node = raw
    for k in keys:
        node = node.get(k) if isinstance(node, dict) else None
    return node if isinstance(node, list) else []


def _num(x: Any) -> float | None:
    return float(x) if isinstance(x, int | float) and not isinstance(x, bool) else None


def _window(where: str, item: Any, duration: float | None, default_end: float | None = None) -> list[str]:
    if not isinstance(item, dict):
        return []
    start, end = _num(item.get("start_s", 0)), _num(item.get("end_s", default_end))
    out = []
    if start is not None and end is not None and not start < end:
        out.append(f"{where}: start_s ({start:g}) must be before end_s ({end:g})")
    if end is not None and duration is not None and end > duration + 1e-9:
        out.append(f"{where}.end_s: {end:g} is past duration_s ({duration:g})")
    return out


def _names(items: list[Any]) -> list[str]:
    return [str(i["name"]) for i in items if isinstance(i, dict) and "name" in i]


def _duplicates(where: str, names: list[str]) -> list[str]:
    dup = sorted({n for n in names if names.count(n) > 1})
    return [f"{where}: duplicates {dup}"] if dup else []


def reference_problems(raw: dict[str, Any]) -> list[str]:
    """Windows inside ``duration_s`` and ``start_s < end_s``; consumers, upstreams and providers that exist; unique
    names and keys."""
    duration = _num(raw.get("duration_s"))
    consumers, upstreams = _list(raw, "consumers"), _list(raw, "upstreams")
    cnames, unames = _names(consumers), _names(upstreams)
    out = _duplicates("consumers", cnames)
    out += _duplicates("consumers (keys)", [str(c["key"]) for c in consumers if isinstance(c, dict) and "key" in c])
    out += _duplicates("upstreams", unames)
    shares = [_num(c.get("share", 1.0)) for c in consumers if isinstance(c, dict)]
    if consumers and sum(s or 0.0 for s in shares) <= 0:
        out.append("consumers: at least one needs share > 0")
    for i, ph in enumerate(_list(raw, "load", "phases")):
        out += _window(f"load.phases[{i}]", ph, duration)
        mix = ph.get("mix") if isinstance(ph, dict) else None
        out += [f"load.phases[{i}].mix: unknown consumer {c!r}" for c in mix or {} if c not in cnames]
    for i, sp in enumerate(_list(raw, "load", "spikes")):
        out += _window(f"load.spikes[{i}]", sp, duration)
        who = sp.get("consumer") if isinstance(sp, dict) else None
        if who is not None and who not in cnames:
            out.append(f"load.spikes[{i}].consumer: unknown consumer {who!r}")
    for i, f in enumerate(_list(raw, "faults")):
        out += _window(f"faults[{i}]", f, duration, default_end=duration)
        target = f.get("upstream") if isinstance(f, dict) else None
        if target is not None and target not in (*unames, STATE_STORE):
            out.append(f"faults[{i}].upstream: unknown upstream {target!r} (or {STATE_STORE!r})")
    out += _reload_problems(_list(raw, "reloads"), duration, unames)
    for i, e in enumerate(_list(raw, "expectations")):
        if not isinstance(e, dict):
            continue
        if e.get("provider") is not None and e["provider"] not in unames:
            out.append(f"expectations[{i}].provider: unknown provider {e['provider']!r}")
        if e.get("consumer") is not None and e["consumer"] not in cnames:
            out.append(f"expectations[{i}].consumer: unknown consumer {e['consumer']!r}")
    return out


def _reload_problems(reloads: list[Any], duration: float | None, upstreams: list[str]) -> list[str]:
    out = []
    for i, r in enumerate(x for x in reloads if isinstance(x, dict)):
        at = _num(r.get("at_s"))
        if at is not None and duration is not None and at > duration:
            out.append(f"reloads[{i}].at_s: {at:g} is past duration_s ({duration:g})")
        out += [f"reloads[{i}].weights: unknown upstream {u!r}" for u in r.get("weights") or {} if u not in upstreams]
    return out


def profile_problem_lines(index: int, message: str) -> list[str]:
    """A simulator ``ProfileError`` for ``upstreams[index]``, its paths in this module's notation: a timeline
    phase ``timeline.phases.0.outage.mode`` -> ``upstreams[i].timeline[0].mode (outage)``; another field of the
    merged profile -> ``upstreams[i].profile_overrides.<field>``; anything else (an unknown base profile) ->
    ``upstreams[i].profile``."""
    _, _, rest = message.partition(": invalid profile:\n")
    if not rest:
        return [f"upstreams[{index}].profile: {re.sub(r'^upstreams[.][^:]*: ', '', message.strip())}"]
    out = []
    for line in rest.splitlines():
        loc, _, msg = line.strip().partition(": ")
        parts = loc.split(".")
        msg = msg.removeprefix("Value error, ")
        if parts[:2] == ["timeline", "phases"] and len(parts) > 3 and parts[2].isdigit():
            tail = "".join(f".{p}" for p in parts[4:])
            out.append(f"upstreams[{index}].timeline[{parts[2]}]{tail} ({parts[3]}): {msg}")
        else:
            out.append(f"upstreams[{index}].profile_overrides.{loc}: {msg}")
    return out
