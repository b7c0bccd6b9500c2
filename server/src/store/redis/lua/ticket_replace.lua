-- A web-login ticket's new record, only from the version its writer read, then the news to
-- every instance. KEYS[1] the ticket; ARGV[1] the version read, ARGV[2] the new record,
-- ARGV[3] the channel, ARGV[4] the ticket's id.
if redis.call('HGET', KEYS[1], 'v') ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], 'v', tostring(tonumber(ARGV[1]) + 1), 'r', ARGV[2])
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
