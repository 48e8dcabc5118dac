package bucket

import "github.com/redis/go-redis/v9"

// Numbers cross the script boundary as little-endian int64s (unpacked with
// the struct library, several times cheaper in Redis CPU than parsing text)
// and stay below 2^53, where Lua's doubles are still exact integers. Stored
// state is two packed int64s.

// decideScript runs one or more decisions over their buckets in one call;
// each mirrors plan.apply and Memory.do. The batcher merges concurrent
// decisions into one call on a standalone Redis (their keys may be in
// different slots, so a cluster gets one decision per call): Redis runs one
// script instead of one per decision, reads every key with one MGET, calls
// TIME at most once and writes each changed key once, which cuts its CPU
// per decision (see the notes in doc.go).
//
// KEYS: the buckets of every decision, in order. ARGV[1]: count, then per
// decision: op, now, nkeys, then per key 7 values: TokenBucket 0 cap incUS
// incFrac tauUS tauFrac sign; Daily 1 cap n w0 w1 w2 w3. now <= 0 means
// Redis TIME. Returns, per decision, either {0, allowed, now, then per key
// ok, x, y} or {1, message}: x, y are the TAT (µs, frac) of a token bucket
// or the count and window end (µs) of a daily quota, after the decision if
// it committed and before it otherwise. Decisions apply in order, so a
// later one sees an earlier one's writes to a shared key.
var decideScript = redis.NewScript(`
local A = ARGV[1]
local D, pos = struct.unpack('<i8', A)
local got = {}
if #KEYS > 0 then got = redis.call('MGET', unpack(KEYS)) end
local cur, ttl = {}, {}
local clock, k0, out, st = 0, 0, {}, {}
for d = 1, D do
  local mode, now, nk
  mode, now, nk, pos = struct.unpack('<i8i8i8', A, pos)
  local kpos = pos
  pos = pos + nk * 56
  if now <= 0 then
    if clock == 0 then
      local t = redis.call('TIME')
      clock = tonumber(t[1]) * 1000000 + tonumber(t[2])
    end
    now = clock
  end
  local all, err = 1, nil
  for i = 1, nk do
    local kind, cap, f3, f4, f5, f6, f7
    kind, cap, f3, f4, f5, f6, f7, kpos = struct.unpack('<i8i8i8i8i8i8i8', A, kpos)
    local key = KEYS[k0 + i]
    local v = cur[key]
    if v == nil then v = got[k0 + i] end
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
          if mode ~= 2 then ok = 0; nu, nf = tu, tf
          elseif tu > fu or (tu == fu and tf > ff) then nu, nf = tu, tf
          else nu, nf = fu, ff end
        end
      end
      bx, by, ax, ay = tu, tf, nu, nf
    else
      local ws
      if now >= f6 and now < f7 then ws, we = f6, f7
      elseif now >= f5 and now < f6 then ws, we = f5, f6
      elseif now >= f4 and now < f5 then ws, we = f4, f5
      else err = 'bucket: clock more than a day away from the day windows'; break end
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
  local n = #out
  if err then
    out[n + 1], out[n + 2] = 1, err
  else
    local commit = mode == 2 or (mode == 0 and all == 1)
    out[n + 1], out[n + 2], out[n + 3] = 0, all, now
    n = n + 3
    for i = 1, nk do
      local o = (i - 1) * 7
      local kind, x, y = st[o + 1], st[o + 3], st[o + 4]
      if commit then
        x, y = st[o + 5], st[o + 6]
        if x ~= st[o + 3] or y ~= st[o + 4] then
          local key = KEYS[k0 + i]
          if y == 0 and (kind ~= 0 or x <= now) then
            cur[key], ttl[key] = false, 0
          else
            cur[key] = struct.pack('<i8i8', x, y)
            if kind == 0 then ttl[key] = math.floor((x - now) / 1000) + 2
            else ttl[key] = math.floor((st[o + 7] - now) / 1000) + 1000 end
          end
        end
      end
      if kind == 0 then
        out[n + 1], out[n + 2], out[n + 3] = st[o + 2], x, y
      else
        out[n + 1], out[n + 2], out[n + 3] = st[o + 2], y, st[o + 7]
      end
      n = n + 3
    end
  end
  k0 = k0 + nk
end
for key, px in pairs(ttl) do
  if px == 0 then redis.call('DEL', key)
  else redis.call('SET', key, cur[key], 'PX', px) end
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
