package store

import "github.com/redis/go-redis/v9"

// The Lua scripts make every multi-key change atomic: connection sets, node
// maps and the user's status are updated and the before/after visibility
// compared in one step, so exactly one caller sees (and publishes) each
// change, however requests interleave.
//
// Every script gets ARGV[1] = key prefix, ARGV[2] = now (unix ms, from the
// service's clock, never Redis TIME, so tests can move time), ARGV[3] =
// retention of an offline user's hash (ms); script-specific arguments
// follow. Keys are built inside the scripts, so this needs a single Redis
// (or a Redis Cluster with every key in one slot: use a prefix with a hash
// tag such as "{parley:presence}:").
//
// Keys (P = prefix):
//
//	P u:<user>   hash: st chosen status, m status line, ls last seen (ms),
//	             ca changed-at (ms), v version, h "1" once durable fields
//	             were merged; expires RETENTION after the user's last
//	             connection ends
//	P uc:<user>  set of "<node>/<connection>" the user is connected by
//	P nc:<node>  hash: connection id -> "<user>|<connected at ms>"
//	P n:<node>   string: last heartbeat (ms), expires after the node timeout
//	P nodes      sorted set: node -> last sign of life (ms); the sweeper's index
//	P lock:sweep:<node>  sweep lock token, SET NX PX

// prelude is shared by the scripts that change a user's state. settle
// returns the transition tuple decoded by parseTransition:
// {user, changed, visible status, ls, devices, ca, v, went offline, chosen, m, has m, hydrated}.
const prelude = `
local P = ARGV[1]
local NOW = ARGV[2]
local RETENTION = ARGV[3]

local function ukey(u) return P .. 'u:' .. u end
local function ckey(u) return P .. 'uc:' .. u end

local function snap(u)
  local h = redis.call('HMGET', ukey(u), 'st', 'ls', 'ca', 'v', 'm', 'h')
  return {
    n = redis.call('SCARD', ckey(u)),
    st = h[1] or '',
    ls = h[2] or '',
    ca = h[3] or '0',
    v = tonumber(h[4] or '0'),
    m = h[5],
    h = h[6] or '',
  }
end

-- visible must agree with presence.Record.Visible.
local function visible(s)
  if s.n == 0 or s.st == 'offline' then return 'offline' end
  if s.st == '' then return 'online' end
  return s.st
end

local function settle(u, b, lsAt)
  local k = ukey(u)
  local a = snap(u)
  local before, after = visible(b), visible(a)
  if a.n == 0 and b.n > 0 then
    -- The session ended: a chosen status lasts only while connected.
    redis.call('HDEL', k, 'st')
    a.st = ''
  end
  local changed, wentOffline = 0, 0
  if before ~= after then
    changed = 1
    if after == 'offline' then
      a.ls = lsAt
      redis.call('HSET', k, 'ls', lsAt)
      wentOffline = 1
    end
    a.v = a.v + 1
    -- changed-at never goes back, even if replicas' clocks disagree.
    if tonumber(NOW) > tonumber(a.ca) then a.ca = NOW end
    redis.call('HSET', k, 'v', a.v, 'ca', a.ca)
  end
  if a.n == 0 then
    redis.call('PEXPIRE', k, RETENTION)
  else
    redis.call('PERSIST', k)
  end
  local hasm = 0
  if a.m then hasm = 1 end
  return {u, changed, after, a.ls, a.n, a.ca, a.v, wentOffline, a.st, a.m or '', hasm, a.h}
end

-- touchNode records a sign of life of node at NOW, never moving it back.
local function touchNode(node)
  local s = redis.call('ZSCORE', P .. 'nodes', node)
  if not s or tonumber(s) < tonumber(NOW) then
    redis.call('ZADD', P .. 'nodes', NOW, node)
  end
end

local function owner(val)
  return string.match(val, '^(.*)|')
end
`

// connectScript: ARGV[4] user, ARGV[5] connection, ARGV[6] node.
var connectScript = redis.NewScript(prelude + `
local u, c, node = ARGV[4], ARGV[5], ARGV[6]
local nk = P .. 'nc:' .. node
local member = node .. '/' .. c
local out = {{}}
local prev = redis.call('HGET', nk, c)
if prev then
  local pu = owner(prev)
  if pu and pu ~= u then
    -- The id was another user's connection on this node: it is gone.
    local b = snap(pu)
    redis.call('SREM', ckey(pu), member)
    out[#out + 1] = settle(pu, b, NOW)
  end
end
local b = snap(u)
redis.call('HSET', nk, c, u .. '|' .. NOW)
redis.call('SADD', ckey(u), member)
touchNode(node)
out[#out + 1] = settle(u, b, NOW)
return out
`)

// disconnectScript: ARGV[4] user, ARGV[5] connection, ARGV[6] node.
var disconnectScript = redis.NewScript(prelude + `
local u, c, node = ARGV[4], ARGV[5], ARGV[6]
local nk = P .. 'nc:' .. node
local b = snap(u)
local prev = redis.call('HGET', nk, c)
if prev and owner(prev) == u then
  redis.call('HDEL', nk, c)
end
redis.call('SREM', ckey(u), node .. '/' .. c)
return {{}, settle(u, b, NOW)}
`)

