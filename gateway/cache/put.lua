--[[ put.lua: store one cache entry and keep the scope within its size bound. Atomic.

KEYS[1] the entry   STRING  "j" or "s" (JSON or SSE) followed by the answer's bytes
KEYS[2] the index   ZSET    entry key -> time stored (ms); one per scope
ARGV[1] value   ARGV[2] ttl ms   ARGV[3] now ms   ARGV[4] max entries

Returns the number of entries evicted (the oldest, and those already expired).
]]
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], KEYS[1])
local evicted = 0
local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', tonumber(ARGV[3]) - tonumber(ARGV[2]))
for i = 1, #gone do redis.call('ZREM', KEYS[2], gone[i]) end
local over = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[4])
if over > 0 then
  local oldest = redis.call('ZRANGE', KEYS[2], 0, over - 1)
  for i = 1, #oldest do
    redis.call('DEL', oldest[i])
    redis.call('ZREM', KEYS[2], oldest[i])
  end
  evicted = #oldest
end
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return evicted
