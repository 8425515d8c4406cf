--[[ reserve.lua: reserve a request's worst-case cost in every dollar budget that applies, or none. Atomic.

Units: nano-dollars (1e-9 USD), integers. All keys share the consumer's hash tag (Redis Cluster: one slot).

KEYS[1..n]  spend counters  STRING  nano-dollars spent or reserved in one budget period
KEYS[n+1]   reservations    HASH    handle -> nano-dollars reserved (until settled)
KEYS[n+2]   sequence        STRING  last handle issued

ARGV[1] cost (worst case)   ARGV[2] n   ARGV[3] reservation ttl ms
ARGV[4 + 2(i-1)] limit of counter i    ARGV[5 + 2(i-1)] ttl ms of counter i (to the period's end, plus a day)

Returns {1, handle, used_1 .. used_n} (spend after the reservation), or {0, i, used_1 .. used_n} where i is the
first counter the cost does not fit in (nothing changed).
]]
local cost, n, resv_ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local used = {}
for i = 1, n do used[i] = tonumber(redis.call('GET', KEYS[i]) or '0') end
for i = 1, n do
  if used[i] + cost > tonumber(ARGV[4 + 2 * (i - 1)]) then
    local out = {0, i}
    for j = 1, n do out[#out + 1] = used[j] end
    return out
  end
end
local out = {1, 0}
for i = 1, n do
  out[#out + 1] = redis.call('INCRBY', KEYS[i], cost)
  redis.call('PEXPIRE', KEYS[i], tonumber(ARGV[5 + 2 * (i - 1)]))
end
local handle = redis.call('INCR', KEYS[n + 2])
redis.call('HSET', KEYS[n + 1], handle, cost)
redis.call('PEXPIRE', KEYS[n + 1], resv_ttl)
redis.call('PEXPIRE', KEYS[n + 2], resv_ttl)
out[2] = tostring(handle)
return out
