"""Response bodies on the wire: chat completions (JSON and SSE chunks) and model lists, per flavour."""

from __future__ import annotations

from typing import Any

import orjson

from simulators.failures import Flavour

FINGERPRINT = "fp_f4ul7l1n3"


def completion_id(flavour: Flavour, rid: str) -> str:
    return f"chatcmpl-{rid}"


def usage(prompt: int, completion: int, flavour: Flavour) -> dict[str, Any]:
    u: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if flavour == "openai":
        u["prompt_tokens_details"] = {"cached_tokens": 0, "audio_tokens": 0}
        u["completion_tokens_details"] = {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        }
    else:
        u["prompt_tokens_details"] = None
    return u


def completion(
    flavour: Flavour, cid: str, created: int, model: str, content: str, finish: str, prompt: int, completion: int
) -> bytes:
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
    choice: dict[str, Any] = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
    body: dict[str, Any] = {"id": cid, "object": "chat.completion", "created": created, "model": model}
    if flavour == "openai":
        message["annotations"] = []
        body["choices"] = [choice]
        body["usage"] = usage(prompt, completion, flavour)
        body["service_tier"] = "default"
        body["system_fingerprint"] = FINGERPRINT
    else:
        message["tool_calls"] = []
        message["reasoning_content"] = None
        choice["stop_reason"] = None
        body["choices"] = [choice]
        body["usage"] = usage(prompt, completion, flavour)
        body["prompt_logprobs"] = None
    return orjson.dumps(body)


class Chunker:
    """Builds ``data: {...}\\n\\n`` SSE events of one stream; every chunk carries the same id and created.

    OpenAI: the role chunk's delta is ``{"role", "content": "", "refusal": null}``; with ``include_usage`` every
    chunk has ``"usage": null``; the finish chunk's delta is ``{}``. vLLM (pydantic ``exclude_unset``): the role
    delta is ``{"role", "content": ""}``, chunks have no ``usage`` key, the finish chunk carries the end-of-sequence
    token's empty text and ``stop_reason: null``, the usage chunk has no details, and an error event is followed
    by ``[DONE]``.
    """

    __slots__ = ("_head", "_tail", "flavour", "include_usage")

    def __init__(self, flavour: Flavour, cid: str, created: int, model: str, include_usage: bool) -> None:
        self.flavour = flavour
        self.include_usage = include_usage
        head: dict[str, Any] = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model}
        if flavour == "openai":
            head["service_tier"] = "default"
            head["system_fingerprint"] = FINGERPRINT
        self._head = b"data: " + orjson.dumps(head)[:-1] + b',"choices":'
        self._tail = b',"usage":null}\n\n' if include_usage and flavour == "openai" else b"}\n\n"

    def choice(self, choice: dict[str, Any]) -> bytes:
        """One event carrying ``choice`` (for replies the fast paths below do not build)."""
        return self._choice(choice)

    def _choice(self, choice: dict[str, Any]) -> bytes:
        return self._head + orjson.dumps([choice]) + self._tail

    def role(self) -> bytes:
        delta: dict[str, Any] = {"role": "assistant", "content": ""}
        if self.flavour == "openai":
            delta["refusal"] = None
        return self._choice({"index": 0, "delta": delta, "logprobs": None, "finish_reason": None})

    def token(self, text: str) -> bytes:
        return (
            self._head
            + b'[{"index":0,"delta":{"content":'
            + orjson.dumps(text)
            + b'},"logprobs":null,'
            + (b'"finish_reason":null}]')
            + self._tail
        )

    def finish(self, reason: str) -> bytes:
        if self.flavour == "openai":
            return self._choice({"index": 0, "delta": {}, "logprobs": None, "finish_reason": reason})
        choice = {"index": 0, "delta": {"content": ""}, "logprobs": None, "finish_reason": reason, "stop_reason": None}
        return self._choice(choice)

    def usage(self, prompt: int, completion: int) -> bytes:
        if self.flavour == "openai":
            u = usage(prompt, completion, self.flavour)
        else:
            u = {"prompt_tokens": prompt, "total_tokens": prompt + completion, "completion_tokens": completion}
        return self._head + b'[],"usage":' + orjson.dumps(u) + b"}\n\n"

    def end(self, reason: str, prompt: int, completion: int) -> bytes:
        """The finish chunk, the usage chunk when asked for, and ``[DONE]``."""
        tail = self.finish(reason)
        if self.include_usage:
            tail += self.usage(prompt, completion)
        return tail + self.done()

    def error(self, body: dict[str, Any]) -> bytes:
        event = b"data: " + orjson.dumps(body) + b"\n\n"
        return event + self.done() if self.flavour == "vllm" else event

    @staticmethod
    def done() -> bytes:
        return b"data: [DONE]\n\n"


def models(flavour: Flavour, model_ids: list[str], created: int, max_model_len: int) -> bytes:
    data: list[dict[str, Any]] = []
    for m in model_ids:
        if flavour == "openai":
            data.append({"id": m, "object": "model", "created": created, "owned_by": "system"})
        else:
            data.append(
                {
                    "id": m,
                    "object": "model",
                    "created": created,
                    "owned_by": "vllm",
                    "root": m,
                    "parent": None,
                    "max_model_len": max_model_len,
                    "permission": [
                        {
                            "id": f"modelperm-{m}",
                            "object": "model_permission",
                            "created": created,
                            "allow_create_engine": False,
                            "allow_sampling": True,
                            "allow_logprobs": True,
                            "allow_search_indices": False,
                            "allow_view": True,
                            "allow_fine_tuning": False,
                            "organization": "*",
                            "group": None,
                            "is_blocking": False,
                        }
                    ],
                }
            )
    return orjson.dumps({"object": "list", "data": data})


class OpenAIRender:
    """How one generation goes out in the OpenAI (or vLLM) shape: a JSON body or a :class:`Chunker`."""

    __slots__ = ("flavour", "stream", "usage_chunk")

    def __init__(self, flavour: Flavour, stream: bool, usage_chunk: bool) -> None:
        self.flavour, self.stream, self.usage_chunk = flavour, stream, usage_chunk

    def body(self, rid: str, created: int, model: str, content: str, finish: str, prompt: int, n: int) -> bytes:
        return completion(self.flavour, completion_id(self.flavour, rid), created, model, content, finish, prompt, n)

    def chunker(self, rid: str, created: int, model: str, prompt: int) -> Chunker:
        return Chunker(self.flavour, completion_id(self.flavour, rid), created, model, self.usage_chunk)

    def prepare(self, d: Any) -> None:
        """Nothing to change in the decision for a plain text reply."""
