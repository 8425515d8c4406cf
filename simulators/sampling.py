"""Seeded draws: latency distributions, output length and content.

Every draw comes from a per-request stream ``Rng(seed).child(f"{backend}/{seq}")`` so a request's samples do
not depend on how many requests came before it or in which order concurrent requests were served.

* ``normal``: Gaussian with the given mean and sd, clamped to ``[max(0, mean - 3 sd), mean + 3 sd]``.
* ``lognormal``: log-normal with the given mean and sd in real space
  (``sigma^2 = ln(1 + sd^2 / mean^2)``, ``mu = ln(mean) - sigma^2 / 2``), so median = mean / sqrt(1 + cv^2).
An sd of 0 returns the mean and draws nothing.
"""

from __future__ import annotations

import math
import random

from gateway.rng import Rng

_TEXT = (
    "the of and to in is that it for as with was on be by this are from at or an which have not but one "
    "all were can there more when will their been so would about its also into only other time some could "
    "these two may first then do any like such new over most after well where up system model request "
    "latency token stream budget signal error queue replica route health window burn rate service level "
)
_WORDS = tuple(_TEXT.split())


def request_rng(seed: int | str, backend: str, seq: int) -> Rng:
    """The random stream of one request: a pure function of (seed, backend name, sequence number).

    Equal to ``Rng(seed).child(f"{backend}/{seq}")``, built in one step."""
    return Rng(f"{seed}/{backend}/{seq}")


def draw(rng: random.Random, mean: float, sd: float, kind: str) -> float:
    if sd <= 0 or mean <= 0:
        return max(0.0, mean)
    if kind == "lognormal":
        s2 = math.log1p((sd / mean) ** 2)
        return rng.lognormvariate(math.log(mean) - s2 / 2, math.sqrt(s2))
    v = rng.gauss(mean, sd)
    return min(max(v, max(0.0, mean - 3 * sd)), mean + 3 * sd)


def content_tokens(rng: random.Random, n: int) -> list[str]:
    """``n`` seeded word tokens; the first has no leading space."""
    if n <= 0:
        return []
    words = rng.choices(_WORDS, k=n)
    return [words[0], *(" " + w for w in words[1:])]


def echo_tokens(text: str, n: int) -> list[str]:
    """The prompt's words (whitespace kept with the following word), at most ``n``."""
    parts = text.split(" ")
    toks = [parts[0], *(" " + p for p in parts[1:])] if text else []
    return toks[:n]


def count_prompt_tokens(messages: object) -> tuple[int, str]:
    """Approximate prompt tokens (4 characters a token, 3 per message, 3 for the reply) and the last user text."""
    if not isinstance(messages, list):
        return 0, ""
    tokens = 3
    last_user = ""
    for m in messages:
        if not isinstance(m, dict):
            continue
        content = m.get("content")
        if isinstance(content, list):
            content = "".join(t for p in content if isinstance(p, dict) and isinstance(t := p.get("text"), str))
        text = content if isinstance(content, str) else ""
        tokens += 3 + (len(text) + 3) // 4
        if m.get("role") == "user":
            last_user = text
    return tokens, last_user
