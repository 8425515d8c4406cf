"""On a Redis Cluster, a call answered with a redirect (MOVED, ASK, TRYAGAIN, CLUSTERDOWN) is sent again through the
cluster client within what is left of its one bound, not with a fresh one (virtual time, fakes for the master's
ordered connection and the cluster client)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import fakeredis
import pytest
from redis.exceptions import MovedError, TryAgainError

from gateway.clock import run_virtual
from gateway.quota import clustercalls
from gateway.quota.clustercalls import ClusterMux
from gateway.quota.limiter import QuotaCounters
from gateway.settings.store import StateSettings
from gateway.store.statestore import StateStore

BOUND_S = 0.25
GRACES_S = 2 * BOUND_S / 10  # an on-time deadline waits two graces of a tenth of the bound (storedeadline.py)


class _Node:
    name = "127.0.0.1:7000"


class _Slots:
    def get(self, slot: int) -> list[_Node]:
        return [_Node()]  # every slot on the one master


class _Manager:
    slots_cache = _Slots()


class _HungCluster:
    """The cluster client: the re-sent call never answers (the new owner hangs during a failover)."""

    nodes_manager = _Manager()
    sent = 0

    async def evalsha(self, *_: Any) -> Any:
        self.sent += 1
        await asyncio.sleep(3600)


class _RedirectingMux:
    """The master's ordered connection: every call is answered ``answer`` after ``after_s``."""

    def __init__(self, answer: Exception, after_s: float) -> None:
        self._answer, self._after_s = answer, after_s

    def evalsha(
        self, sha: str, keys: Sequence[Any], args: Sequence[Any], *, wire: bytes | None = None
    ) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_later(self._after_s, future.set_exception, self._answer)
        return future


@pytest.mark.parametrize("answer", [MovedError("12182 127.0.0.1:7001"), TryAgainError("TRYAGAIN")])
def test_a_redirected_call_gets_what_is_left_of_its_bound(monkeypatch: pytest.MonkeyPatch, answer: Exception) -> None:
    monkeypatch.setattr(clustercalls, "ScriptMux", lambda *_, **__: _RedirectingMux(answer, after_s=0.2))

    cluster = _HungCluster()

    async def main() -> tuple[float, bool]:
        store = StateStore(
            fakeredis.FakeAsyncRedis(),
            StateSettings(timeout_s=BOUND_S, outage_after_failures=3),
            events=QuotaCounters(),
        )
        mux = ClusterMux(cluster, store=store)  # type: ignore[arg-type]  # a fake of the cluster client
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        with pytest.raises(TimeoutError):
            await mux.evalsha("sha", ["{team}:quota"], [])
        return round(loop.time() - t0, 6), store.healthy

    took, healthy = run_virtual(main())
    assert took == round(BOUND_S + GRACES_S, 6)  # one bound with its graces, redirect included (a fresh bound: 0.5 s)
    assert cluster.sent == 1  # sent again through the cluster client
    assert healthy  # one failed round trip counted, no outage
