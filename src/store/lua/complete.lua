-- Complete tasks whose leases are held (right lease id, not expired), for
-- the requests that arrived together, each decided as if alone.
-- Mirrors src/core/lease.rs `is_held_by` (right lease id and expiry > now).
-- KEYS[1] leases hash (`lease_id|expires_at_ms|holder`)   KEYS[2] lease expiry zset   KEYS[3] task meta hash   KEYS[4] task payload hash
-- ARGV[1] now ms ('' = Redis TIME); then per request: task id, lease id
-- Reply: per request 1 completed, 0 not held.
local now = now_ms(ARGV[1])
local reply = {}
for a = 2, #ARGV, 2 do
  local id = ARGV[a]
  local held = redis.call('HGET', KEYS[1], id)
  local done = 0
  if held then
    local lease_id, expires_at = string.match(held, '^([^|]*)|(%d+)')
    if lease_id == ARGV[a + 1] and tonumber(expires_at) > now then
      redis.call('HDEL', KEYS[1], id)
      redis.call('ZREM', KEYS[2], id)
      redis.call('HDEL', KEYS[3], id)
      redis.call('HDEL', KEYS[4], id)
      done = 1
    end
  end
  reply[#reply + 1] = done
end
return reply
