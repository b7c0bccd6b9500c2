-- Applies a resolution planned from what read.lua answered, if nothing it read has changed
-- since: otherwise changes nothing and answers -1, and the caller reads and plans again.
--   ARGV[3] the plan, JSON:
--     owners   [[identity, user_id or '']]  who each identity of the login belonged to
--     versions [[user_id, v]]               the `v` of each account the plan read
--     steps    [['create', user_id, created_at]
--              | ['link', user_id, identity]
--              | ['merge', survivor, merged_away, phone JSON or '', number or '', '0' | '1']]
--     events   [[id, entry JSON, due ms]]
-- Answers how many outbox entries were dropped to make room.
local plan = cjson.decode(ARGV[3])
for _, owner in ipairs(plan.owners) do
  if (redis.call('HGET', KEYS[1], owner[1]) or '') ~= owner[2] then
    return -1
  end
end
for _, version in ipairs(plan.versions) do
  if (redis.call('HGET', account_key(version[1]), 'v') or '') ~= version[2] then
    return -1
  end
end
for _, step in ipairs(plan.steps) do
  if step[1] == 'create' then
    create_account(step[2], step[3])
  elseif step[1] == 'link' then
    link(step[2], step[3])
  elseif step[1] == 'merge' then
    local kept, gone = step[2], step[3]
    for _, identity in ipairs(redis.call('SMEMBERS', ids_key(gone))) do
      redis.call('HSET', KEYS[1], identity, kept)
      redis.call('SADD', ids_key(kept), identity)
    end
    -- The merged-away account goes first, and with it its hold on its number.
    release_phone(gone)
    redis.call('DEL', ids_key(gone), account_key(gone))
    if step[5] ~= '' then
      take_phone(kept, step[4], step[5])
    else
      release_phone(kept)
    end
    redis.call('HSET', account_key(kept), 'disabled', step[6])
    redis.call('HINCRBY', account_key(kept), 'v', 1)
  else
    return redis.error_reply('unknown step ' .. tostring(step[1]))
  end
end
local dropped = 0
for _, event in ipairs(plan.events) do
  dropped = dropped + record(event[1], event[2], event[3])
end
return dropped
