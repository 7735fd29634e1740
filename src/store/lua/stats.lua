-- Queue depths in one round trip (read only).
-- KEYS[1..3] ready queues   KEYS[4] lease expiry zset   KEYS[5] dead-letter list
-- Reply: {anonymous, registered, privileged, leased, dead_letters}
return {redis.call('LLEN', KEYS[1]), redis.call('LLEN', KEYS[2]), redis.call('LLEN', KEYS[3]),
  redis.call('ZCARD', KEYS[4]), redis.call('LLEN', KEYS[5])}
