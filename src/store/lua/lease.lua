-- Requeue expired leases at the head of their queue (or dead-letter them
-- after max deliveries), then, for each request that arrived together, in
-- order, lease up to its max tasks, privileged first, FIFO within a class.
-- Mirrors src/core/lease.rs: `is_held` (the sweep takes expiry <= now),
-- `on_expiry`, `requeue_order`, `LEASE_ORDER` (queue 3 down to 1) and
-- `expires_at`; the memory store calls those functions.
-- A request for 0 tasks only does the requeueing.
-- KEYS[1..3] ready queues (anonymous, registered, privileged)   KEYS[4] lease expiry zset
-- KEYS[5] task meta hash   KEYS[6] task payload hash   KEYS[8] dead-letter list
-- KEYS[7] leases hash: task id -> `lease_id|expires_at_ms|holder JSON`
-- ARGV[1] max deliveries   ARGV[2] lease-id nonce   ARGV[3] now ms ('' = Redis TIME)
-- ARGV[4] dead letters kept (the list is trimmed to it)
-- then per request, from ARGV[5 + 3(i-1)]: max tasks, lease ms, holder JSON
--   ({"instance_id":…,"process_id":…}, encoded by the caller)
-- A dead letter names the holder of the lease that expired last
-- ("last_holder", null for a lease stored before holders were).
-- Reply: {now, then per request: n, then 7 entries per leased task: task_id,
--         lease_id, payload, user_type, enqueued_at_ms, delivery_count, lease_expires_at_ms}
local now = now_ms(ARGV[3])
local function parse(meta)
  local a, b, c, d = string.match(meta, '^(%d+)|(%d+)|(%d+)|(%d+)$')
  return tonumber(a), tonumber(b), tonumber(c), tonumber(d)
end
local max_deliveries = tonumber(ARGV[1])
local back = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now)) do
  redis.call('ZREM', KEYS[4], id)
  local held = redis.call('HGET', KEYS[7], id)
  redis.call('HDEL', KEYS[7], id)
  local meta = redis.call('HGET', KEYS[5], id)
  if meta then
    local user_type, enqueued_at, deliveries, seq = parse(meta)
    if deliveries >= max_deliveries then
      local holder = held and string.match(held, '^[^|]*|%d+|(.+)$') or 'null'
      redis.call('LPUSH', KEYS[8], string.format(
        '{"task_id":"%s","user_type":%d,"enqueued_at_ms":%d,"delivery_count":%d,"dead_at_ms":%d,"last_holder":%s}',
        id, user_type, enqueued_at, deliveries, now, holder))
      redis.call('LTRIM', KEYS[8], 0, tonumber(ARGV[4]) - 1)
      redis.call('HDEL', KEYS[5], id)
      redis.call('HDEL', KEYS[6], id)
    else
      table.insert(back, {id, user_type, seq})
    end
  end
end
-- Newest first, so that pushing each to the head leaves FIFO order.
table.sort(back, function(x, y) return x[3] > y[3] end)
for _, task in ipairs(back) do
  redis.call('LPUSH', KEYS[task[2] + 1], task[1])
end

local reply = {now}
for a = 5, #ARGV, 3 do
  local wanted = tonumber(ARGV[a])
  local expires_at = now + tonumber(ARGV[a + 1])
  local holder = ARGV[a + 2]
  local count_at = #reply + 1
  reply[count_at] = 0
  for queue = 3, 1, -1 do
    while wanted > 0 do
      local id = redis.call('LPOP', KEYS[queue])
      if not id then break end
      local meta = redis.call('HGET', KEYS[5], id)
      if meta then
        local user_type, enqueued_at, deliveries, seq = parse(meta)
        deliveries = deliveries + 1
        redis.call('HSET', KEYS[5], id, string.format('%d|%d|%d|%d', user_type, enqueued_at, deliveries, seq))
        local lease_id = ARGV[2] .. '-' .. deliveries .. '-' .. id
        redis.call('HSET', KEYS[7], id, lease_id .. '|' .. string.format('%d', expires_at) .. '|' .. holder)
        redis.call('ZADD', KEYS[4], expires_at, id)
        local payload = redis.call('HGET', KEYS[6], id) or ''
        local n = #reply
        reply[n + 1], reply[n + 2], reply[n + 3], reply[n + 4] = id, lease_id, payload, user_type
        reply[n + 5], reply[n + 6], reply[n + 7] = enqueued_at, deliveries, expires_at
        reply[count_at] = reply[count_at] + 1
        wanted = wanted - 1
      end
    end
  end
end
return reply
