-- Erases an account from the accounts slot: its identities, its number, its row; records
-- `account.deleted`. What lives in other slots (key histories, sessions) is the caller's.
--   ARGV[3] user_id, ARGV[4..6] the event's entry: id, JSON, due ms
-- Answers [] when there is no such account, else [dropped outbox entries, identities...].
local user_id = ARGV[3]
if redis.call('EXISTS', account_key(user_id)) == 0 then
  return {}
end
local identities = redis.call('SMEMBERS', ids_key(user_id))
for _, identity in ipairs(identities) do
  if redis.call('HGET', KEYS[1], identity) == user_id then
    redis.call('HDEL', KEYS[1], identity)
  end
end
release_phone(user_id)
redis.call('DEL', account_key(user_id), ids_key(user_id))
local answer = { tostring(record(ARGV[4], ARGV[5], ARGV[6])) }
for _, identity in ipairs(identities) do
  answer[#answer + 1] = identity
end
return answer
