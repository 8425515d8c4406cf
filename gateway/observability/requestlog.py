"""The request-log writer: JSONL of :meth:`gateway.requestrecord.RequestRecord.to_dict`, one line per request.

Off the hot path: :meth:`RequestLogWriter.submit` only appends to a list; once :meth:`start` has run, the first
record of an event-loop tick schedules one callback for the next, which writes every record submitted meanwhile
as one batch (serialised with orjson, one ``write``). :meth:`stop` writes everything still pending, so a graceful
shutdown loses nothing. Same records, same bytes, in submission order.

Rotation by size: when the active file would pass ``max_bytes`` it is renamed ``<path>.1``, ``<path>.2``, ...
(oldest first, never deleted) and a new one is opened; :func:`read_records` reads the segments in order.

Several workers may share one path: each batch is appended under an exclusive ``flock`` of ``<path>.lock``, after
checking that the path is still the file this writer holds (another worker may have rotated it) and taking the
file's real size, so lines never interleave, rotation happens once, and no segment passes ``max_bytes``. One
``stat`` of the path does both (the inode of the file held is noted when it is opened), and the batch is one
unbuffered ``write``: four system calls a batch (lock, stat, write, unlock).

A batch that cannot be written (disk full, file gone) is counted in :attr:`RequestLogWriter.lost` and reported to
``on_error``; the writer reopens the file for the next batch and never fails the app.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import orjson

from gateway.observability.nexttick import NextTick
from gateway.requestrecord import SCHEMA_VERSION, RequestRecord


class RequestLogWriter:
    def __init__(
        self,
        path: str | Path,
        *,
        max_bytes: int = 64 * 1024 * 1024,
        run_id: str | None = None,
        on_error: Callable[[int, str], None] | None = None,
    ) -> None:
        """``on_error(records, error)``: a batch of ``records`` could not be written (``error``: the OS error)."""
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.run_id = run_id
        self.written = 0  # records written
        self.lost = 0  # records that could not be written
        self._on_error = on_error
        self._pending: list[RequestRecord] = []
        self._later: Callable[[Callable[[], None]], None] | None = None  # set while started (a NextTick)
        self._where = str(self.path)
        self._file: IO[bytes] | None = None
        self._lock: IO[bytes] | None = None
        self._lock_fd = -1  # its descriptor, while open
        self._size = 0
        self._held = (0, 0)  # (st_dev, st_ino) of the file held

    def submit(self, rec: RequestRecord) -> None:
        """Queue one finished request (stamped with the run id when it has none). Never blocks."""
        if rec.run_id is None and self.run_id is not None:
            rec.run_id = self.run_id
        pending = self._pending
        pending.append(rec)
        if len(pending) == 1 and self._later is not None:
            self._later(self._drain)

    async def start(self, tick: NextTick | None = None) -> None:
        """Open the file; from now on the records of a tick are written on the next (through ``tick``, shared
        with the log lines, or a tick of the writer's own)."""
        if self._later is None:
            self._open()
            self._later = tick if tick is not None else NextTick(asyncio.get_running_loop())
            if self._pending:
                self._later(self._drain)

    async def stop(self) -> None:
        """Write everything pending, flush and close."""
        self._later = None
        self._drain()
        self._close()

    def _drain(self) -> None:
        """Write the records submitted since the last batch, as one batch."""
        batch, self._pending = self._pending, []
        if batch:
            self._write_safely(batch)

    def _write_safely(self, batch: Sequence[RequestRecord]) -> None:
        try:
            self._write_batch(batch)
        except OSError as exc:
            n = len(batch)
            self.lost += n
            with contextlib.suppress(OSError):
                if self._file is not None:
                    self._file.close()
            self._file = None  # reopened for the next batch
            if self._on_error is not None:
                self._on_error(n, f"{type(exc).__name__}: {exc.strerror or exc}")

    def _write_batch(self, batch: Sequence[RequestRecord]) -> None:
        lines = [encode(r) for r in batch]
        if not lines:
            return
        if self._file is None:
            self._open()
        lock = self._lock_fd
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            self._sync()
            chunk: list[bytes] = []
            for line in lines:
                if self._size + len(line) > self.max_bytes and (self._size or chunk):
                    self._flush(chunk)
                    chunk = []
                    self._rotate()
                chunk.append(line)
                self._size += len(line)
            self._flush(chunk)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
        self.written += len(lines)

    def _flush(self, chunk: list[bytes]) -> None:
        if chunk and self._file is not None:
            data = chunk[0] if len(chunk) == 1 else b"".join(chunk)
            n = self._file.write(data)
            if n != len(data):  # the file is unbuffered: after a short write (a full disk) the rest, or it raises
                self._rest(memoryview(data), n)

    def _rest(self, data: memoryview, n: int | None) -> None:
        assert self._file is not None
        while n:
            data = data[n:]
            if not data:
                return
            n = self._file.write(data)
        raise OSError(errno.EIO, "nothing written")

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self._lock is None:
            self._lock = self.path.with_name(f"{self.path.name}.lock").open("ab")
            self._lock_fd = self._lock.fileno()
        self._hold()

    def _hold(self) -> None:
        """Open the path for appending (unbuffered), note which file it is and its size."""
        self._file = self.path.open("ab", buffering=0)
        held = os.fstat(self._file.fileno())
        self._held = (held.st_dev, held.st_ino)
        self._size = held.st_size

    def _sync(self) -> None:
        """Under the lock: reopen when another writer rotated the path away; take the file's real size. The
        path's ``stat`` gives both: while it is the file held, its size is that file's."""
        assert self._file is not None
        try:
            st = os.stat(self._where)
        except FileNotFoundError:
            st = None
        if st is not None and (st.st_dev, st.st_ino) == self._held:
            self._size = st.st_size
            return
        self._file.close()
        self._hold()

    def _close(self) -> None:
        for f in (self._file, self._lock):
            if f is not None:
                with contextlib.suppress(OSError):
                    f.close()
        self._file = self._lock = None
        self._lock_fd = -1

    def _rotate(self) -> None:
        if self._file is not None:
            self._file.close()
        n = 1
        while _segment(self.path, n).exists():
            n += 1
        self.path.rename(_segment(self.path, n))
        self._hold()


_SCHEMA_TAIL = b',"schema":%d}\n' % SCHEMA_VERSION


def encode(rec: RequestRecord) -> bytes:
    """The line of ``rec``: the bytes of ``orjson.dumps(rec.to_dict()) + b"\\n"``, from orjson's own dataclass
    serialisation (no ``dataclasses.asdict`` deep copy: about a twentieth of its cost) with the schema version
    appended."""
    return orjson.dumps(rec)[:-1] + _SCHEMA_TAIL


def _segment(path: Path, n: int) -> Path:
    return path.with_name(f"{path.name}.{n}")


def segments(path: str | Path) -> list[Path]:
    """The request-log files of ``path`` in write order: rotated segments oldest first, then the active file."""
    p = Path(path)
    out: list[Path] = []
    n = 1
    while _segment(p, n).exists():
        out.append(_segment(p, n))
        n += 1
    if p.exists():
        out.append(p)
    return out


def read_records(path: str | Path) -> Iterator[dict[str, Any]]:
    """Every record of the request log at ``path`` (all segments), in write order."""
    for seg in segments(path):
        with seg.open("rb") as f:
            for line in f:
                if line.strip():
                    yield orjson.loads(line)
