-- Atomic check-and-enqueue (Level 2): admit only while load < limit.
-- KEYS[1..3] ready queues (anonymous, registered, privileged)
-- KEYS[4] lease expiry zset   KEYS[5] task meta hash   KEYS[6] task payload hash
-- KEYS[7] enqueue sequence    KEYS[8] idempotency key (read only when ARGV[5] ~= '')
-- ARGV[1] user type index 0..2   ARGV[2] limit   ARGV[3] new task id   ARGV[4] payload
-- ARGV[5] idempotency ttl ms ('' = no key)   ARGV[6] now ms ('' = Redis TIME)
-- Reply: {status, task_id, queue_position, load}: 1 admitted, 2 duplicate, 0 refused.
local function load()
  return redis.call('LLEN', KEYS[1]) + redis.call('LLEN', KEYS[2]) + redis.call('LLEN', KEYS[3])
    + redis.call('ZCARD', KEYS[4])
end
if ARGV[5] ~= '' then
  local first = redis.call('GET', KEYS[8])
  if first then
    local sep = string.find(first, '|', 1, true)
    return {2, string.sub(first, 1, sep - 1), tonumber(string.sub(first, sep + 1)), load()}
  end
end
local current = load()
if current >= tonumber(ARGV[2]) then
  return {0, '', 0, current}
end
local now = now_ms(ARGV[6])
local seq = redis.call('INCR', KEYS[7])
local id = ARGV[3]
local user_type = tonumber(ARGV[1])
redis.call('HSET', KEYS[5], id, string.format('%d|%d|0|%d', user_type, now, seq))
redis.call('HSET', KEYS[6], id, ARGV[4])
local position = redis.call('RPUSH', KEYS[user_type + 1], id)
if ARGV[5] ~= '' then
  redis.call('SET', KEYS[8], id .. '|' .. position, 'PX', ARGV[5])
end
return {1, id, position, current + 1}
