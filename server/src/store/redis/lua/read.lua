-- Reads accounts, each as one array: its owner (the user_id, '' for none), then, when that
-- account exists, `created_at`, `disabled`, `v`, `phone` ('' for none) and its identities.
--   ARGV[3] 'id' when ARGV[4..] are identities (as the id hash names them), 'user' when
--           they are user_ids.
local found = {}
for i = 4, #ARGV do
  local owner = ARGV[i]
  if ARGV[3] == 'id' then
    owner = redis.call('HGET', KEYS[1], ARGV[i]) or ''
  end
  local item = { owner }
  if owner ~= '' then
    local a = redis.call('HMGET', account_key(owner), 'created_at', 'disabled', 'v', 'phone')
    if a[1] then
      item[2] = a[1]
      item[3] = a[2] or '0'
      item[4] = a[3] or ''
      item[5] = a[4] or ''
      for _, identity in ipairs(redis.call('SMEMBERS', ids_key(owner))) do
        item[#item + 1] = identity
      end
    end
  end
  found[#found + 1] = item
end
return found
