-- Disables or enables an account, recording the event only on a change.
--   ARGV[3] user_id, ARGV[4] '1' to disable, '0' to enable, ARGV[5..7] the event's entry:
--   id, JSON, due ms
-- Answers -1 when there is no such account, else how many outbox entries were dropped.
local key = account_key(ARGV[3])
if redis.call('EXISTS', key) == 0 then
  return -1
end
if (redis.call('HGET', key, 'disabled') or '0') == ARGV[4] then
  return 0
end
redis.call('HSET', key, 'disabled', ARGV[4])
redis.call('HINCRBY', key, 'v', 1)
return record(ARGV[5], ARGV[6], ARGV[7])
