--[[ claim.lua: claim an idempotency key for a request, or say what holds it. Atomic.

KEYS[1] the key's record  HASH  state (running | done), fp (the request's fingerprint), status, stream, body
ARGV[1] fingerprint   ARGV[2] claim ttl ms (the request's deadline plus a margin)

Returns {'new'} (claimed: run the request), {'mismatch'} (another request body holds the key),
{'running', pttl} (the first request is still running), or {'done', status, stream, body}.
]]
local state = redis.call('HGET', KEYS[1], 'state')
if not state then
  redis.call('HSET', KEYS[1], 'state', 'running', 'fp', ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {'new'}
end
if redis.call('HGET', KEYS[1], 'fp') ~= ARGV[1] then return {'mismatch'} end
if state == 'running' then return {'running', redis.call('PTTL', KEYS[1])} end
local r = redis.call('HMGET', KEYS[1], 'status', 'stream', 'body')
return {'done', r[1], r[2], r[3]}