// setStatusScript: ARGV[4] user, ARGV[5] status, ARGV[6] "1" to set the
// status line ARGV[7].
var setStatusScript = redis.NewScript(prelude + `
local u = ARGV[4]
local b = snap(u)
redis.call('HSET', ukey(u), 'st', ARGV[5])
if ARGV[6] == '1' then
  redis.call('HSET', ukey(u), 'm', ARGV[7])
end
return {{}, settle(u, b, NOW)}
`)

// heartbeatScript: ARGV[4] node, ARGV[5] node timeout (ms), ARGV[6] prune
// connections older than this (ms), ARGV[7..] the node's connections (no
// duplicates). The full reconciliation runs only when the node holds
// connections it did not report, which a count tells cheaply.
var heartbeatScript = redis.NewScript(prelude + `
local node = ARGV[4]
local nk = P .. 'nc:' .. node
redis.call('SET', P .. 'n:' .. node, NOW, 'PX', ARGV[5])
touchNode(node)
local unknown = {}
local known = 0
-- HMGET in chunks: one call per thousand ids instead of one HEXISTS each,
-- and small enough for unpack's stack limit.
for i = 7, #ARGV, 1000 do
  local j = math.min(i + 999, #ARGV)
  local vals = redis.call('HMGET', nk, unpack(ARGV, i, j))
  for k = 1, #vals do
    if vals[k] then
      known = known + 1
    else
      unknown[#unknown + 1] = ARGV[i + k - 1]
    end
  end
end
local out = {unknown}
if redis.call('HLEN', nk) > known then
  local reported = {}
  for i = 7, #ARGV do reported[ARGV[i]] = true end
  local cutoff = tonumber(ARGV[6])
  local all = redis.call('HGETALL', nk)
  for i = 1, #all, 2 do
    local c, val = all[i], all[i + 1]
    if not reported[c] then
      local u, at = string.match(val, '^(.*)|(%d+)$')
      if u and tonumber(at) <= cutoff then
        local b = snap(u)
        redis.call('HDEL', nk, c)
        redis.call('SREM', ckey(u), node .. '/' .. c)
        out[#out + 1] = settle(u, b, NOW)
      end
    end
  end
end
return out
`)

// sweepScript: ARGV[4] node, ARGV[5] cutoff (ms), ARGV[6..] connections of
// the node to remove. Nothing happens unless the node's last sign of life
// is still before the cutoff (it may have come back since the sweeper
// looked). The first element of the reply is {"alive"} in that case.
var sweepScript = redis.NewScript(prelude + `
local node = ARGV[4]
local nk = P .. 'nc:' .. node
local last = redis.call('ZSCORE', P .. 'nodes', node)
if not last or tonumber(last) > tonumber(ARGV[5]) then
  return {{'alive'}}
end
-- A whole number of ms, whatever float formatting the server uses.
local lastMs = string.format('%.0f', tonumber(last))
local out = {{}}
for i = 6, #ARGV do
  local c = ARGV[i]
  local val = redis.call('HGET', nk, c)
  if val then
    local u = owner(val)
    redis.call('HDEL', nk, c)
    if u then
      local b = snap(u)
      redis.call('SREM', ckey(u), node .. '/' .. c)
      out[#out + 1] = settle(u, b, lastMs)
    end
  end
end
return out
`)

// forgetNodeScript: ARGV[1] prefix, ARGV[2] node, ARGV[3] cutoff (ms).
// Drops a swept node if it is still silent and holds no connections.
var forgetNodeScript = redis.NewScript(`
local P, node = ARGV[1], ARGV[2]
local last = redis.call('ZSCORE', P .. 'nodes', node)
if not last or tonumber(last) > tonumber(ARGV[3]) then return 0 end
if redis.call('HLEN', P .. 'nc:' .. node) > 0 then return 0 end
redis.call('ZREM', P .. 'nodes', node)
redis.call('DEL', P .. 'n:' .. node, P .. 'nc:' .. node)
return 1
`)

// hydrateScript: ARGV[1] prefix, ARGV[2] retention (ms), ARGV[3] TTL of
// a user the durable store does not know (ms), then per user 5 values:
// user, found "1"/"0", last seen ms or "", has message "1"/"0", message.
// Newer values already in Redis win (HSETNX).
var hydrateScript = redis.NewScript(`
local P = ARGV[1]
for i = 4, #ARGV, 5 do
  local u = ARGV[i]
  local k = P .. 'u:' .. u
  if ARGV[i + 2] ~= '' then redis.call('HSETNX', k, 'ls', ARGV[i + 2]) end
  if ARGV[i + 3] == '1' then redis.call('HSETNX', k, 'm', ARGV[i + 4]) end
  redis.call('HSET', k, 'h', '1')
  if redis.call('SCARD', P .. 'uc:' .. u) == 0 and redis.call('PTTL', k) < 0 then
    if ARGV[i + 1] == '1' then
      redis.call('PEXPIRE', k, ARGV[2])
    else
      redis.call('PEXPIRE', k, ARGV[3])
    end
  end
end
return 1
`)

// unlockScript: KEYS[1] lock, ARGV[1] token. Deletes the lock only if it
// is still ours.
var unlockScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)
