"""Script calls of one event-loop turn share one pipeline; errors reach exactly the calls they belong to."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError

from gateway.clock import run_virtual
from gateway.quota.batch import ScriptBatch

INCR = "return redis.call('incrby', KEYS[1], ARGV[1])"


async def test_calls_of_one_turn_run_in_order_in_one_pipeline(state_store: aioredis.Redis, prefix: str) -> None:
    sha = await state_store.script_load(INCR)
    batch = ScriptBatch(state_store)
    key = f"{prefix}:n"
    results = await asyncio.gather(*(batch.evalsha(sha, [key], [i]) for i in (1, 2, 3)))
    assert results == [1, 3, 6]  # applied in the order they were issued
    assert await batch.evalsha(sha, [key], [10]) == 16  # a later turn: a batch of its own


@pytest.mark.redis
async def test_an_error_of_one_command_fails_only_its_call(state_store: aioredis.Redis, prefix: str) -> None:
    sha = await state_store.script_load(INCR)
    batch = ScriptBatch(state_store)
    key = f"{prefix}:n"
    ok, missing = await asyncio.gather(
        batch.evalsha(sha, [key], [5]), batch.evalsha("0" * 40, [key], [1]), return_exceptions=True
    )
    assert ok == 5
    assert isinstance(missing, NoScriptError)


class _DeadPipeline:
    def evalsha(self, *args: Any) -> None:
        pass

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        raise RedisConnectionError("connection lost")


class _DeadStore:
    def pipeline(self, transaction: bool = True) -> _DeadPipeline:
        return _DeadPipeline()


async def test_a_failed_round_trip_fails_every_call_of_its_batch() -> None:
    batch = ScriptBatch(_DeadStore())
    results = await asyncio.gather(*(batch.evalsha("a" * 40, ["k"], [1]) for _ in range(3)), return_exceptions=True)
    assert [type(r) for r in results] == [RedisConnectionError] * 3


async def test_a_caller_that_stopped_waiting_is_skipped(state_store: aioredis.Redis, prefix: str) -> None:
    sha = await state_store.script_load(INCR)
    batch = ScriptBatch(state_store)
    key = f"{prefix}:n"
    gone = batch.evalsha(sha, [key], [1])
    kept = batch.evalsha(sha, [key], [2])
    gone.cancel()  # its timeout fired before the batch went out
    assert await kept == 3  # the command was sent all the same, as a lone command that timed out may have been
    await batch.aclose()
    assert gone.cancelled()


class _HangingPipeline(_DeadPipeline):
    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        await asyncio.Event().wait()
        return []


class _HangingStore:
    def pipeline(self, transaction: bool = True) -> _HangingPipeline:
        return _HangingPipeline()


def test_a_batch_gives_up_at_its_timeout() -> None:
    """A store that never answers: the batch fails its calls at ``timeout_s`` (virtual time), dropping the round
    trip as a lone command's timeout would."""

    async def main() -> list[Any]:
        batch = ScriptBatch(_HangingStore(), timeout_s=0.05)
        return await asyncio.gather(*(batch.evalsha("a" * 40, ["k"], [1]) for _ in range(2)), return_exceptions=True)

    assert [type(r) for r in run_virtual(main())] == [TimeoutError, TimeoutError]


async def test_a_batch_cancelled_before_it_ran_cancels_its_calls() -> None:
    batch = ScriptBatch(_HangingStore())
    call = batch.evalsha("a" * 40, ["k"], [1])
    await asyncio.sleep(0)  # the flush ran: the batch's task exists and has not started
    for task in list(batch._flushing):
        task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
