package bucket

import "github.com/redis/go-redis/v9"

// Numbers cross the script boundary as little-endian int64s (unpacked with
// the struct library, several times cheaper in Redis CPU than parsing text)
// and stay below 2^53, where Lua's doubles are still exact integers. Stored
// state is two packed int64s.

// decideScript runs one call over its buckets; it mirrors plan.apply and
// Memory.do.
//
// KEYS: the buckets. ARGV[1]: op, now, then per key 7 values: TokenBucket
// 0 cap incUS incFrac tauUS tauFrac sign; Daily 1 cap n w0 w1 w2 w3.
// now <= 0 means Redis TIME. Returns {allowed, now, then per key ok, x, y}:
// x, y are the TAT (µs, frac) of a token bucket or the count and window end
// (µs) of a daily quota, after the call if it committed and before it
// otherwise.
var decideScript = redis.NewScript(`
local A = ARGV[1]
local mode, now, pos = struct.unpack('<i8i8', A)
if now <= 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local all, st = 1, {}
for i = 1, #KEYS do
  local kind, cap, f3, f4, f5, f6, f7
  kind, cap, f3, f4, f5, f6, f7, pos = struct.unpack('<i8i8i8i8i8i8i8', A, pos)
  local v = redis.call('GET', KEYS[i])
  local ok, bx, by, ax, ay, we = 1, 0, 0, 0, 0, 0
  if kind == 0 then
    local tu, tf = now, 0
    if v and #v == 16 then
      local su, sf = struct.unpack('<i8i8', v)
      if sf > cap - 1 then sf = cap - 1 end
      if su > now or (su == now and sf > 0) then tu, tf = su, sf end
    end
    local fu, ff = now + f5, f6
    local nu, nf = tu, tf
    if mode == 2 and f7 < 0 then
      nu, nf = tu - f3, tf - f4
      if nf < 0 then nf = nf + cap; nu = nu - 1 end
      if nu < now then nu, nf = now, 0 end
    elseif mode ~= 2 or f7 > 0 then
      nu, nf = tu + f3, tf + f4
      if nf >= cap then nf = nf - cap; nu = nu + 1 end
      if nu > fu or (nu == fu and nf > ff) then
        if mode == 2 then nu, nf = fu, ff else ok = 0; nu, nf = tu, tf end
      end
    end
    bx, by, ax, ay = tu, tf, nu, nf
  else
    local ws
    if now >= f6 and now < f7 then ws, we = f6, f7
    elseif now >= f5 and now < f6 then ws, we = f5, f6
    elseif now >= f4 and now < f5 then ws, we = f4, f5
    else return redis.error_reply('bucket: clock more than a day away from the day windows') end
    local cnt = 0
    if v and #v == 16 then
      local sw, sc = struct.unpack('<i8i8', v)
      if sw == ws then cnt = sc end
    end
    local nc = cnt + f3
    if mode == 2 then
      if nc > cap then nc = cap end
      if nc < 0 then nc = 0 end
    elseif nc > cap then ok = 0; nc = cnt end
    bx, by, ax, ay = ws, cnt, ws, nc
  end
  if ok == 0 then all = 0 end
  local o = (i - 1) * 7
  st[o + 1], st[o + 2], st[o + 3], st[o + 4], st[o + 5], st[o + 6], st[o + 7] = kind, ok, bx, by, ax, ay, we
end
local commit = mode == 2 or (mode == 0 and all == 1)
local out = {all, now}
for i = 1, #KEYS do
  local o = (i - 1) * 7
  local kind, x, y = st[o + 1], st[o + 3], st[o + 4]
  if commit then
    x, y = st[o + 5], st[o + 6]
    if x ~= st[o + 3] or y ~= st[o + 4] then
      if kind == 0 then
        if x <= now and y == 0 then redis.call('DEL', KEYS[i])
        else redis.call('SET', KEYS[i], struct.pack('<i8i8', x, y), 'PX', math.floor((x - now) / 1000) + 2) end
      elseif y == 0 then redis.call('DEL', KEYS[i])
      else redis.call('SET', KEYS[i], struct.pack('<i8i8', x, y), 'PX', math.floor((st[o + 7] - now) / 1000) + 1000) end
    end
  end
  local n = #out
  if kind == 0 then
    out[n + 1], out[n + 2], out[n + 3] = st[o + 2], x, y
  else
    out[n + 1], out[n + 2], out[n + 3] = st[o + 2], y, st[o + 7]
  end
end
return out
`)

// leaseScript manages the sorted set lease id → expiry (µs) of one key.
//
// KEYS[1]: the set. ARGV[1]: op, now, limit, ttlUS with op 0 acquire,
// 1 renew, 2 release, 3 count; ARGV[2]: the lease id. now <= 0 means Redis
// TIME. Returns {ok, held, retryUS, now}.
var leaseScript = redis.NewScript(`
local mode, now, limit, ttl = struct.unpack('<i8i8i8i8', ARGV[1])
if now <= 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local k = KEYS[1]
redis.call('ZREMRANGEBYSCORE', k, '-inf', string.format('%d', now))
local ok, retry = 0, 0
local function extend()
  local last = redis.call('ZRANGE', k, -1, -1, 'WITHSCORES')
  if last[2] then
    redis.call('PEXPIRE', k, string.format('%d', math.floor((tonumber(last[2]) - now) / 1000) + 2))
  end
end
if mode == 0 then
  if redis.call('ZCARD', k) < limit then
    redis.call('ZADD', k, string.format('%d', now + ttl), ARGV[2])
    extend()
    ok = 1
  else
    local first = redis.call('ZRANGE', k, 0, 0, 'WITHSCORES')
    if first[2] then retry = tonumber(first[2]) - now else retry = -1 end
  end
elseif mode == 1 then
  if redis.call('ZSCORE', k, ARGV[2]) then
    redis.call('ZADD', k, 'XX', string.format('%d', now + ttl), ARGV[2])
    extend()
    ok = 1
  end
elseif mode == 2 then
  ok = redis.call('ZREM', k, ARGV[2])
end
return {ok, redis.call('ZCARD', k), retry, now}
`)
