"""Token estimates for the reservation made before a call, and the real charge computed after it. Pure.

Prompt: ``ceil(characters / chars_per_token) + message_overhead_tokens`` per message, plus 3 for the reply
priming (OpenAI's accounting). Characters are those of every string in the message (content, text parts, tool
call arguments, names). Completion: ``max_completion_tokens`` or ``max_tokens`` or the configured default, times
``n``. The estimate is cheap (no tokenizer) and deliberately generous on the completion side. Embeddings: the
``input`` strings at the same characters per token (a token array counts its length), and no completion.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

from gateway.settings.quota import QuotaSettings

_REPLY_PRIMING = 3


class Estimate(NamedTuple):
    """A named tuple, made by ``tuple.__new__`` below: one per limited request (and per budgeted one)."""

    prompt: int
    completion: int

    @property
    def total(self) -> int:
        return self.prompt + self.completion


_tuple_new = tuple.__new__


_SKIP = frozenset(("role", "type", "image_url"))


def _chars(value: Any) -> int:
    """Characters of every string in a parsed JSON value (dicts, lists, strings), skipping ``_SKIP`` keys."""
    if type(value) is str:
        return len(value)
    if isinstance(value, dict):
        return _dict_chars(value)
    n = 0
    if isinstance(value, list):
        for v in value:
            n += _chars(v)
    return n


def _dict_chars(message: dict[str, Any]) -> int:
    """:func:`_chars` of a dict (a message, or a part of one), its string fields counted without a call each."""
    n = 0
    for k, v in message.items():
        if type(v) is str:
            if k not in _SKIP:
                n += len(v)
        elif k not in _SKIP:
            n += _chars(v)
    return n


def _embedding_input(raw: Any, per_token: float) -> int:
    """Tokens of an embeddings ``input``: characters / chars_per_token per string, the length of token arrays."""
    items = [raw] if isinstance(raw, str) else raw if isinstance(raw, list) else []
    if items and all(type(t) is int for t in items):
        return len(items)
    return sum(len(x) if isinstance(x, list) else math.ceil(_chars(x) / per_token) for x in items)


def estimate(payload: Mapping[str, Any] | None, settings: QuotaSettings) -> Estimate:
    payload = payload or {}
    messages = payload.get("messages")
    if messages is None and "input" in payload and "messages" not in payload:  # embeddings: no completion
        return Estimate(max(1, _embedding_input(payload["input"], settings.chars_per_token)), 0)
    prompt = _REPLY_PRIMING
    if isinstance(messages, list):
        overhead, per_token, ceil = settings.message_overhead_tokens, settings.chars_per_token, math.ceil
        for m in messages:
            prompt += overhead + ceil((_dict_chars(m) if type(m) is dict else _chars(m)) / per_token)
    # Integers only (a JSON body holds plain ints and bools, and a bool is no limit): type() rather than isinstance
    limit = payload.get("max_completion_tokens")
    if type(limit) is not int or limit < 1:
        limit = payload.get("max_tokens")
        if type(limit) is not int or limit < 1:
            limit = settings.default_max_tokens
    n = payload.get("n")
    return _tuple_new(Estimate, (prompt, limit * n if type(n) is int and n >= 1 else limit))


def actual_charge(tokens_in: int, tokens_out: int, est: Estimate) -> int:
    """What a finished (or cut, or cancelled) request is charged.

    The router records prompt tokens from ``usage``; a stream cut before its usage chunk has only the delivered
    completion tokens, so its prompt is charged at the estimate once any output was delivered. A request that
    produced nothing and reported nothing is charged nothing (the request itself still counts against RPM).
    """
    prompt = tokens_in if tokens_in > 0 else (est.prompt if tokens_out > 0 else 0)
    return prompt + max(0, tokens_out)
