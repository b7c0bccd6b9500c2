-- What every account script starts with (see accounts.rs). Every key is in the slot of
-- `{accounts}`: KEYS names the fixed ones, and an account's own keys are built from ARGV[1].
--   KEYS[1] id               identity -> user_id (hash)
--   KEYS[2] phone            phone number -> user_id (hash)
--   KEYS[3] outbox           entry id -> entry JSON (hash)
--   KEYS[4] outbox:due       entry ids by due time, unix ms (sorted set)
--   KEYS[5] outbox:order     entry ids, all scored 0: in id order, oldest first (sorted set)
--   KEYS[6] outbox:attempts  entry id -> attempts (hash)
--   ARGV[1] the `{prefix}wxlogin:{accounts}:` every account key starts with
--   ARGV[2] OUTBOX_CAP
-- Each script's own arguments follow, from ARGV[3].
local base = ARGV[1]
local cap = tonumber(ARGV[2])

local function account_key(user_id)
  return base .. 'a:' .. user_id
end

local function ids_key(user_id)
  return base .. 'a:' .. user_id .. ':ids'
end

-- Appends an outbox entry, due at `due`; past the cap the oldest entries go first. Returns
-- how many were dropped, for the dead-webhook counter.
local function record(id, body, due)
  -- An event this process discards comes without an id (see accounts.rs).
  if id == '' then
    return 0
  end
  local dropped = 0
  while redis.call('ZCARD', KEYS[5]) >= cap do
    local oldest = redis.call('ZPOPMIN', KEYS[5])[1]
    redis.call('HDEL', KEYS[3], oldest)
    redis.call('ZREM', KEYS[4], oldest)
    redis.call('HDEL', KEYS[6], oldest)
    dropped = dropped + 1
  end
  redis.call('HSET', KEYS[3], id, body)
  redis.call('ZADD', KEYS[4], due, id)
  redis.call('ZADD', KEYS[5], 0, id)
  return dropped
end

-- The account lets go of its number, in the index too if the index still gives it to it.
local function release_phone(user_id)
  local number = redis.call('HGET', account_key(user_id), 'phone_number')
  if number and redis.call('HGET', KEYS[2], number) == user_id then
    redis.call('HDEL', KEYS[2], number)
  end
  redis.call('HDEL', account_key(user_id), 'phone', 'phone_number')
end

-- The account holds `number` (its JSON `phone`) instead of whatever it held.
local function take_phone(user_id, phone, number)
  release_phone(user_id)
  redis.call('HSET', account_key(user_id), 'phone', phone, 'phone_number', number)
  redis.call('HSET', KEYS[2], number, user_id)
end


-- A new account, with no identity yet.
local function create_account(user_id, created_at)
  redis.call('HSET', account_key(user_id), 'created_at', created_at, 'disabled', '0', 'v', '1')
end

-- A new account holding `identities`, which nobody held: the state `create_account` and a
-- `link` of each would leave, in three calls whatever their number.
local function create_linked_account(user_id, created_at, identities)
  local v = tostring(1 + #identities)
  redis.call('HSET', account_key(user_id), 'created_at', created_at, 'disabled', '0', 'v', v)
  local owners = {}
  for _, identity in ipairs(identities) do
    owners[#owners + 1] = identity
    owners[#owners + 1] = user_id
  end
  redis.call('HSET', KEYS[1], unpack(owners))
  redis.call('SADD', ids_key(user_id), unpack(identities))
end

-- `identity` now belongs to `user_id`, taken from whoever held it.
local function link(user_id, identity)
  local was = redis.call('HGET', KEYS[1], identity)
  if was and was ~= user_id then
    redis.call('SREM', ids_key(was), identity)
  end
  redis.call('HSET', KEYS[1], identity, user_id)
  redis.call('SADD', ids_key(user_id), identity)
  redis.call('HINCRBY', account_key(user_id), 'v', 1)
end
