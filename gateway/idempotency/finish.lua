--[[ finish.lua: record the answer of a claimed key (ARGV[2] ~= '') or release the claim (ARGV[2] == ''), only
if this request still holds it.

KEYS[1] the key's record (see claim.lua)
ARGV[1] fingerprint   ARGV[2] status ('' = release)   ARGV[3] stream 0|1   ARGV[4] body   ARGV[5] ttl ms

Returns 1 when applied, 0 when the claim was gone (expired) or held by another request.
]]
if redis.call('HGET', KEYS[1], 'state') ~= 'running' or redis.call('HGET', KEYS[1], 'fp') ~= ARGV[1] then
  return 0
end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
  return 1
end
redis.call('HSET', KEYS[1], 'state', 'done', 'status', ARGV[2], 'stream', ARGV[3], 'body', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
