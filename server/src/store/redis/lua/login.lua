-- A whole login in one step, on a single Redis (see logins.rs): the account found or made,
-- and for a person let in, their session stored and listed, the session_key added to their
-- key history and the code's claim settled. Only the two common resolutions are decided
-- here: a person known in this app whose unionid (if any) is their own, and a person nobody
-- knows. Any other answers 'planned' having changed nothing, and the caller resolves with
-- Rust's rules (`plan_resolution`), as `resolve.lua` applies them.
--   KEYS[7] the session, KEYS[8] the key history, KEYS[9] the claim
--   ARGV[3] the login's mini-program identity, ARGV[4] its union identity or ''
--   ARGV[5] the user_id of a new account ('' when none may be made), ARGV[6] its created_at,
--   ARGV[7..9] the outbox entry of its creation: id, JSON, due (unix ms)
--   ARGV[10] what the account's session list is named by, before its user_id
--   ARGV[11] the session's JSON after its user_id, ARGV[12] its TTL (s), ARGV[13] its
--            expires_at, ARGV[14] its token hash (hex), ARGV[15] now (unix seconds)
--   ARGV[16] the sealed session_key, ARGV[17] how many keys the history keeps, ARGV[18] its
--            TTL (s)
--   ARGV[19] the claim's settled value, ARGV[20] how long it is kept (ms)
-- Answers { 'created' | 'existing' | 'none' | 'planned', user_id, disabled '0' | '1', dropped }:
-- 'none' when nobody has the identities and no account may be made.
local mine = redis.call('HGET', KEYS[1], ARGV[3])
local theirs = false
if ARGV[4] ~= '' then
  theirs = redis.call('HGET', KEYS[1], ARGV[4])
end

local kind, user_id, dropped = nil, nil, 0
if mine and (ARGV[4] == '' or theirs == mine) then
  local disabled = redis.call('HGET', account_key(mine), 'disabled')
  if not disabled then
    -- An identity whose account is gone: Rust's rules decide.
    return { 'planned', '', '0', 0 }
  end
  if disabled == '1' then
    return { 'existing', mine, '1', 0 }
  end
  kind, user_id = 'existing', mine
elseif not mine and not theirs then
  if ARGV[5] == '' then
    return { 'none', '', '0', 0 }
  end
  user_id = ARGV[5]
  local identities = { ARGV[3] }
  if ARGV[4] ~= '' then
    identities[2] = ARGV[4]
  end
  create_linked_account(user_id, ARGV[6], identities)
  dropped = record(ARGV[7], ARGV[8], ARGV[9])
  kind = 'created'
else
  return { 'planned', '', '0', 0 }
end

if kind == 'created' then
  list_first_session(ARGV[10] .. user_id .. ':sessions', ARGV[13], ARGV[14], ARGV[15])
else
  list_session(ARGV[10] .. user_id .. ':sessions', ARGV[13], ARGV[14], ARGV[15])
end
redis.call('SET', KEYS[7], '{"user_id":"' .. user_id .. '"' .. ARGV[11], 'EX', ARGV[12])
redis.call('LREM', KEYS[8], 0, ARGV[16])
redis.call('LPUSH', KEYS[8], ARGV[16])
redis.call('LTRIM', KEYS[8], 0, tonumber(ARGV[17]) - 1)
redis.call('EXPIRE', KEYS[8], ARGV[18])
redis.call('SET', KEYS[9], ARGV[19], 'PX', ARGV[20])
return { kind, user_id, '0', dropped }
