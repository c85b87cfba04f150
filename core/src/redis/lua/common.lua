#!lua
-- otpengine: the rules of core/src/rules.rs, applied as core/src/shard.rs
-- applies them, run inside Redis. This file and the operations (issue.lua,
-- verify.lua, verify_totp.lua, revoke.lua, unlock.lua, one function each) make
-- a function library (FUNCTION LOAD, Redis 7), or for servers that refuse
-- functions one script per operation (this file, the operation's, and a line
-- that calls it; see scripts.rs). Every call runs as one atomic step: no other
-- command sees a key half updated, so single use, attempt counting and rate
-- limits hold however many engines call at once.
--
-- The first line declares the script (Redis 7 and later; a library's names
-- it there) with no flags, which is what makes a full Redis fail closed: on a
-- server out of memory (maxmemory reached under noeviction) a declared script
-- or function without `allow-oom` is refused whole, before it reads or
-- decides anything, the same for every call. (An undeclared script would be
-- refused at its first write, and which branch writes first would tell a
-- wrong guess from a right one.)
--
-- KEYS[1]  the key's state      {ns}:{<key id, 16 bytes>}
-- KEYS[2]  held index (zset)    key ids with any state, scored by forget time
-- KEYS[3]  live index (zset)    key ids with a pending code, by last pending expiry
--          (KEYS[2] and KEYS[3] only with the indexes; the three hash to one
--          slot, see keys.rs)
-- ARGV[1]  now in ms, or "" to read Redis TIME (the one clock of all engines)
-- ARGV[2]  the policy, eleven 8-byte big-endian integers (POLICY below):
--          ms added to every expiry (0; an hour on a manual clock, whose time
--          does not follow Redis's), resend_cooldown, max_issues_per_window,
--          issue_window, max_failures_per_key, lockout, max_attempts,
--          codes_per_key, capacity (0: not enforced), max_lockout (0: lockouts
--          do not escalate), indexed (1: keep the held and live indexes; 0:
--          none, and no capacity); durations in ms
-- ARGV[3..] the operation's own arguments
--
-- The state (see load): attempts left; window start and count; last failure
-- time, failure count and strikes (budgets spent since the last success); per
-- code (newest first, up to 4): its digest (the 64-bit keyed digest, 8 bytes;
-- never the code), expiry, ttl and state. One code takes 39 bytes, which Redis
-- keeps in one allocation with the value's header (an embstr, up to 44).
--
-- Ground rules (as in shard.rs):
-- - A key's state exists while anything about it must be remembered: a code
--   (pending, expired or burned) until its expiry plus its ttl; the cooldown
--   and window of its last issues; its failure history for failure_memory(st)
--   after the last failure. Its expiry (SET ... PX) is that moment, so Redis
--   reclaims the memory; a script that finds everything past treats the key
--   as gone, so answers never depend on when Redis gets to it.
-- - The newest code's expiry minus its ttl is the key's last issue time, kept
--   after the code is consumed or revoked: the cooldown outlives the code.
-- - Older codes exist only while the newest is pending or expired; consuming,
--   revoking or burning drops them.

local EMPTY, PENDING, EXPIRED, BURNED = 0, 1, 2, 3
-- Replies: the first element says what happened, the second carries a number.
-- LOCKED_NOW is LOCKED from the counted failure that burned the code or locked
-- the key (a scoped verify counts it on its scopes too).
local OK, MISMATCH, LOCKED, EXPIRED_REPLY, NOT_FOUND, RATE_LIMITED, FULL, REPLAYED, LOCKED_NOW =
  0, 1, 2, 3, 4, 5, 6, 7, 8
-- Stale index entries an issue removes at most, so that a mass expiry is spread
-- over many calls (shard.rs: OP_BUDGET).
local PRUNE_BUDGET = 32
-- The most strikes a key counts (rules.rs: MAX_STRIKES).
local MAX_STRIKES = 31

local POLICY = '>I8I8I8I8I8I8I8I8I8I8I8'

-- The call's keys, policy and time, set by setup at the start of every call
-- (as a function library, this file runs once, when it is loaded, and the
-- functions below serve every call after).
local slack, cooldown, max_issues, window, max_failures, lockout, max_attempts,
  codes_per_key, capacity, max_lockout, indexed
local state_key, held_key, live_key, member
local now

local function setup(KEYS, ARGV)
  slack, cooldown, max_issues, window, max_failures, lockout, max_attempts,
    codes_per_key, capacity, max_lockout, indexed = struct.unpack(POLICY, ARGV[2])
  -- Without the indexes a key is its state alone: nothing counts the keys
  -- (len, live, held read 0) and nothing holds a capacity (maxmemory does).
  indexed = indexed == 1
  state_key, held_key, live_key = KEYS[1], KEYS[2], KEYS[3]
  -- The key id, the member of both indexes: the hash tag of the state's name.
  member = indexed and string.sub(state_key, -17, -2)
  if ARGV[1] == '' then
    local t = redis.call('TIME')
    now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  else
    now = tonumber(ARGV[1])
  end
end

-- Integers as Redis arguments, never in exponent notation.
local function int(x)
  return string.format('%d', x)
end

-- The key's state is one string (struct, which Redis ships with its Lua):
-- a header, then one record per code, newest first. Times are whole
-- milliseconds in 6 bytes, good until the year 10889), digests 8 bytes: the
-- code digest, or for TOTP state the last accepted step plus one.
local HEADER = '>BBBHHBI6I6' -- version, codes, attempts left, window count,
                              -- failures, strikes, window start, last failure
