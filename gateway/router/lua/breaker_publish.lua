-- Publish a breaker state unless a newer one is already stored (last writer by changed_at wins).
-- KEYS[1]  hash: state (closed|open), open_until (epoch s), changed_at (epoch s), origin
-- ARGV[1]  state          ARGV[2]  open_until (epoch s)   ARGV[3]  changed_at (epoch s)
-- ARGV[4]  ttl (ms)       ARGV[5]  origin (replica id)
-- Returns 1 when stored, 0 when a newer state was already there.
local stored = redis.call('HGET', KEYS[1], 'changed_at')
if stored and tonumber(stored) >= tonumber(ARGV[3]) then
  return 0
end
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'open_until', ARGV[2], 'changed_at', ARGV[3], 'origin', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
