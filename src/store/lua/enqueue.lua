-- Atomic check-and-enqueue (Level 2) for the requests that arrived together,
-- decided in order, each as if alone: admit only while load < its limit.
-- Mirrors src/core/admission.rs `admits` (load < limit).
-- KEYS[1..3] ready queues (anonymous, registered, privileged)
-- KEYS[4] lease expiry zset   KEYS[5] task meta hash   KEYS[6] task payload hash
-- KEYS[7] enqueue sequence    KEYS[7+i] request i's idempotency key (read only when its ttl ~= '')
-- ARGV[1] now ms ('' = Redis TIME); then per request i, from ARGV[2 + 5(i-1)]:
--   user type index 0..2, limit, new task id, payload, idempotency ttl ms ('' = no key)
-- Reply: per request {status, task_id, queue_position, load}, flattened:
--   1 admitted, 2 duplicate (the first answer; nothing enqueued), 0 refused.
local current = redis.call('LLEN', KEYS[1]) + redis.call('LLEN', KEYS[2]) + redis.call('LLEN', KEYS[3])
  + redis.call('ZCARD', KEYS[4])
local now = nil
-- Sequence numbers are reserved once per call, for every request that may
-- still be admitted (refusals leave harmless gaps), so nothing needs
-- writing back at the end.
local seq = nil
local reply = {}
local n = 0
local function answer(status, id, position)
  reply[n + 1], reply[n + 2], reply[n + 3], reply[n + 4] = status, id, position, current
  n = n + 4
end
local requests = (#ARGV - 1) / 5
for i = 1, requests do
  local a = 2 + 5 * (i - 1)
  local ttl = ARGV[a + 4]
  local first = ttl ~= '' and redis.call('GET', KEYS[7 + i])
  if first then
    local sep = string.find(first, '|', 1, true)
    answer(2, string.sub(first, 1, sep - 1), tonumber(string.sub(first, sep + 1)))
  elseif current >= tonumber(ARGV[a + 1]) then
    answer(0, '', 0)
  else
    now = now or now_ms(ARGV[1])
    if not seq then
      local left = requests - i + 1
      seq = redis.call('INCRBY', KEYS[7], left) - left
    end
    seq = seq + 1
    local id = ARGV[a + 2]
    local user_type = tonumber(ARGV[a])
    if redis.call('HSETNX', KEYS[5], id, string.format('%d|%d|0|%d', user_type, now, seq)) == 0 then
      -- This very call ran before (a client resent it, e.g. a Cluster
      -- retry after a dropped connection): its task ids are fresh per call,
      -- so the task is already in; answer as the first run did.
      local position = redis.call('LPOS', KEYS[user_type + 1], id)
      answer(1, id, position and position + 1 or 0)
    else
      redis.call('HSET', KEYS[6], id, ARGV[a + 3])
      local position = redis.call('RPUSH', KEYS[user_type + 1], id)
      if ttl ~= '' then
        redis.call('SET', KEYS[7 + i], id .. '|' .. position, 'PX', ttl)
      end
      current = current + 1
      answer(1, id, position)
    end
  end
end
return reply
