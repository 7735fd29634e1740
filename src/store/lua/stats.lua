-- Queue depths and each class's oldest waiting task in one round trip (read only).
-- KEYS[1..3] ready queues   KEYS[4] lease expiry zset   KEYS[5] dead-letter list
-- KEYS[6] task meta hash (`user_type|enqueued_at_ms|deliveries|seq`)
-- Reply: {anonymous, registered, privileged, leased, dead_letters,
--         then per queue the enqueue time of the task at its head (the next
--         leased, the longest waiting), -1 when the queue is empty}
local reply = {redis.call('LLEN', KEYS[1]), redis.call('LLEN', KEYS[2]), redis.call('LLEN', KEYS[3]),
  redis.call('ZCARD', KEYS[4]), redis.call('LLEN', KEYS[5])}
for i = 1, 3 do
  local head = redis.call('LINDEX', KEYS[i], 0)
  local meta = head and redis.call('HGET', KEYS[6], head)
  local enqueued_at = meta and string.match(meta, '^%d+|(%d+)|')
  reply[5 + i] = enqueued_at and tonumber(enqueued_at) or -1
end
return reply
