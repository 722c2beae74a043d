"""Lua scripts of :class:`~asyncllm.cost.RedisBudget`. Each runs atomically in Redis.

Per bucket there are three keys (one Redis Cluster slot: they share a ``{hash tag}``):

* ``H`` a hash: ``spent``, ``reserved``, ``refusals``, ``reservations`` (integer nano-USD
  or counts), ``r:<id>`` the amount each live reservation holds, ``fired:<t>`` thresholds
  already alerted, ``refused_alert`` whether the period's first refusal was alerted;
* ``W`` (rolling windows only) a sorted set of settled costs ``"<id>:<nano>"`` scored by
  time, evicted (and subtracted from ``spent``) as they leave the window;
* ``L`` a sorted set of live reservation ids scored by lease deadline. A reservation whose
  process died is never settled: when its lease runs out, its worst case becomes spent.

Amounts are integers passed as strings and formatted with ``%d`` (a Lua number handed to
``redis.call`` could otherwise be written as ``5e+12``).
"""

from __future__ import annotations

__all__ = ["PEEK", "RESERVE", "SETTLE"]

_HOUSEKEEP = """
local function I(x) return string.format('%d', x) end

local function housekeep(h, w, l, now, window)
  local expired = redis.call('ZRANGEBYSCORE', l, '-inf', now)
  for _, id in ipairs(expired) do
    local amt = tonumber(redis.call('HGET', h, 'r:' .. id) or '0')
    if amt > 0 then
      redis.call('HINCRBY', h, 'reserved', I(-amt))
      redis.call('HINCRBY', h, 'spent', I(amt))
      if window > 0 then redis.call('ZADD', w, now, id .. ':' .. I(amt)) end
    end
    redis.call('HDEL', h, 'r:' .. id)
  end
  if #expired > 0 then redis.call('ZREMRANGEBYSCORE', l, '-inf', now) end
  if window > 0 then
    local horizon = now - window
    local old = redis.call('ZRANGEBYSCORE', w, '-inf', horizon)
    if #old > 0 then
      local drop = 0
      for _, m in ipairs(old) do drop = drop + tonumber(string.match(m, ':(%d+)$')) end
      redis.call('ZREMRANGEBYSCORE', w, '-inf', horizon)
      redis.call('HINCRBY', h, 'spent', I(-drop))
      redis.call('HDEL', h, 'refused_alert')
    end
  end
end

local function state(h)
  local v = redis.call('HMGET', h, 'spent', 'reserved', 'refusals')
  return {tonumber(v[1] or '0'), tonumber(v[2] or '0'), tonumber(v[3] or '0')}
end

local function touch(h, w, l, ttl)
  redis.call('EXPIRE', h, ttl)
  redis.call('EXPIRE', w, ttl)
  redis.call('EXPIRE', l, ttl)
end
"""

#: KEYS: H, W, L per bucket. ARGV: now, amount, id, lease deadline, n, then per bucket:
#: limit, window seconds (0: calendar), ttl seconds.
#: Returns {1, 0, {spent, reserved, refusals}...} when reserved, or
#: {0, i, {spent, reserved, refusals}, first_refusal} when bucket i cannot fit it, or {2}
#: when the reservation was released before it arrived (a caller that timed out while
#: Redis was frozen: its release may overtake it).
RESERVE = (
    _HOUSEKEEP
    + """
local now = tonumber(ARGV[1])
local amount = tonumber(ARGV[2])
local rid = ARGV[3]
local deadline = ARGV[4]
local n = tonumber(ARGV[5])
if n > 0 and redis.call('HDEL', KEYS[1], 'x:' .. rid) == 1 then return {2} end
local out = {1, 0}
for i = 1, n do
  local h, w, l = KEYS[3*i-2], KEYS[3*i-1], KEYS[3*i]
  local b = 5 + 3*(i-1)
  local limit = tonumber(ARGV[b+1])
  local window = tonumber(ARGV[b+2])
  housekeep(h, w, l, now, window)
  local s = state(h)
  if s[1] + s[2] + amount > limit or (s[1] > 0 and s[1] >= limit) then
    redis.call('HINCRBY', h, 'refusals', 1)
    s[3] = s[3] + 1
    local first = redis.call('HSETNX', h, 'refused_alert', '1')
    touch(h, w, l, ARGV[b+3])
    return {0, i, s, first}
  end
end
for i = 1, n do
  local h, w, l = KEYS[3*i-2], KEYS[3*i-1], KEYS[3*i]
  local b = 5 + 3*(i-1)
  redis.call('HINCRBY', h, 'reserved', ARGV[2])
  redis.call('HINCRBY', h, 'reservations', 1)
  redis.call('HSET', h, 'r:' .. rid, ARGV[2])
  redis.call('ZADD', l, deadline, rid)
  touch(h, w, l, ARGV[b+3])
  out[#out + 1] = state(h)
end
return out
"""
)

#: KEYS: H, W, L per bucket. ARGV: now, cost, id, n, then per bucket: limit, window, ttl;
#: then the number of thresholds, the thresholds, and "1" when a reservation not found
#: must be tombstoned (a release that may overtake its reservation). Returns per bucket
#: {spent, reserved, refusals, "t1,t2" (thresholds newly reached)}.
SETTLE = (
    _HOUSEKEEP
    + """
local now = tonumber(ARGV[1])
local cost = tonumber(ARGV[2])
local rid = ARGV[3]
local n = tonumber(ARGV[4])
local tbase = 4 + 3*n
local nt = tonumber(ARGV[tbase + 1])
local tomb = ARGV[tbase + 2 + nt] == '1'
local out = {}
for i = 1, n do
  local h, w, l = KEYS[3*i-2], KEYS[3*i-1], KEYS[3*i]
  local b = 4 + 3*(i-1)
  local limit = tonumber(ARGV[b+1])
  local window = tonumber(ARGV[b+2])
  housekeep(h, w, l, now, window)
  if window > 0 and limit > 0 then
    -- a rolling window re-arms a threshold once spending has fallen back below it
    local spent = tonumber(redis.call('HGET', h, 'spent') or '0')
    for j = 1, nt do
      local t = ARGV[tbase + 1 + j]
      if spent < tonumber(t) * limit then redis.call('HDEL', h, 'fired:' .. t) end
    end
  end
  local amt = redis.call('HGET', h, 'r:' .. rid)
  if amt then
    redis.call('HDEL', h, 'r:' .. rid)
    redis.call('ZREM', l, rid)
    redis.call('HINCRBY', h, 'reserved', I(-tonumber(amt)))
    redis.call('HINCRBY', h, 'spent', ARGV[2])
    if window > 0 and cost > 0 then redis.call('ZADD', w, now, rid .. ':' .. ARGV[2]) end
  elseif tomb and i == 1 then
    redis.call('HSET', h, 'x:' .. rid, '1')
  end
  local s = state(h)
  local fired = {}
  if limit > 0 then
    for j = 1, nt do
      local t = ARGV[tbase + 1 + j]
      if s[1] >= tonumber(t) * limit and redis.call('HSETNX', h, 'fired:' .. t, '1') == 1 then
        fired[#fired + 1] = t
      end
    end
  end
  touch(h, w, l, ARGV[b+3])
  s[4] = table.concat(fired, ',')
  out[i] = s
end
return out
"""
)

#: KEYS: H, W, L. ARGV: now, window. Returns {spent, reserved, refusals}.
PEEK = (
    _HOUSEKEEP
    + """
housekeep(KEYS[1], KEYS[2], KEYS[3], tonumber(ARGV[1]), tonumber(ARGV[2]))
return state(KEYS[1])
"""
)
