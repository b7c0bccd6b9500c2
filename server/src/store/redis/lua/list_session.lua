-- How long an account's session list outlives `now` when its last session expires at
-- `expires_at` (unix seconds): a minute past it, as a string for EXPIRE.
local function list_ttl(expires_at, now)
  return string.format('%d', math.max(tonumber(expires_at) - tonumber(now), 1) + 60)
end

-- Adds a session to its account's list (see sessions.rs), drops the expired ones, and keeps
-- the list alive a minute past its last session. `expires_at` and `now` are unix seconds,
-- `hash` the session's token hash in hex.
local function list_session(list, expires_at, hash, now)
  redis.call('ZADD', list, expires_at, hash)
  redis.call('ZREMRANGEBYSCORE', list, '-inf', now)
  local last = redis.call('ZRANGE', list, -1, -1, 'WITHSCORES')
  if last[2] then
    redis.call('EXPIRE', list, list_ttl(last[2], now))
  end
end

-- The first session of a new account: its list is new, with nothing to drop or outlast.
local function list_first_session(list, expires_at, hash, now)
  redis.call('ZADD', list, expires_at, hash)
  redis.call('EXPIRE', list, list_ttl(expires_at, now))
end
