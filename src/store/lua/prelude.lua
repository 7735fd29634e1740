-- Prepended to every floodgate script (Redis scripts cannot share code).
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
