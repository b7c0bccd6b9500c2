-- A web-login ticket, made once: KEYS[1] the ticket; ARGV[1] its record, ARGV[2] its life in ms.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'v', '1', 'r', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
