--[[ settle.lua: replace a request's token reservation with its real usage and release its lease. Idempotent:
the lease is the once-only token — a second settle of the same handle (or one after the lease expired) changes
nothing and returns {0, 0}. Mirrors gateway/quota/algorithm.py LocalLimiter.settle exactly.

Units: tokens are integers. No time argument: settling does not move any window (the tokens stay at the
request's admission time in the tokens log).

KEYS[1] tokens weights   HASH   handle -> tokens in the window; "_sum" = total      (as in check.lua)
KEYS[2] day counter      STRING tokens charged on the UTC day of the admission
KEYS[3] leases           ZSET   handle -> lease expiry
KEYS[4] reservations     HASH   handle -> tokens reserved

ARGV[1] handle    ARGV[2] actual tokens (prompt + completion, as delivered)

Returns {settled 0|1, delta applied}.
]]
local handle = ARGV[1]
local actual = tonumber(ARGV[2])
if redis.call('ZREM', KEYS[3], handle) == 0 then return {0, 0} end
local reserved = tonumber(redis.call('HGET', KEYS[4], handle) or ARGV[2])
redis.call('HDEL', KEYS[4], handle)
local delta = actual - reserved
if delta ~= 0 then
  if redis.call('HEXISTS', KEYS[1], handle) == 1 then
    redis.call('HINCRBY', KEYS[1], handle, delta)
    redis.call('HINCRBY', KEYS[1], '_sum', delta)
  end
  if redis.call('EXISTS', KEYS[2]) == 1 then
    redis.call('INCRBY', KEYS[2], delta)
  end
end
return {1, delta}
