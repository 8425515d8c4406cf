--[[ settle.lua: replace a reservation's worst case with the real cost, in every counter it was taken from.
Idempotent: the reservation is the once-only token; a second settle (or one after it expired) changes nothing.

KEYS[1..n]  spend counters (as reserved)      KEYS[n+1]  reservations HASH
ARGV[1] handle    ARGV[2] actual cost (nano-dollars)    ARGV[3] n

Returns {settled 0|1, delta applied}.
]]
local handle, actual, n = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local reserved = redis.call('HGET', KEYS[n + 1], handle)
if not reserved then return {0, 0} end
redis.call('HDEL', KEYS[n + 1], handle)
local delta = actual - tonumber(reserved)
if delta ~= 0 then
  for i = 1, n do
    if redis.call('EXISTS', KEYS[i]) == 1 then redis.call('INCRBY', KEYS[i], delta) end
  end
end
return {1, delta}
