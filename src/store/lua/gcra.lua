-- GCRA steps for a batch of requests, in order (reference: src/core/gcra.rs
-- `check`). Level 1 calls arriving together share one EVALSHA; a key that
-- appears twice sees its earlier step. Times in µs.
-- KEYS[i]  the arrival-time key of request i
-- ARGV[4i-3] emission interval µs   ARGV[4i-2] tolerance µs (interval × burst)
-- ARGV[4i-1] cost                    ARGV[4i]   now µs ('' = Redis TIME)
-- Reply: {allowed_1, n_1, allowed_2, n_2, ...}: allowed 1 with the new
-- arrival time (key written, expiring when idle), or 0 with retry_after µs.
local reply = {}
local server_now = nil
for i, key in ipairs(KEYS) do
  local a = 4 * i - 3
  local now
  if ARGV[a + 3] ~= '' then
    now = tonumber(ARGV[a + 3])
  else
    server_now = server_now or now_us('')
    now = server_now
  end
  local tat = tonumber(redis.call('GET', key) or '0')
  if tat < now then tat = now end
  local new_tat = tat + tonumber(ARGV[a]) * tonumber(ARGV[a + 2])
  local allow_until = now + tonumber(ARGV[a + 1])
  if new_tat <= allow_until then
    -- Kept one second past idleness: harmless (an idle key holds no
    -- state) and robust to a caller clock that runs behind Redis's.
    redis.call('SET', key, string.format('%d', new_tat), 'PX', math.floor((new_tat - now) / 1000) + 1000)
    reply[2 * i - 1] = 1
    reply[2 * i] = new_tat
  else
    reply[2 * i - 1] = 0
    reply[2 * i] = new_tat - allow_until
  end
end
return reply
