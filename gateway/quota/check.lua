--[[ check.lua: admit one request for one consumer, or say why not. Atomic; all-or-nothing.

Algorithm: sliding-window logs (requests and reserved tokens per WINDOW), a per-UTC-day token counter and
in-flight leases. Mirrors gateway/quota/algorithm.py LocalLimiter.check exactly.

Units: times in integer milliseconds since the Unix epoch, taken from the gateway's clock (never Redis TIME);
tokens are integers; a limit of 0 means "no limit on that axis". TTLs are hygiene only. Every ARGV is an integer
in decimal; where one goes into a command unchanged (now, tokens, window, lease) the string itself is passed, which
spares Redis the number's conversion back to a string (a few microseconds a call).
All keys share the consumer's hash tag, so the script runs on Redis Cluster.

KEYS[1] requests log         ZSET  member = handle, score = admission time
KEYS[2] tokens log           ZSET  member = handle, score = admission time
KEYS[3] tokens weights       HASH  handle -> tokens reserved/charged in the window; field "_sum" = their total
KEYS[4] day counter          STRING tokens charged on this UTC day
KEYS[5] leases               ZSET  member = handle, score = lease expiry (in flight, not yet settled)
KEYS[6] reservations         HASH  handle -> tokens reserved (until settled)
KEYS[7] sequence             STRING last handle issued

ARGV[1] now_ms   ARGV[2] tokens (estimate to reserve)
ARGV[3] rpm      ARGV[4] tpm      ARGV[5] tpd      ARGV[6] max_concurrency      (0 = unlimited)
ARGV[7] window_ms    ARGV[8] lease_ms    ARGV[9] ms until the end of the UTC day

Returns {admitted 0|1, kind, handle|0, retry_ms, req_used, req_reset_ms, tok_used, tok_reset_ms, day_used,
inflight}; kind is ok | day | concurrency | requests | tokens | too_large; retry_ms -1 = never fits.
]]
local now = tonumber(ARGV[1])
local tokens = tonumber(ARGV[2])
local rpm, tpm, tpd, conc = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local window, lease, day_left = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local edge = now - window
local BATCH = 1000  -- Lua's unpack() fails beyond ~8000 values: many entries expire at once after a lull

-- HDEL the fields `names` from hash `key`; with `sum`, return the total of their values first
local function drop(key, names, sum)
  local total = 0
  for i = 1, #names, BATCH do
    local part = {unpack(names, i, math.min(i + BATCH - 1, #names))}
    if sum then
      local w = redis.call('HMGET', key, unpack(part))
      for j = 1, #w do total = total + (tonumber(w[j]) or 0) end
    end
    redis.call('HDEL', key, unpack(part))
  end
  return total
end

-- expire what left the windows
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', edge)
local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', edge)
if #gone > 0 then
  redis.call('HINCRBY', KEYS[3], '_sum', -drop(KEYS[3], gone, true))
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', edge)
end
local dead = redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', ARGV[1])
if #dead > 0 then
  drop(KEYS[6], dead, false)
  redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', ARGV[1])
end

local req_used = redis.call('ZCARD', KEYS[1])
local tok_used = tonumber(redis.call('HGET', KEYS[3], '_sum') or '0')
local day_used = tonumber(redis.call('GET', KEYS[4]) or '0')
local inflight = redis.call('ZCARD', KEYS[5])

local function reset_of(key)
  local newest = redis.call('ZRANGE', KEYS[key], '-1', '-1', 'WITHSCORES')
  if #newest == 0 then return 0 end
  return tonumber(newest[2]) + window - now
end

local function reject(kind, retry)
  return {0, kind, 0, retry, req_used, reset_of(1), tok_used, reset_of(2), day_used, inflight}
end

if tpd > 0 and day_used + tokens > tpd then return reject('day', day_left) end
if conc > 0 and inflight >= conc then return reject('concurrency', 1000) end
if rpm > 0 and req_used + 1 > rpm then
  local oldest = redis.call('ZRANGE', KEYS[1], req_used - rpm, req_used - rpm, 'WITHSCORES')
  return reject('requests', tonumber(oldest[2]) + window - now)
end
if tpm > 0 then
  if tokens > tpm then return reject('too_large', -1) end
  if tok_used + tokens > tpm then
    -- when would it fit: walk the log oldest first, 64 entries at a time, until enough tokens have left
    local need, freed, at, from = tok_used + tokens - tpm, 0, now, 0
    while freed < need do
      local part = redis.call('ZRANGE', KEYS[2], from, from + 63, 'WITHSCORES')
      if #part == 0 then break end
      local names = {}
      for i = 1, #part, 2 do names[#names + 1] = part[i] end
      local w = redis.call('HMGET', KEYS[3], unpack(names))
      for i = 1, #w do
        freed = freed + (tonumber(w[i]) or 0)
        at = tonumber(part[2 * i])
        if freed >= need then break end
      end
      from = from + 64
    end
    return reject('tokens', at + window - now)
  end
end

local handle = tostring(redis.call('INCR', KEYS[7]))
local keep = math.max(window, lease) + window
if rpm > 0 then
  redis.call('ZADD', KEYS[1], ARGV[1], handle)
  req_used = req_used + 1
  redis.call('PEXPIRE', KEYS[1], ARGV[7])
end
if tpm > 0 then
  redis.call('ZADD', KEYS[2], ARGV[1], handle)
  redis.call('HSET', KEYS[3], handle, ARGV[2])
  tok_used = redis.call('HINCRBY', KEYS[3], '_sum', ARGV[2])
  redis.call('PEXPIRE', KEYS[2], ARGV[7])
  redis.call('PEXPIRE', KEYS[3], ARGV[7])
end
if tpd > 0 then  -- no day counter for a consumer without a daily budget
  day_used = redis.call('INCRBY', KEYS[4], ARGV[2])
  redis.call('PEXPIRE', KEYS[4], day_left + 86400000)
end
redis.call('ZADD', KEYS[5], now + lease, handle)
redis.call('HSET', KEYS[6], handle, ARGV[2])
inflight = inflight + 1
redis.call('PEXPIRE', KEYS[5], ARGV[8])
redis.call('PEXPIRE', KEYS[6], ARGV[8])
redis.call('PEXPIRE', KEYS[7], keep)
return {1, 'ok', handle, 0, req_used, reset_of(1), tok_used, reset_of(2), day_used, inflight}
