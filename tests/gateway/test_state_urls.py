"""The state store's URL names its topology: one server, a Redis Cluster's nodes, or Sentinels and a master."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from gateway.state import connect_state, hosts, topology


@pytest.mark.parametrize(
    ("url", "kind", "nodes"),
    [
        ("redis://127.0.0.1:6379/0", "single", None),
        ("rediss://cache.example:6380/1", "single", None),
        (
            "redis+cluster://10.0.0.1:7000,10.0.0.2:7001,10.0.0.3",
            "cluster",
            [("10.0.0.1", 7000), ("10.0.0.2", 7001), ("10.0.0.3", 6379)],
        ),
        ("redis+sentinel://s1:26379,s2/mymaster/2", "sentinel", [("s1", 26379), ("s2", 26379)]),
        ("redis+sentinel://user:pw@s1:5000/m", "sentinel", [("s1", 5000)]),
    ],
)
def test_topology_and_hosts(url: str, kind: str, nodes: list[tuple[str, int]] | None) -> None:
    assert topology(url) == kind
    if nodes is not None:
        assert hosts(url) == nodes


async def test_each_url_builds_its_client_without_connecting() -> None:
    single = connect_state("redis://127.0.0.1:1/0")
    cluster = connect_state("redis+cluster://127.0.0.1:1,127.0.0.1:2")
    sentinel = connect_state("redis+sentinel://app:secret@127.0.0.1:1/mymaster/3")
    assert isinstance(single, aioredis.Redis) and isinstance(cluster, RedisCluster)
    assert isinstance(sentinel, aioredis.Redis)
    kwargs = sentinel.connection_pool.connection_kwargs
    assert (kwargs["db"], kwargs["username"], kwargs["password"]) == (3, "app", "secret")
    for client in (single, cluster, sentinel):
        await client.aclose()


@pytest.mark.parametrize(
    "url",
    [
        "redis://app%40eu:p%40ss%3Aw%2Fd@127.0.0.1:1/0",
        "redis+cluster://app%40eu:p%40ss%3Aw%2Fd@127.0.0.1:1,127.0.0.1:2",
        "redis+sentinel://app%40eu:p%40ss%3Aw%2Fd@127.0.0.1:1/mymaster",
    ],
)
async def test_percent_encoded_credentials_reach_redis_decoded_on_every_topology(url: str) -> None:
    client = connect_state(url)
    if isinstance(client, RedisCluster):
        kwargs = client.nodes_manager.connection_kwargs
    else:
        assert isinstance(client, aioredis.Redis)
        kwargs = client.connection_pool.connection_kwargs
    assert (kwargs["username"], kwargs["password"]) == ("app@eu", "p@ss:w/d")
    await client.aclose()


def test_a_sentinel_url_must_name_its_master() -> None:
    with pytest.raises(ValueError, match="names the master"):
        connect_state("redis+sentinel://127.0.0.1:26379")
