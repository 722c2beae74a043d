"""The Lua script behind ``RedisRateLimiter``: one atomic step on a shared budget.

State (hash ``KEYS[1]``): ``r`` request level, ``t`` token level, ``ts`` time of the last
update, ``p`` paused-until, ``n429`` count of 429s reported. Concurrency leases live in the
sorted set ``KEYS[2]`` (member = lease id, score = expiry). All times come from the server
(``redis.call('TIME')``), so machines with skewed clocks share one timeline; a server clock
that steps back is clamped (time never runs backwards for the bucket).

Every call first drains the levels for the elapsed time and applies what the caller
batched up since its last call: a pause, header-reported room, the token ``delta`` of
settled permits (negative = refunds of unused reservations, positive = usage above them),
``undo`` admissions given back (admitted, never sent) and leases to drop. Then:

- ``acquire``: if paused, or the request or token bucket would overflow, or every lease is
  taken, grant nothing and return how long to wait; else take one request, ``amount``
  tokens and the lease ``ARGV[3]``.
- ``flush`` (any other op): nothing more; it sends the batch and reports the levels.

Arguments are packed to keep the client's encoding cost down: ``ARGV[1]`` the operation,
``ARGV[2]`` the numbers ``req_cap req_rate tok_cap tok_rate max_conc lease_ttl pause obs_r
obs_t amount delta undo`` separated by spaces, ``ARGV[3]`` the lease id to take, ``ARGV[4:]``
leases to drop. The reply is one string,
``granted wait request_level token_level in_flight paused_for n429 concurrency_blocked``
(one string parses faster than an array, and keeps float precision, which Redis would
truncate from Lua numbers).
The state hash expires once its buckets would have drained to empty, so idle budgets
leave nothing behind.
"""

from __future__ import annotations

__all__ = ["LIMITER_LUA"]

LIMITER_LUA = r"""
local function fmt(x) return string.format('%.17g', x) end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) * 1e-6
local op = ARGV[1]
local a = {}
for v in string.gmatch(ARGV[2], '%S+') do a[#a + 1] = tonumber(v) end
local req_cap, req_rate, tok_cap, tok_rate, max_conc = a[1], a[2], a[3], a[4], a[5]
local lease_ttl, pause_s, obs_r, obs_t = a[6], a[7], a[8], a[9]
local amount, delta, undo = a[10], a[11], a[12]
local lease = ARGV[3]

local st = redis.call('HMGET', KEYS[1], 'r', 't', 'ts', 'p', 'n429')
local rl = tonumber(st[1]) or 0
local tl = tonumber(st[2]) or 0
local ts = tonumber(st[3]) or now
local paused = tonumber(st[4]) or 0
local n429 = tonumber(st[5]) or 0
if now < ts then now = ts end
local el = now - ts
if req_cap > 0 then rl = math.max(0, rl - el * req_rate) end
if tok_cap > 0 then tl = math.max(0, tl - el * tok_rate) end

if pause_s > 0 then
  if now + pause_s > paused then paused = now + pause_s end
  if req_cap > 0 and rl < req_cap then rl = req_cap end
  if tok_cap > 0 and tl < tok_cap then tl = tok_cap end
  n429 = n429 + 1
end
if obs_r >= 0 and req_cap > 0 and req_cap - obs_r > rl then rl = req_cap - obs_r end
if obs_t >= 0 and tok_cap > 0 and tok_cap - obs_t > tl then tl = tok_cap - obs_t end
if tok_cap > 0 and delta ~= 0 then tl = math.max(0, tl + delta) end
if req_cap > 0 and undo > 0 then rl = math.max(0, rl - undo) end
if #ARGV > 3 then redis.call('ZREM', KEYS[2], unpack(ARGV, 4)) end

local in_flight = 0
if max_conc > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  in_flight = redis.call('ZCARD', KEYS[2])
end

local granted, wait, blocked = 0, 0, 0
if op == 'acquire' then
  if paused > now then wait = paused - now end
  if req_cap > 0 then
    local ex = rl + 1 - req_cap
    if 1 > req_cap then ex = rl end
    if ex > 1e-9 * math.max(1, req_cap) then wait = math.max(wait, ex / req_rate) end
  end
  if tok_cap > 0 and amount > 0 then
    local ex = tl + amount - tok_cap
    if amount > tok_cap then ex = tl end
    if ex > 1e-9 * math.max(1, tok_cap) then wait = math.max(wait, ex / tok_rate) end
  end
  if wait == 0 and max_conc > 0 and in_flight >= max_conc then
    blocked = 1
    local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
    wait = math.max(0, tonumber(first[2]) - now)
  end
  if wait == 0 and blocked == 0 then
    granted = 1
    if req_cap > 0 then rl = rl + 1 end
    if tok_cap > 0 then tl = tl + amount end
    if max_conc > 0 then
      redis.call('ZADD', KEYS[2], now + lease_ttl, lease)
      redis.call('PEXPIRE', KEYS[2], math.ceil(lease_ttl * 1000) + 1000)
      in_flight = in_flight + 1
    end
  end
end

redis.call('HSET', KEYS[1], 'r', fmt(rl), 't', fmt(tl), 'ts', fmt(now), 'p', fmt(paused),
  'n429', fmt(n429))
local drain = 0
if req_cap > 0 then drain = math.max(drain, rl / req_rate) end
if tok_cap > 0 then drain = math.max(drain, tl / tok_rate) end
drain = drain + math.max(0, paused - now) + 1
redis.call('PEXPIRE', KEYS[1], math.ceil(drain * 1000))
return table.concat({granted, fmt(wait), fmt(rl), fmt(tl), in_flight,
  fmt(math.max(0, paused - now)), n429, blocked}, ' ')
"""
