-- Binds a number to an account unless another account holds it.
--   ARGV[3] user_id, ARGV[4] the phone, JSON, ARGV[5] its number
-- Answers 'bound', 'in_use' or 'no_account'.
local user_id = ARGV[3]
if redis.call('EXISTS', account_key(user_id)) == 0 then
  return 'no_account'
end
local holder = redis.call('HGET', KEYS[2], ARGV[5])
if holder and holder ~= user_id then
  return 'in_use'
end
take_phone(user_id, ARGV[4], ARGV[5])
redis.call('HINCRBY', account_key(user_id), 'v', 1)
return 'bound'
