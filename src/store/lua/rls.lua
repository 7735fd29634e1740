-- Envoy rate-limit requests: every GCRA check of a request decided
-- together, all or nothing (reference: src/core/rls/plan.rs `decide_all`;
-- each step is the prelude's `gcra_step`, src/core/gcra.rs `check_spacing`).
-- Times in µs. Several requests may share one call; each is decided in
-- turn, seeing the writes of those before.
-- KEYS     the arrival-time key of each check, in order: Envoy descriptor
--          counters, and a user type's Level 1 key (the one gcra.lua uses)
-- ARGV     per request: now µs ('' = Redis TIME), dry run ('1' = write
--          nothing), number of checks n, then per check: emission interval
--          µs, tolerance µs (interval × burst), cost, enforce ('1' = a
--          refusal refuses the request; '0' = shadow mode)
-- Reply    per request: now, then per check 1, new arrival time (allowed)
--          or 0, retry_after µs (limited); flattened.
-- A request's new arrival times are written (expiring when idle) only when
-- no enforcing check is limited and it is not a dry run; checks sharing a
-- key see the earlier checks' new times.
local reply = {}
local a, k = 1, 1
-- One Redis TIME for the whole call: its requests arrived together.
local server_now = nil
while a <= #ARGV do
  local now
  if ARGV[a] ~= '' then
    now = tonumber(ARGV[a])
  else
    server_now = server_now or now_us('')
    now = server_now
  end
  local refused = ARGV[a + 1] == '1'
  local n = tonumber(ARGV[a + 2])
  a = a + 3
  reply[#reply + 1] = now
  local pending = {}
  for _ = 1, n do
    local key = KEYS[k]
    local tat = pending[key] or stored_tat(key)
    local allowed, n = gcra_step(tat, now, tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]))
    if allowed then
      pending[key] = n
      reply[#reply + 1] = 1
    else
      if ARGV[a + 3] == '1' then refused = true end
      reply[#reply + 1] = 0
    end
    reply[#reply + 1] = n
    a = a + 4
    k = k + 1
  end
  if not refused then
    for key, tat in pairs(pending) do
      store_tat(key, tat, now)
    end
  end
end
return reply
