-- Read process records, dropping those silent for expire_after.
-- Mirrors src/core/health.rs `is_expired` (silent for >= expire_after).
-- KEYS[1] process hash   ARGV[1] expire after ms   ARGV[2] now ms ('' = Redis TIME)
-- Reply: {now, record, record, ...}, each record "stamp|json".
local now = now_ms(ARGV[2])
local reply = {now}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local stamp = tonumber(string.match(all[i + 1], '^(%d+)|'))
  if stamp == nil or now - stamp >= tonumber(ARGV[1]) then
    redis.call('HDEL', KEYS[1], all[i])
  else
    table.insert(reply, all[i + 1])
  end
end
return reply
