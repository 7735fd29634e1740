-- Upsert a process record stamped with the receive time.
-- KEYS[1] process hash   ARGV[1] field (instance \31 process)   ARGV[2] record JSON
-- ARGV[3] now ms ('' = Redis TIME, so replicas' clocks don't matter)
-- Reply: the stamp.
local now = now_ms(ARGV[3])
redis.call('HSET', KEYS[1], ARGV[1], string.format('%d', now) .. '|' .. ARGV[2])
return now
