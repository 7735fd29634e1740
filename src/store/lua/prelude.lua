-- Prepended to every floodgate script (Redis scripts cannot share code):
-- the clock, and the GCRA step that gcra.lua and rls.lua share.
-- Time comes from the caller when given (tests, scenario tables) and from
-- Redis TIME otherwise, so that replicas' clocks don't matter.
local function now_us(given)
  if given ~= '' then return tonumber(given) end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local function now_ms(given)
  if given ~= '' then return tonumber(given) end
  return math.floor(now_us('') / 1000)
end
-- One GCRA step, the one gcra.lua and rls.lua both take (reference:
-- src/core/gcra.rs `check_spacing`). `tat` is the key's arrival time (nil
-- when it has none); `now`, the emission `interval` and the `tolerance`
-- (interval × burst) are in µs. Answers true and the new arrival time, or
-- false and how long to wait (µs).
local function gcra_step(tat, now, interval, tolerance, cost)
  if not tat or tat < now then tat = now end
  local new_tat = tat + interval * cost
  local allow_until = now + tolerance
  if new_tat <= allow_until then return true, new_tat end
  return false, new_tat - allow_until
end
-- A key's stored arrival time, nil when it has none (GET answers false).
local function stored_tat(key)
  local tat = redis.call('GET', key)
  if tat then return tonumber(tat) end
  return nil
end
-- Writes a key's new arrival time, expiring when idle. Kept one second past
-- idleness: harmless (an idle key holds no state) and robust to a caller
-- clock that runs behind Redis's.
local function store_tat(key, tat, now)
  redis.call('SET', key, string.format('%d', tat), 'PX', math.floor((tat - now) / 1000) + 1000)
end
