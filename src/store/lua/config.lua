-- Store a new runtime config version, keeping the previous one for rollback.
-- KEYS[1] version counter   KEYS[2] current config   KEYS[3] previous config
-- ARGV[1] the runtime config as JSON
-- Reply: the new version.
local version = redis.call('INCR', KEYS[1])
local current = redis.call('GET', KEYS[2])
if current then redis.call('SET', KEYS[3], current) end
redis.call('SET', KEYS[2], string.format('%d', version) .. '|' .. ARGV[1])
return version
