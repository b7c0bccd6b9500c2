-- Leases up to ARGV[5] entries due at ARGV[3] (unix ms) until ARGV[4]: they are due again
-- then, unless settled. Answers [id, JSON, attempts] for each, flattened.
local due = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', ARGV[3], 'LIMIT', 0, ARGV[5])
local taken = {}
for _, id in ipairs(due) do
  local body = redis.call('HGET', KEYS[3], id)
  if body then
    redis.call('ZADD', KEYS[4], ARGV[4], id)
    taken[#taken + 1] = id
    taken[#taken + 1] = body
    taken[#taken + 1] = redis.call('HGET', KEYS[6], id) or '0'
  else
    redis.call('ZREM', KEYS[4], id)
  end
end
return taken
