"""The progress display of a real-time run, on stderr.

One line rewritten in place on a terminal, a new line every ``every_s`` seconds otherwise (CI logs):
``[openai-outage] 41.2/150 s  phase outage  faults openai:outage:503  rps 5.2  errors 3 (0.4%)``.
:class:`ClientTail` reads the load generator's ``client.jsonl`` as it grows and keeps the last seconds' counts.
"""

from __future__ import annotations

import sys
from collections import deque
from pathlib import Path
from typing import IO, Any

import orjson

from experiments.scenario import Scenario


class ClientTail:
    """Counts of the client log: totals and the completions of the last ``window_s`` seconds."""

    def __init__(self, path: Path, window_s: float = 5.0) -> None:
        self.path = path
        self.window_s = window_s
        self._offset = 0
        self._partial = b""
        self._recent: deque[tuple[float, bool]] = deque()
        self.total = 0
        self.errors = 0
        self.status: dict[str, int] = {}

    def poll(self) -> None:
        if not self.path.exists():
            return
        with self.path.open("rb") as f:
            f.seek(self._offset)
            data = f.read()
        self._offset += len(data)
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            if line.strip():
                self._add(orjson.loads(line))

    def _add(self, row: dict[str, Any]) -> None:
        bad = row.get("error") is not None
        self.total += 1
        self.errors += bad
        key = str(row.get("status"))
        self.status[key] = self.status.get(key, 0) + 1
        self._recent.append((float(row.get("t") or 0.0), bad))

    def rate(self, now_s: float) -> tuple[float, int]:
        """(completions per second, errors) over the last ``window_s`` seconds of run time."""
        while self._recent and self._recent[0][0] < now_s - self.window_s:
            self._recent.popleft()
        span = min(self.window_s, max(now_s, 1e-9))
        return len(self._recent) / span, sum(1 for _, bad in self._recent if bad)


def status_line(sc: Scenario, elapsed: float, tail: ClientTail, note: str = "") -> str:
    ph = sc.load.phase_at(elapsed)
    spikes = [s.name for s in sc.load.spikes if s.start_s <= elapsed < s.end_s]
    faults = [
        f"{f['upstream']}:{f['kind']}"
        for f in sc.all_faults()
        if f["start_s"] <= elapsed < f["end_s"] and not str(f["kind"]).startswith("misconfig")
    ]
    rps, recent_errors = tail.rate(elapsed)
    share = f" ({100 * tail.errors / tail.total:.1f}%)" if tail.total else ""
    parts = [
        f"[{sc.name}] {min(elapsed, sc.duration_s):5.1f}/{sc.duration_s:g} s",
        f"phase {ph.name if ph else ('draining' if elapsed >= sc.duration_s else '-')}"
        + (f" + {','.join(spikes)}" if spikes else ""),
        f"faults {','.join(faults) if faults else 'none'}",
        f"rps {rps:.1f}",
        f"errors {tail.errors}{share}, {recent_errors} in the last {tail.window_s:g} s",
    ]
    if note:
        parts.append(note)
    return "  ".join(parts)


class Progress:
    def __init__(self, *, enabled: bool = True, stream: IO[str] | None = None, every_s: float = 5.0) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.tty = enabled and self.stream.isatty()
        self.every_s = every_s
        self._last = float("-inf")
        self._width = 0

    def update(self, line: str, now_s: float) -> None:
        if not self.enabled:
            return
        if self.tty:
            pad = max(0, self._width - len(line))
            self.stream.write("\r" + line + " " * pad)
            self._width = len(line)
            self.stream.flush()
        elif now_s - self._last >= self.every_s:
            self._last = now_s
            self.stream.write(line + "\n")
            self.stream.flush()

    def message(self, text: str) -> None:
        """A line of its own (a phase of the run: starting processes, stopping, where the files are)."""
        if not self.enabled:
            return
        if self.tty and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self._width = 0
        self.stream.write(text + "\n")
        self.stream.flush()

    def done(self) -> None:
        if self.enabled and self.tty and self._width:
            self.stream.write("\n")
            self.stream.flush()
            self._width = 0
