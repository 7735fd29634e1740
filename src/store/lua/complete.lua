-- Complete a task whose lease is held (right lease id, not expired).
-- KEYS[1] leases hash   KEYS[2] lease expiry zset   KEYS[3] task meta hash   KEYS[4] task payload hash
-- ARGV[1] task id   ARGV[2] lease id   ARGV[3] now ms ('' = Redis TIME)
-- Reply: 1 completed, 0 not held.
local now = now_ms(ARGV[3])
local held = redis.call('HGET', KEYS[1], ARGV[1])
if not held then return 0 end
local lease_id, expires_at = string.match(held, '^(.*)|(%d+)$')
if lease_id ~= ARGV[2] or tonumber(expires_at) <= now then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[1])
return 1
