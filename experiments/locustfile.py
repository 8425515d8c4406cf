"""Faultline's locustfile: chat completions against any OpenAI-compatible gateway.

    locust -f experiments/locustfile.py --host http://127.0.0.1:8000 --api-key KEY
    python -m experiments.loadtest            # the same, with the defaults of ``make serve``

Options (command line, or the environment variable in brackets; all shown in the web UI):
``--api-key`` [FAULTLINE_API_KEY], ``--model`` [FAULTLINE_MODEL], ``--stream-share`` (0-1) [FAULTLINE_STREAM_SHARE],
``--prompt-tokens`` / ``--max-tokens`` (means) , ``--pacing`` (s between one user's requests), ``--seed``.

Request names in the statistics: ``chat`` (non-streaming, whole response), ``chat stream`` (streaming, until
``data: [DONE]``) and ``ttft`` (request type ``TTFT``: time from sending a streaming request to the first chunk
carrying content, one sample per stream that produced one). A failure is an HTTP status outside 2xx (named by
status and OpenAI error type), an SSE ``data: {"error": ...}`` event, a stream that ends without ``[DONE]``, or a
connection error. :func:`chat_call` is shared with the scenario runner's locustfile (``locust_scenario.py``).

``$FAULTLINE_LOCUST_COUNTS``, when it names a directory, gets one JSON file per locust process at exit: each
worker's (or a lone process's) own request and failure counts as ``worker-<pid>.json``, and in distributed mode
the master's aggregated totals as ``master.json`` — the master's figures should be the workers' sum.
"""

from __future__ import annotations

import json
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from locust import User, constant_pacing, events, task
from locust.runners import MasterRunner

DEFAULT_KEY = "fl-demo-3c1f9a7e52d84b06"
_WORDS = ("the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "while", "seven", "wizards")


@dataclass
class ChatOutcome:
    status: int  # 0: no HTTP response (connection error)
    ttft_s: float | None
    error: str | None  # None: success

    @property
    def stream_error(self) -> bool:
        return self.error is not None and self.error.startswith("stream")


def _error_name(status: int, body: bytes) -> str:
    try:
        err = json.loads(body).get("error") or {}
        kind = err.get("code") or err.get("type") or "error"
    except (ValueError, AttributeError):
        kind = "non-json body"
    return f"HTTP {status} {kind}"


def _read_stream(resp: requests.Response, start: float) -> tuple[float | None, str | None]:
    """(seconds to the first content chunk, failure or None) of an SSE response."""
    ttft: float | None = None
    for raw in resp.iter_lines():
        if not raw.startswith(b"data:"):
            continue
        data = raw[5:].strip()
        if data == b"[DONE]":
            return ttft, None
        try:
            event = json.loads(data)
        except ValueError:
            return ttft, "stream: malformed event"
        if isinstance(event, dict) and "error" in event:
            err = event.get("error") or {}
            return ttft, f"stream: error event {err.get('code') or err.get('type') or ''}".rstrip()
        if ttft is None and any((c.get("delta") or {}).get("content") for c in event.get("choices") or []):
            ttft = time.perf_counter() - start
    return ttft, "stream: ended without [DONE]"


def chat_call(
    user: User, session: requests.Session, headers: dict[str, str], body: bytes | str, stream: bool
) -> ChatOutcome:
    """POST one chat completion to ``user.host``, fire locust's request events, return what happened."""
    url = f"{(user.host or '').rstrip('/')}/v1/chat/completions"
    name = "chat stream" if stream else "chat"
    start = time.perf_counter()
    ttft: float | None = None
    status, error, length = 0, None, 0
    try:
        with session.post(url, data=body, headers=headers, stream=stream, timeout=(5, 300)) as resp:
            status = resp.status_code
            if status // 100 != 2:
                error = _error_name(status, resp.content)
            elif stream:
                ttft, error = _read_stream(resp, start)
            else:
                length = len(resp.content)
    except requests.RequestException as exc:
        error = f"connection: {type(exc).__name__}"
    total_ms = (time.perf_counter() - start) * 1000
    fire = user.environment.events.request.fire
    failure = RuntimeError(error) if error else None
    fire(request_type="POST", name=name, response_time=total_ms, response_length=length, exception=failure, context={})
    if ttft is not None:
        fire(request_type="TTFT", name="ttft", response_time=ttft * 1000, response_length=0, exception=None, context={})
    return ChatOutcome(status, ttft, error)


def prompt_text(tokens: int, rng: random.Random) -> str:
    """About ``tokens`` prompt tokens (4 characters a token)."""
    words: list[str] = []
    size = 0
    while size < 4 * max(1, tokens):
        w = rng.choice(_WORDS)
        words.append(w)
        size += len(w) + 1
    return " ".join(words)


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    parser.add_argument("--api-key", env_var="FAULTLINE_API_KEY", default=DEFAULT_KEY, help="gateway API key")
    parser.add_argument("--model", env_var="FAULTLINE_MODEL", default="gpt-4o-mini", help="model to ask for")
    parser.add_argument("--stream-share", env_var="FAULTLINE_STREAM_SHARE", type=float, default=0.5)
    parser.add_argument("--prompt-tokens", type=int, default=200, help="mean prompt size (tokens)")
    parser.add_argument("--max-tokens", type=int, default=64, help="mean max_tokens")
    parser.add_argument("--pacing", type=float, default=1.0, help="seconds between one user's requests")
    parser.add_argument("--seed", type=int, default=0, help="seeds each user's request mix")


@events.init.add_listener
def _per_process_counts(environment: Any, **_kw: Any) -> None:
    out = os.environ.get("FAULTLINE_LOCUST_COUNTS")
    if not out:
        return
    counts = {"requests": 0, "failures": 0}

    def on_request(exception: BaseException | None = None, **_: Any) -> None:
        counts["requests"] += 1
        counts["failures"] += exception is not None

    def on_quit(**_: Any) -> None:
        if isinstance(environment.runner, MasterRunner):
            total = environment.stats.total
            name, body = "master.json", {"requests": total.num_requests, "failures": total.num_failures}
        else:
            name, body = f"worker-{os.getpid()}.json", counts
        Path(out, name).write_text(json.dumps(body))

    environment.events.request.add_listener(on_request)
    environment.events.quitting.add_listener(on_quit)


class ChatUser(User):
    """One client: a chat completion every ``--pacing`` seconds, streaming with probability ``--stream-share``."""

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        opts = environment.parsed_options
        self.opts = opts
        self.session = requests.Session()
        n = getattr(environment, "faultline_users", 0)  # the n-th user of this run: its own seeded stream
        environment.faultline_users = n + 1
        self.rng = random.Random(f"{getattr(opts, 'seed', 0)}/{n}")
        self.n = 0

    def wait_time(self) -> float:
        return float(constant_pacing(getattr(self.opts, "pacing", 1.0))(self))

    @task
    def chat(self) -> None:
        opts = self.opts
        stream = self.rng.random() < opts.stream_share
        prompt = max(1, round(self.rng.gauss(opts.prompt_tokens, opts.prompt_tokens / 3)))
        max_tokens = max(1, round(self.rng.gauss(opts.max_tokens, opts.max_tokens / 3)))
        body: dict[str, Any] = {
            "model": opts.model,
            "messages": [{"role": "user", "content": prompt_text(prompt, self.rng)}],
            "max_tokens": max_tokens,
        }
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        headers = {"authorization": f"Bearer {opts.api_key}", "content-type": "application/json"}
        chat_call(self, self.session, headers, json.dumps(body), stream)

    def on_stop(self) -> None:
        self.session.close()
