"""Tool calls and logprobs, for OpenAI- and vLLM-flavour requests that ask for them (and only those: a request
without ``tools`` or ``logprobs`` is answered by :class:`simulators.wire.OpenAIRender`, byte for byte as before).

* Tools: with ``tools`` given and ``tool_choice`` not ``none``, the model calls a function when ``tool_choice`` is
  ``required`` or names one, or (``auto``, the default) when the last message is the user's; after a tool
  result it answers in text, so an SDK round trip (call -> result -> answer) runs end to end. It calls the named
  function, else the first. Arguments: every required property (every property when none is required) filled
  from the drawn words (strings), 1 (integers), 1.5 (numbers), true (booleans), [] / {} and the first ``enum``
  value. The JSON arguments are split over the drawn output tokens, so latency and usage stay those of the draw;
  ``finish_reason`` is ``tool_calls`` (``length`` when the draw hit ``max_tokens``).
* Logprobs: with ``logprobs: true`` each content token gets ``{"token", "logprob", "bytes", "top_logprobs"}``;
  the logprob is a pure function of the token (``-0.05 - 0.1 x (len % 7)``) and ``top_logprobs`` (``top_logprobs``
  entries) lists the token itself, then other words, each lower.
"""

from __future__ import annotations

from typing import Any

import orjson

from simulators.decide import Decision
from simulators.failures import Flavour
from simulators.wire import Chunker, completion, completion_id

_ALT = ("the", "a", "of", "and", "to", "in", "is", "it", "for", "on", "as", "at", "by", "or", "an", "be", "we", "so")


def wants_extras(payload: dict[str, Any]) -> bool:
    return bool(payload.get("tools")) or payload.get("logprobs") is True


def pick_tool(payload: dict[str, Any]) -> dict[str, Any] | None:
    """The function the simulated model calls, or None when it answers in text."""
    functions = [t.get("function") for t in payload.get("tools") or () if isinstance(t, dict)]
    tools: list[dict[str, Any]] = [f for f in functions if isinstance(f, dict) and f.get("name")]
    choice = payload.get("tool_choice", "auto")
    if not tools or choice == "none":
        return None
    if isinstance(choice, dict):
        function = choice.get("function")
        name = function.get("name") if isinstance(function, dict) else None
        return next((f for f in tools if f["name"] == name), tools[0])
    messages = payload.get("messages") or []
    last = messages[-1].get("role") if messages and isinstance(messages[-1], dict) else None
    if choice == "required" or last == "user":
        return tools[0]
    return None


def arguments(params: Any, words: list[str]) -> str:
    props = params.get("properties") if isinstance(params, dict) else None
    if not isinstance(props, dict):
        return "{}"
    names = [n for n in params.get("required") or props if n in props]
    pool = [w.strip() for w in words if w.strip()] or ["value"]
    out: dict[str, Any] = {}
    for i, name in enumerate(names):
        spec = props[name] if isinstance(props[name], dict) else {}
        kind = spec.get("type")
        if spec.get("enum"):
            out[name] = spec["enum"][0]
        elif kind == "integer":
            out[name] = 1
        elif kind == "number":
            out[name] = 1.5
        elif kind == "boolean":
            out[name] = True
        elif kind == "array":
            out[name] = []
        elif kind == "object":
            out[name] = {}
        else:
            out[name] = pool[i % len(pool)]
    return orjson.dumps(out).decode()


def pieces(text: str, n: int) -> list[str]:
    """``text`` in exactly ``n`` consecutive pieces (some empty when ``n`` exceeds its length)."""
    size = len(text)
    return [text[i * size // n : (i + 1) * size // n] for i in range(n)]


def logprob(token: str, top: int) -> dict[str, Any]:
    lp = round(-0.05 - 0.1 * (len(token) % 7), 4)
    alts = [{"token": token, "logprob": lp, "bytes": list(token.encode())}]
    for k, word in enumerate(w for w in _ALT if w != token.strip()):
        if len(alts) >= top:
            break
        alt = " " + word if token.startswith(" ") else word
        alts.append({"token": alt, "logprob": round(lp - 0.5 * (k + 1), 4), "bytes": list(alt.encode())})
    return {"token": token, "logprob": lp, "bytes": list(token.encode()), "top_logprobs": alts[:top]}


class ExtrasRender:
    """OpenAI/vLLM replies with tool calls and/or logprobs (see the module doc)."""

    def __init__(self, flavour: Flavour, stream: bool, usage_chunk: bool, payload: dict[str, Any]) -> None:
        self.flavour, self.stream, self.usage_chunk = flavour, stream, usage_chunk
        self.tool = pick_tool(payload)
        top = payload.get("top_logprobs")
        self.top = (top if isinstance(top, int) else 0) if payload.get("logprobs") is True else None
        self.call_id = ""
        self.tokens: list[str] = []

    def prepare(self, d: Decision) -> None:
        self.call_id = f"call_{d.response_id}"
        if self.tool is not None and d.tokens:
            args = arguments(self.tool.get("parameters"), d.tokens)
            d.tokens = pieces(args, len(d.tokens))
            if d.finish_reason == "stop":
                d.finish_reason = "tool_calls"
        self.tokens = list(d.tokens)

    def body(self, rid: str, created: int, model: str, content: str, finish: str, prompt: int, n: int) -> bytes:
        doc = orjson.loads(
            completion(self.flavour, completion_id(self.flavour, rid), created, model, content, finish, prompt, n)
        )
        choice = doc["choices"][0]
        if self.tool is not None:
            call = {
                "id": self.call_id,
                "type": "function",
                "function": {"name": self.tool["name"], "arguments": content},
            }
            choice["message"]["content"] = None
            choice["message"]["tool_calls"] = [call]
        elif self.top is not None:
            choice["logprobs"] = {"content": [logprob(t, self.top) for t in self.tokens[:n]], "refusal": None}
        return orjson.dumps(doc)

    def chunker(self, rid: str, created: int, model: str, prompt: int) -> ExtrasChunker:
        return ExtrasChunker(
            self, Chunker(self.flavour, completion_id(self.flavour, rid), created, model, self.usage_chunk)
        )


class ExtrasChunker:
    def __init__(self, render: ExtrasRender, inner: Chunker) -> None:
        self._r, self._inner = render, inner
        self._first = True

    def role(self) -> bytes:
        return self._inner.role()

    def token(self, text: str) -> bytes:
        r = self._r
        choice: dict[str, Any] = {"index": 0, "delta": {"content": text}, "logprobs": None, "finish_reason": None}
        if r.tool is not None:
            fn: dict[str, Any] = {"arguments": text}
            call: dict[str, Any] = {"index": 0, "function": fn}
            if self._first:
                call.update(id=r.call_id, type="function")
                fn["name"] = r.tool["name"]
            choice["delta"] = {"tool_calls": [call]}
        elif r.top is not None:
            choice["logprobs"] = {"content": [logprob(text, r.top)], "refusal": None}
        self._first = False
        return self._inner.choice(choice)

    def end(self, reason: str, prompt: int, completion: int) -> bytes:
        return self._inner.end(reason, prompt, completion)

    def error(self, body: dict[str, Any]) -> bytes:
        return self._inner.error(body)
