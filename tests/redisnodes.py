"""Real Redis topologies for the tests, on free loopback ports, started and torn down by the tests themselves:
a Redis Cluster of three masters, and a master with a replica and a Sentinel. Bounded in time: every wait polls
with a limit and raises when it runs out."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.processes import free_port
from tests.tools import tool


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free too."""
    for _ in range(200):
        port = free_port()
        if port + 10000 < 65536 and _free(port + 10000):
            return port
    raise RuntimeError("no free port pair for a cluster node")


def _server(port: int, workdir: Path, *extra: str) -> subprocess.Popen[bytes]:
    args = [tool("redis-server"), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    args += ["--dir", str(workdir), *extra]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _cli(port: int, *args: str) -> str:
    out = subprocess.run(
        [tool("redis-cli"), "-p", str(port), *args], capture_output=True, text=True, timeout=30, check=False
    )
    return out.stdout


def _until(check: object, what: str, limit_s: float = 60.0) -> None:
    """Poll ``check()`` (a callable returning bool) every 0.1 s until true, at most ``limit_s``."""
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        if check():  # type: ignore[operator]  # check is any callable returning a truth value
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} within {limit_s:g} s")


def stop_all(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@contextmanager
def redis_cluster(
    workdir: Path, masters: int = 3, replicas: int = 0
) -> Iterator[tuple[list[int], list[subprocess.Popen[bytes]]]]:
    """``masters`` cluster nodes with ``replicas`` replicas each, every slot assigned, a node taken for failed after
    1 s without answering: yields their ports and processes (masters first, as redis-cli assigns them)."""
    ports = [cluster_port() for _ in range(masters * (1 + replicas))]
    procs = []
    try:
        for port in ports:
            conf = workdir / f"nodes-{port}.conf"
            cluster = ["--cluster-enabled", "yes", "--cluster-config-file", str(conf), "--cluster-node-timeout", "1000"]
            cluster += ["--cluster-replica-validity-factor", "0"]  # a replica may always take over
            procs.append(_server(port, workdir, *cluster))
        for port in ports:
            _until(lambda p=port: "PONG" in _cli(p, "ping"), f"node {port} did not answer")
        nodes = [f"127.0.0.1:{p}" for p in ports]
        _cli(ports[0], "--cluster", "create", *nodes, "--cluster-replicas", str(replicas), "--cluster-yes")
        _until(lambda: all("cluster_state:ok" in _cli(p, "cluster", "info") for p in ports), "the cluster was not ok")
        for port in ports[masters:]:
            _until(lambda p=port: "master_link_status:up" in _cli(p, "info", "replication"), "a replica did not sync")
        yield ports, procs
    finally:
        stop_all(procs)


def cluster_master_of(port: int, slot: int) -> int:
    """The port of the master serving ``slot``, as the node on ``port`` sees it."""
    for line in _cli(port, "cluster", "nodes").splitlines():
        fields = line.split()
        if "master" not in fields[2] or "fail" in fields[2]:
            continue
        for part in fields[8:]:
            lo, _, hi = part.partition("-")
            if lo.isdigit() and int(lo) <= slot <= int(hi or lo):
                return int(fields[1].split("@")[0].rpartition(":")[2])
    return 0


@contextmanager
def redis_sentinel(workdir: Path, name: str = "fl") -> Iterator[dict[str, object]]:
    """A master, one replica and one Sentinel (quorum 1, the master down after 1 s): yields their ports and
    processes (``master``, ``replica``, ``sentinel``, ``procs``)."""
    master, replica, sentinel = free_port(), free_port(), free_port()
    procs = [_server(master, workdir), _server(replica, workdir, "--replicaof", "127.0.0.1", str(master))]
    conf = workdir / "sentinel.conf"
    conf.write_text(
        f"port {sentinel}\nbind 127.0.0.1\ndir {workdir}\n"
        f"sentinel monitor {name} 127.0.0.1 {master} 1\n"
        f"sentinel down-after-milliseconds {name} 1000\n"
        f"sentinel failover-timeout {name} 5000\n"
    )
    try:
        _until(lambda: "PONG" in _cli(master, "ping"), "the master did not answer")
        _until(lambda: "master_link_status:up" in _cli(replica, "info", "replication"), "the replica did not sync")
        procs.append(
            subprocess.Popen(
                [tool("redis-server"), str(conf), "--sentinel"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
        )
        _until(lambda: "slaves=1" in _cli(sentinel, "info", "sentinel"), "the sentinel did not see the replica")
        yield {"master": master, "replica": replica, "sentinel": sentinel, "procs": procs, "name": name}
    finally:
        stop_all(procs)


def sentinel_master(sentinel: int, name: str) -> int:
    """The port of the master the Sentinel names now."""
    out = _cli(sentinel, "sentinel", "get-master-addr-by-name", name).split()
    return int(out[1]) if len(out) == 2 else 0


def failover(sentinel: int, name: str) -> None:
    _cli(sentinel, "sentinel", "failover", name)


def wait_until(check: object, what: str, limit_s: float = 60.0) -> None:
    _until(check, what, limit_s)