local CODE = '>c8I6I4B'      -- digest, expiry, ttl, state
local VERSION = 2

local function load()
  local raw = redis.call('GET', state_key)
  if not raw then
    return nil
  end
  local version, codes, attempts, window_count, failures, strikes, window_start, last_failure, at =
    struct.unpack(HEADER, raw)
  if version ~= VERSION then
    error('otpengine: state in an unknown layout (version ' .. tostring(version) .. ')')
  end
  local st = {
    attempts = attempts,
    window_start = window_start,
    window_count = window_count,
    last_failure = last_failure,
    failures = failures,
    strikes = strikes,
    codes = {},
  }
  for i = 1, codes do
    local digest, expires_at, ttl, state
    digest, expires_at, ttl, state, at = struct.unpack(CODE, raw, at)
    st.codes[i] = { digest = digest, expires_at = expires_at, ttl = ttl, state = state }
  end
  return st
end

-- A TOTP step (plus one) as a digest field.
local function step_digest(step)
  return struct.pack('>I8', step)
end

-- The TOTP step a digest field holds (0 for a random code's digest, which
-- TOTP state never holds).
local function digest_step(digest)
  return (struct.unpack('>I8', digest))
end

local function live_until(st)
  local at = nil
  for _, c in ipairs(st.codes) do
    if c.state == PENDING then
      at = math.max(at or 0, c.expires_at)
    end
  end
  return at
end

-- As rules.rs: how long the lockout lasts that the key's latest strike started
-- (doubling per strike up to max_lockout), and how long after its last failure
-- a key's failure history is remembered (STRIKE_MEMORY as there).
local function lockout_len(st)
  if max_lockout == 0 or st.strikes <= 1 then
    return lockout
  end
  return math.min(lockout * 2 ^ math.min(st.strikes - 1, MAX_STRIKES), max_lockout)
end

local STRIKE_MEMORY = 365 * 86400000
local function failure_memory(st)
  if max_lockout == 0 then
    return lockout
  elseif st.strikes == 0 then
    return max_lockout
  end
  return max_lockout + STRIKE_MEMORY
end

local function last_issue_at(st)
  local newest = st.codes[1]
  return newest.expires_at - newest.ttl
end

-- The moment everything about the key may be forgotten.
local function forget_at(st)
  local at = 0
  for _, c in ipairs(st.codes) do
    if c.state ~= EMPTY then
      at = math.max(at, c.expires_at + c.ttl)
    end
  end
  if cooldown > 0 then
    at = math.max(at, last_issue_at(st) + cooldown)
  end
  if max_issues > 0 and st.window_count > 0 then
    at = math.max(at, st.window_start + window)
  end
  if st.failures > 0 or st.strikes > 0 then
    at = math.max(at, st.last_failure + failure_memory(st))
  end
  return at
end

local function expire_due_codes(st)
  for _, c in ipairs(st.codes) do
    if c.state == PENDING and now >= c.expires_at then
      c.state = EXPIRED
    end
  end
end

local function any_pending(st)
  for _, c in ipairs(st.codes) do
    if c.state == PENDING then
      return true
    end
  end
  return false
end

local function forget()
  redis.call('DEL', state_key)
  if indexed then
    redis.call('ZREM', held_key, member)
    redis.call('ZREM', live_key, member)
  end
end

