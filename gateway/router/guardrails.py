"""Guardrails: a cap on response length and a banned-word list, for JSON and streamed answers alike.

* Length: ``max_response_chars`` and/or ``max_response_tokens`` (estimated as ``ceil(chars / 4)``, i.e. a cap of
  ``4 * tokens`` characters); the answer is cut there and ends with ``finish_reason: "length"``.
* Banned words (case-insensitive substrings): ``block`` cuts the answer before the first one and ends it with
  ``finish_reason: "content_filter"``; ``redact`` replaces each with ``redaction``. A stream keeps a tail of
  ``len(longest word) - 1`` characters back, so a word split across chunks is still caught.
* Input check (``check_input``): a request whose messages hold a banned word is refused with 400.

Each action is counted in :attr:`Guardrails.counts` as ``<rule>.<action>`` (``max_length.truncate``,
``banned_words.block``, ``banned_words.redact``, ``input_check.block``); content is never logged.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from gateway.errors import InvalidRequest
from gateway.observability.events import GuardrailEvents
from gateway.requestrecord import RequestRecord
from gateway.settings.router import GuardrailSettings


class Guardrails:
    def __init__(self, settings: GuardrailSettings) -> None:
        self.settings = settings
        words = sorted({w for w in settings.banned_words if w}, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(w) for w in words), re.IGNORECASE) if words else None
        self._hold = max((len(w) for w in words), default=1) - 1
        caps = [c for c in (settings.max_response_chars, _tokens_to_chars(settings.max_response_tokens)) if c]
        self.max_chars: int | None = min(caps) if caps else None
        self.counts: Counter[str] = Counter()

    @property
    def active(self) -> bool:
        return self._pattern is not None or self.max_chars is not None

    def check_input(self, payload: dict[str, Any]) -> None:
        if self._pattern is None or not self.settings.check_input:
            return
        for message in payload.get("messages") or ():
            content = message.get("content") if isinstance(message, dict) else None
            texts = (
                [content] if isinstance(content, str) else [p.get("text") for p in content or () if isinstance(p, dict)]
            )
            if any(isinstance(t, str) and self._pattern.search(t) for t in texts):
                self.counts["input_check.block"] += 1
                raise InvalidRequest(
                    "The request contains content the gateway does not accept.", param="messages", code="content_filter"
                )

    def apply(self, body: dict[str, Any]) -> list[str]:
        """Enforce on a JSON chat completion in place; returns the actions taken (rule names, no content)."""
        before = Counter(self.counts)
        for choice in body.get("choices") or ():
            message = choice.get("message") or {}
            content = message.get("content")
            if not isinstance(content, str):
                continue
            text, stop = self.stream().feed(content, final=True)
            if stop is not None:
                choice["finish_reason"] = stop
            if text != content:
                message["content"] = text
        return sorted((self.counts - before).keys())

    def stream(self) -> StreamGuard:
        return StreamGuard(self)

    def _block_or_redact(self, text: str) -> tuple[str, bool]:
        """Returns (text, blocked)."""
        assert self._pattern is not None
        if self.settings.banned_action == "block":
            m = self._pattern.search(text)
            if m is None:
                return text, False
            self.counts["banned_words.block"] += 1
            return text[: m.start()], True
        out, n = self._pattern.subn(self.settings.redaction, text)
        if n:
            self.counts["banned_words.redact"] += n
        return out, False


def _tokens_to_chars(tokens: int | None) -> int | None:
    return None if tokens is None else tokens * 4


class StreamGuard:
    """One choice of one answer: feed content deltas in order; get back what may be sent and a stop reason."""

    def __init__(self, rails: Guardrails) -> None:
        self._rails = rails
        self._tail = ""
        self._sent = 0
        self.stopped: str | None = None

    def feed(self, text: str, *, final: bool = False) -> tuple[str, str | None]:
        """Returns (text to send now, finish_reason to end with or None). After a stop, everything is dropped."""
        if self.stopped is not None:
            return "", None
        r = self._rails
        buf = self._tail + text
        if r._pattern is None:
            ready, self._tail = buf, ""
        else:
            # Decide only text that cannot be the start of a banned word split across chunks; a match that
            # starts before the cut is complete in ``buf`` (the hold is the longest word minus one).
            cut = len(buf) if final else max(0, len(buf) - r._hold)
            for m in r._pattern.finditer(buf):
                if m.start() >= cut:
                    break
                cut = max(cut, m.end())
            ready, self._tail = buf[:cut], buf[cut:]
            ready, blocked = r._block_or_redact(ready)
            if blocked:
                self._tail = ""
                ready, stop = self._cap(ready)
                self.stopped = stop or "content_filter"
                return ready, self.stopped
        return self._cap(ready)

    def flush(self) -> tuple[str, str | None]:
        return self.feed("", final=True)

    def _cap(self, ready: str) -> tuple[str, str | None]:
        limit = self._rails.max_chars
        if limit is not None and self._sent + len(ready) > limit:
            ready = ready[: max(0, limit - self._sent)]
            self._sent = limit
            self._rails.counts["max_length.truncate"] += 1
            self.stopped = "length"
            self._tail = ""
            return ready, "length"
        self._sent += len(ready)
        return ready, None


def note_actions(record: RequestRecord, actions: list[str], events: GuardrailEvents) -> None:
    """The guardrail actions taken on one answer, into its request's record and reported as events."""
    if not actions:
        return
    record.decisions["guardrail"] = sorted({*record.decisions.get("guardrail", ()), *actions})
    for action in actions:
        rule, _, what = action.rpartition(".")
        events.guardrail_action(rule, what)
