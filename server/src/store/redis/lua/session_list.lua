-- Adds a session to its account's list (see sessions.rs), drops the expired ones, and keeps
-- the list alive a minute past its last session.
--   KEYS[1] the list; ARGV[1] the session's expires_at, ARGV[2] its token hash (hex),
--   ARGV[3] now (unix seconds)
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if last[2] then
  local ttl = math.max(tonumber(last[2]) - tonumber(ARGV[3]), 1) + 60
  redis.call('EXPIRE', KEYS[1], string.format('%d', ttl))
end
return 0
