-- Extend a held lease to now + ARGV[3].
-- Mirrors src/core/lease.rs `is_held_by` (the lease must still be held)
-- and `expires_at` (the new expiry).
-- KEYS[1] leases hash (`lease_id|expires_at_ms|holder`)   KEYS[2] lease expiry zset
-- ARGV[1] task id   ARGV[2] lease id   ARGV[3] lease ms   ARGV[4] now ms ('' = Redis TIME)
-- Reply: the new expiry in ms, or -1 when the lease is not held.
local now = now_ms(ARGV[4])
local held = redis.call('HGET', KEYS[1], ARGV[1])
if not held then return -1 end
-- The holder after the expiry stays as it is.
local lease_id, expires_at, holder = string.match(held, '^([^|]*)|(%d+)(.*)$')
if lease_id ~= ARGV[2] or tonumber(expires_at) <= now then return -1 end
local new_expiry = now + tonumber(ARGV[3])
redis.call('HSET', KEYS[1], ARGV[1], lease_id .. '|' .. string.format('%d', new_expiry) .. holder)
redis.call('ZADD', KEYS[2], new_expiry, ARGV[1])
return new_expiry
