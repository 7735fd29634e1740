-- One GCRA step (reference: src/core/gcra.rs `check`). Times in µs.
-- KEYS[1] the subject's arrival-time key
-- ARGV[1] emission interval µs   ARGV[2] tolerance µs (interval × burst)   ARGV[3] cost
-- ARGV[4] now µs ('' = Redis TIME)
-- Reply: {1, new_tat} allowed (key written, expiring when idle) or {0, retry_after_us}.
local now = now_us(ARGV[4])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new_tat = tat + tonumber(ARGV[1]) * tonumber(ARGV[3])
local allow_until = now + tonumber(ARGV[2])
if new_tat <= allow_until then
  redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.floor((new_tat - now) / 1000) + 1)
  return {1, new_tat}
end
return {0, new_tat - allow_until}
