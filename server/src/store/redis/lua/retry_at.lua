-- The outbox entry ARGV[3] has had ARGV[4] attempts and is due again at ARGV[5] (unix ms),
-- if it is still there: a retry never brings back an entry another instance removed.
if redis.call('HEXISTS', KEYS[3], ARGV[3]) == 1 then
  redis.call('HSET', KEYS[6], ARGV[3], ARGV[4])
  redis.call('ZADD', KEYS[4], ARGV[5], ARGV[3])
end
return 0
