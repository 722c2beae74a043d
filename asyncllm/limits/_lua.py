"""The Lua script behind ``RedisRateLimiter``: one atomic step on a shared budget.

Keys (one hash tag, so one cluster slot): ``KEYS[1]`` state hash (``r`` request level,
``t`` token level, ``ts`` time of the last update, ``p`` paused-until, ``n429`` 429s
reported, ``ls`` the last start granted); ``KEYS[2]`` concurrency leases (sorted set,
member = lease id, score = expiry);
``KEYS[3]`` grants (sorted set, member = lease id, score = the granted start time), the
sliding-window log of requests; ``KEYS[4]`` ids already seen (score = forget-after): batches
applied and admissions withdrawn, so a command replayed late by a frozen server is a no-op.
All times come from the server (``redis.call('TIME')``), so machines with skewed clocks
share one timeline; a server clock that steps back is clamped.

**Admission is a schedule, not a retry loop.** ``acquire`` grants a *start time*: the
earliest moment at which the request fits every rule, which may lie in the future. The
caller sleeps until then and goes, without asking again: one round trip per admission, and
callers across all processes are served in the order they asked (fair shares). The rules:

- the request bucket (leaky, capacity ``burst * rpm``, draining at ``rpm / period``) and
  the token bucket (same with ``tpm`` and the reservation ``amount``): pacing, and the burst;
- the **strict sliding window**: at most ``rpm`` starts in any ``window`` seconds (the
  period plus a small margin for network jitter), checked against the grants log, so a
  server that counts requests in a strict window never sees more than its limit, from the
  very first request; while the window is full, starts are also spaced by ``period / rpm``
  (``ls`` in the state hash is the last start), so the start burst is not echoed every
  period (bursts at the window's edge are where jitter turns into 429s);
- a pause (a 429 said wait) in force.

A start later than ``max_wait`` seconds (the caller's deadline) is not granted: the reply
says how long it would have been. Concurrency cannot be scheduled (it frees on releases):
when every lease is taken nothing is granted and the reply says when the first lease
expires (``concurrency_blocked``).

Every call first applies the batch the caller carries (unless its ``batch`` id was seen
already): a pause, header-reported room, the token ``delta`` of settled permits, admissions
withdrawn (``u<lease> <amount>``: removed from the grants log and given back only if they
were granted; otherwise remembered, so a late grant for them is refused) and leases to drop
(``d<lease>``).

Arguments: ``ARGV[1]`` the operation (``acquire`` or ``flush``), ``ARGV[2]`` the numbers
``req_cap req_rate tok_cap tok_rate max_conc lease_ttl window rpm_window max_wait pause
obs_r obs_t amount delta`` separated by spaces, ``ARGV[3]`` the batch id (empty: none),
``ARGV[4]`` the lease id to take, ``ARGV[5:]`` the items. The reply is one string,
``granted wait request_level token_level in_flight paused_for n429 concurrency_blocked
now`` (one string parses faster than an array and keeps float precision; ``now`` is the
server time the caller maps its start to its own clock with).
Every key expires once nothing in it can matter any more.
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
local lease_ttl, window, rpm_window, max_wait = a[6], a[7], a[8], a[9]
local pause_s, obs_r, obs_t, amount, delta = a[10], a[11], a[12], a[13], a[14]
local batch, lease = ARGV[3], ARGV[4]

local st = redis.call('HMGET', KEYS[1], 'r', 't', 'ts', 'p', 'n429', 'ls')
local rl = tonumber(st[1]) or 0
local tl = tonumber(st[2]) or 0
local ts = tonumber(st[3]) or now
local paused = tonumber(st[4]) or 0
local n429 = tonumber(st[5]) or 0
local last = tonumber(st[6]) or 0
if now < ts then now = ts end
local el = now - ts
if req_cap > 0 then rl = math.max(0, rl - el * req_rate) end
if tok_cap > 0 then tl = math.max(0, tl - el * tok_rate) end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - window)
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)

local apply = true
if batch ~= '' then
  if redis.call('ZSCORE', KEYS[4], batch) then apply = false
  else redis.call('ZADD', KEYS[4], now + lease_ttl, batch) end
end
if apply then
  if pause_s > 0 then
    if now + pause_s > paused then paused = now + pause_s end
    if req_cap > 0 and rl < req_cap then rl = req_cap end
    if tok_cap > 0 and tl < tok_cap then tl = tok_cap end
    n429 = n429 + 1
  end
  if obs_r >= 0 and req_cap > 0 and req_cap - obs_r > rl then rl = req_cap - obs_r end
  if obs_t >= 0 and tok_cap > 0 and tok_cap - obs_t > tl then tl = tok_cap - obs_t end
  if tok_cap > 0 and delta ~= 0 then tl = math.max(0, tl + delta) end
  local drops = {}
  for i = 5, #ARGV do
    local item = ARGV[i]
    local kind = string.sub(item, 1, 1)
    if kind == 'd' then
      drops[#drops + 1] = string.sub(item, 2)
    elseif kind == 'u' then
      local sp = string.find(item, ' ', 2, true)
      local id = string.sub(item, 2, sp - 1)
      local n = tonumber(string.sub(item, sp + 1))
      drops[#drops + 1] = id
      if redis.call('ZREM', KEYS[3], id) == 1 then
        if req_cap > 0 then rl = math.max(0, rl - 1) end
        if tok_cap > 0 then tl = math.max(0, tl - n) end
      else
        redis.call('ZADD', KEYS[4], now + lease_ttl, 'x' .. id)
      end
    end
  end
  if #drops > 0 then redis.call('ZREM', KEYS[2], unpack(drops)) end
end

local in_flight = 0
if max_conc > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  in_flight = redis.call('ZCARD', KEYS[2])
end

local granted, start, blocked = 0, now, 0
if op == 'acquire' then
  if paused > start then start = paused end
  if req_cap > 0 then
    local ex = rl + 1 - req_cap
    if 1 > req_cap then ex = rl end
    if ex > 1e-9 * math.max(1, req_cap) then start = math.max(start, now + ex / req_rate) end
  end
  if tok_cap > 0 and amount > 0 then
    local ex = tl + amount - tok_cap
    if amount > tok_cap then ex = tl end
    if ex > 1e-9 * math.max(1, tok_cap) then start = math.max(start, now + ex / tok_rate) end
  end
  if rpm_window > 0 then
    local c = redis.call('ZCARD', KEYS[3])
    if c >= rpm_window then
      -- The window is full: start when the rpm-th last start leaves it, and no closer than
      -- the sustained spacing to the last start, so a burst that leaves the window together
      -- is followed by paced starts, not by the same burst again.
      local nth = redis.call('ZRANGE', KEYS[3], c - rpm_window, c - rpm_window, 'WITHSCORES')
      start = math.max(start, tonumber(nth[2]) + window, last + 1 / req_rate)
    end
  end
  if redis.call('ZSCORE', KEYS[4], 'x' .. lease) then
    start = now  -- withdrawn before this (late) command ran: grant nothing
  elseif start - now > max_wait then
    start = start  -- beyond the caller's deadline: grant nothing, say how long
  elseif max_conc > 0 and in_flight >= max_conc then
    blocked = 1
    local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
    start = math.max(start, tonumber(first[2]))
  else
    granted = 1
    if start > last then last = start end
    if req_cap > 0 then rl = rl + 1 end
    if tok_cap > 0 then tl = tl + amount end
    redis.call('ZADD', KEYS[3], start, lease)
    redis.call('PEXPIRE', KEYS[3], math.ceil((start - now + window) * 1000) + 1000)
    if max_conc > 0 then
      redis.call('ZADD', KEYS[2], start + lease_ttl, lease)
      redis.call('PEXPIRE', KEYS[2], math.ceil((start - now + lease_ttl) * 1000) + 1000)
      in_flight = in_flight + 1
    end
  end
end

redis.call('HSET', KEYS[1], 'r', fmt(rl), 't', fmt(tl), 'ts', fmt(now), 'p', fmt(paused),
  'n429', fmt(n429), 'ls', fmt(last))
local drain = 0
if req_cap > 0 then drain = math.max(drain, rl / req_rate) end
if tok_cap > 0 then drain = math.max(drain, tl / tok_rate) end
drain = drain + math.max(0, paused - now) + 1
redis.call('PEXPIRE', KEYS[1], math.ceil(drain * 1000))
if redis.call('ZCARD', KEYS[4]) > 0 then
  redis.call('PEXPIRE', KEYS[4], math.ceil(lease_ttl * 1000) + 1000)
end
return table.concat({granted, fmt(start - now), fmt(rl), fmt(tl), in_flight,
  fmt(math.max(0, paused - now)), n429, blocked, fmt(now)}, ' ')
"""