-- The key's state as of now: old failures forgotten, due codes expired, and
-- nil if everything about the key is past (then it is deleted here).
local function current()
  local st = load()
  if not st then
    return nil
  end
  -- Time never runs backwards for a key: not before its own last events, even
  -- if the clock of the Redis primary is stepped back or a failover changes it.
  now = math.max(now, st.window_start, st.last_failure, last_issue_at(st))
  if st.failures > 0 or st.strikes > 0 then
    if now >= st.last_failure + failure_memory(st) then
      st.failures, st.strikes = 0, 0
    elseif max_failures > 0 and st.failures >= max_failures
        and now >= st.last_failure + lockout_len(st) then
      -- The lockout is over: a fresh budget; the strikes stay.
      st.failures = 0
    end
  end
  expire_due_codes(st)
  st.stored_forget_at = forget_at(st)
  if st.stored_forget_at <= now then
    forget()
    return nil
  end
  -- What the indexes hold for the key now (expiring codes does not move them:
  -- an expired code still counts for forget_at, and live_until is then past).
  st.stored_live_until = live_until(st)
  return st
end

local function lockout_left(st)
  local lockout_end = st.last_failure + lockout_len(st)
  if max_failures > 0 and st.failures >= max_failures and now < lockout_end then
    return lockout_end - now
  end
  return nil
end

-- A counted failure of the key's budget (rules.rs: fail); the one that spends
-- the budget is a strike when lockouts escalate. Returns the failures left.
local function count_failure(st)
  st.failures = math.min(st.failures + 1, 65535)
  st.last_failure = now
  if max_lockout > 0 and st.failures == max_failures then
    st.strikes = math.min(st.strikes + 1, MAX_STRIKES)
  end
  return math.max(max_failures - st.failures, 0)
end

-- A success or an unlock: no failures, no strikes.
local function clear_failures(st)
  st.failures, st.strikes = 0, 0
end

-- Time until an issue would be allowed; 0 if it is allowed now.
local function rate_wait(st)
  local wait = 0
  local cooldown_end = last_issue_at(st) + cooldown
  if cooldown > 0 and now < cooldown_end then
    wait = cooldown_end - now
  end
  local window_end = st.window_start + window
  if max_issues > 0 and st.window_count >= max_issues and now < window_end then
    wait = math.max(wait, window_end - now)
  end
  return wait
end

-- Sets the newest code to `state` (EMPTY: forgotten; BURNED: it stands for all
-- of them) and drops the older ones.
local function clear_codes(st, state)
  st.codes = { st.codes[1] }
  st.codes[1].state = state
end

-- Writes the key back with its expiry (or deletes it when nothing needs
-- remembering), and its index entries where they changed.
local function settle(st)
  expire_due_codes(st)
  local at = forget_at(st)
  if at <= now then
    forget()
    return
  end
  local parts = {
    struct.pack(HEADER, VERSION, #st.codes, st.attempts, st.window_count, st.failures,
      st.strikes, st.window_start, st.last_failure),
  }
  for _, c in ipairs(st.codes) do
    parts[#parts + 1] = struct.pack(CODE, c.digest, c.expires_at, c.ttl, c.state)
  end
  -- One command writes the state and its expiry.
  redis.call('SET', state_key, table.concat(parts), 'PX', int(at - now + slack))
  if not indexed then
    return
  end
  if at ~= st.stored_forget_at then
    redis.call('ZADD', held_key, int(at), member)
  end
  local live = live_until(st)
  if live ~= st.stored_live_until then
    if live then
      redis.call('ZADD', live_key, int(live), member)
    else
      redis.call('ZREM', live_key, member)
    end
  end
end

-- Removes up to `budget` index entries whose time is past (keys forgotten, or
-- no longer pending); the counts never include them either way.
local function prune(index, budget)
  local stale = redis.call('ZRANGEBYSCORE', index, '-inf', int(now), 'LIMIT', 0, budget)
  if #stale > 0 then
    redis.call('ZREM', index, unpack(stale))
  end
end

-- A new key's state, or nil when the store already holds `capacity` keys (after
-- forgetting whatever is past). Only a new key adds index entries (two at most),
-- so pruning here, up to PRUNE_BUDGET each time, keeps the indexes from growing
-- with stale ones.
local function new_state()
  if indexed then
    if capacity > 0 then
      redis.call('ZREMRANGEBYSCORE', held_key, '-inf', int(now))
      if redis.call('ZCARD', held_key) >= capacity then
        return nil
      end
    end
    prune(held_key, PRUNE_BUDGET)
    prune(live_key, PRUNE_BUDGET)
  end
  return {
    attempts = 0,
    window_start = 0,
    window_count = 0,
    last_failure = 0,
    failures = 0,
    strikes = 0,
    codes = {},
  }
end
