-- Adds a session to its account's list (see sessions.rs), drops the expired ones, and keeps
-- the list alive a minute past its last session. `expires_at` and `now` are unix seconds,
-- `hash` the session's token hash in hex.
local function list_session(list, expires_at, hash, now)
  redis.call('ZADD', list, expires_at, hash)
  redis.call('ZREMRANGEBYSCORE', list, '-inf', now)
  local last = redis.call('ZRANGE', list, -1, -1, 'WITHSCORES')
  if last[2] then
    local ttl = math.max(tonumber(last[2]) - tonumber(now), 1) + 60
    redis.call('EXPIRE', list, string.format('%d', ttl))
  end
end
