-- GCRA steps for a batch of requests, in order: each is the prelude's
-- `gcra_step` (reference: src/core/gcra.rs `check`). Level 1 calls arriving
-- together share one EVALSHA; a key that appears twice sees its earlier
-- step. Times in µs.
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
  local allowed, n = gcra_step(stored_tat(key), now, tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]))
  if allowed then
    store_tat(key, n, now)
    reply[2 * i - 1] = 1
  else
    reply[2 * i - 1] = 0
  end
  reply[2 * i] = n
end
return reply
