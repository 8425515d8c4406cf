"""``make serve``: the gateway on :8000 in front of three simulated upstreams, with an embedded state store.

Starts ``python -m simulators`` three times (OpenAI-like on 127.0.0.1:9101, vLLM-like on :9102, Gemini-like on
:9103), then the gateway with
deploy/gateway.example.yaml in this process. The simulators are children that die with this process (they are
sent SIGTERM on exit and, on Linux, by the kernel if this process is killed): Ctrl-C leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

CONFIG = Path(__file__).resolve().parent.parent / "deploy" / "gateway.example.yaml"
DEMO_KEY = "fl-demo-3c1f9a7e52d84b06"
UPSTREAMS = [("openai", "openai-gpt-4o-mini", 9101), ("vllm", "vllm-8b-h100", 9102), ("gemini", "gemini-flash", 9103)]


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _wait_listening(port: int, within_s: float = 15.0) -> bool:
    end = time.monotonic() + within_s
    while time.monotonic() < end:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.05)
    return False


def main() -> int:
    from gateway.main import main as serve_gateway

    children: list[subprocess.Popen[bytes]] = []
    try:
        for flavour, profile, port in UPSTREAMS:
            cmd = [sys.executable, "-m", "simulators", "--flavour", flavour, "--profile", profile]
            cmd += ["--seed", "7", "--name", flavour, "--port", str(port)]
            children.append(subprocess.Popen(cmd, preexec_fn=_die_with_parent))
        for (flavour, _, port), child in zip(UPSTREAMS, children, strict=True):
            if not _wait_listening(port) or child.poll() is not None:
                print(f"faultline: the {flavour} simulator did not start on port {port}", file=sys.stderr)
                return 1
        print(
            "\nFaultline gateway  http://127.0.0.1:8000/v1\n"
            f"demo API key       {DEMO_KEY}\n"
            "models             gpt-4o-mini (OpenAI-like 3 : vLLM-like 1, Gemini-like fallback), llama-3.1-8b\n"
            "                   (vLLM-like), gemini-flash (Gemini-like)\n"
            "metrics            http://127.0.0.1:9090/metrics\n"
            "upstreams          http://127.0.0.1:9101 (openai sim), :9102 (vllm sim), :9103 (gemini sim)\n"
            "Ctrl-C stops everything.\n",
            flush=True,
        )
        return serve_gateway(["--config", str(CONFIG)])
    except KeyboardInterrupt:
        return 0
    finally:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=5)
            except subprocess.TimeoutExpired:
                child.kill()


if __name__ == "__main__":
    os.environ.pop("REDIS_URL", None)  # the demo uses the embedded store
    sys.exit(main())
