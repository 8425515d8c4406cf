"""vLLM's Prometheus metrics, by its names (label ``model_name``), rendered by hand: no global registry."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable

_TTFT = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0)
_ITL = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0)
_REQ = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0)


class Histogram:
    __slots__ = ("bounds", "counts", "help", "name", "sum")

    def __init__(self, name: str, help_text: str, bounds: tuple[float, ...]) -> None:
        self.name, self.help, self.bounds = name, help_text, bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, v: float, n: int = 1) -> None:
        self.counts[bisect_left(self.bounds, v)] += n
        self.sum += v * n

    def render(self, label: str) -> list[str]:
        out = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        acc = 0
        for b, c in zip(self.bounds, self.counts, strict=False):
            acc += c
            out.append(f'{self.name}_bucket{{{label},le="{b}"}} {acc}')
        acc += self.counts[-1]
        out += [
            f'{self.name}_bucket{{{label},le="+Inf"}} {acc}',
            f"{self.name}_count{{{label}}} {acc}",
            f"{self.name}_sum{{{label}}} {self.sum}",
        ]
        return out


class VllmMetrics:
    def __init__(self, model: str, running: Callable[[], int], waiting: Callable[[], int], kv: Callable[[], float]):
        self.model = model
        self._running, self._waiting, self._kv = running, waiting, kv
        self.prompt_tokens = 0
        self.generation_tokens = 0
        self.success: dict[str, int] = {"stop": 0, "length": 0, "abort": 0}
        self.ttft = Histogram("vllm:time_to_first_token_seconds", "Histogram of time to first token.", _TTFT)
        self.itl = Histogram("vllm:inter_token_latency_seconds", "Histogram of inter-token latency.", _ITL)
        self.e2e = Histogram("vllm:e2e_request_latency_seconds", "End-to-end request latency.", _REQ)
        self.queue = Histogram("vllm:request_queue_time_seconds", "Time spent in the WAITING phase.", _REQ)
        self.prefill = Histogram("vllm:request_prefill_time_seconds", "Time spent in the PREFILL phase.", _REQ)
        self.decode = Histogram("vllm:request_decode_time_seconds", "Time spent in the DECODE phase.", _REQ)

    def finished(
        self, *, prompt: int, generated: int, reason: str, queue: float, prefill: float, decode: float
    ) -> None:
        self.prompt_tokens += prompt
        self.generation_tokens += generated
        self.success[reason] = self.success.get(reason, 0) + 1
        self.queue.observe(queue)
        self.prefill.observe(prefill)
        self.ttft.observe(queue + prefill)
        self.decode.observe(decode)
        self.e2e.observe(queue + prefill + decode)
        if generated > 1:
            self.itl.observe(decode / (generated - 1), generated - 1)

    def aborted(self) -> None:
        """A request whose client went away before it finished."""
        self.success["abort"] += 1

    def render(self) -> str:
        label = f'model_name="{self.model}"'
        lines = [
            "# HELP vllm:num_requests_running Number of requests in model execution batches.",
            "# TYPE vllm:num_requests_running gauge",
            f"vllm:num_requests_running{{{label}}} {self._running()}",
            "# HELP vllm:num_requests_waiting Number of requests waiting to be processed.",
            "# TYPE vllm:num_requests_waiting gauge",
            f"vllm:num_requests_waiting{{{label}}} {self._waiting()}",
            "# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.",
            "# TYPE vllm:kv_cache_usage_perc gauge",
            f"vllm:kv_cache_usage_perc{{{label}}} {self._kv()}",
            "# HELP vllm:prompt_tokens_total Number of prefill tokens processed.",
            "# TYPE vllm:prompt_tokens_total counter",
            f"vllm:prompt_tokens_total{{{label}}} {self.prompt_tokens}",
            "# HELP vllm:generation_tokens_total Number of generation tokens processed.",
            "# TYPE vllm:generation_tokens_total counter",
            f"vllm:generation_tokens_total{{{label}}} {self.generation_tokens}",
            "# HELP vllm:request_success_total Count of successfully processed requests.",
            "# TYPE vllm:request_success_total counter",
        ]
        lines += [f'vllm:request_success_total{{{label},finished_reason="{r}"}} {c}' for r, c in self.success.items()]
        for h in (self.ttft, self.itl, self.e2e, self.queue, self.prefill, self.decode):
            lines += h.render(label)
        return "\n".join(lines) + "\n"
