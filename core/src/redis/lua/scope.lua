
-- Scopes (core/src/scope_shard.rs): each (scope name, value) is a key of its
-- own, `{ns}:{<scope id>}`, in its own slot, holding its issue and failure
-- windows; it is in the held index like any key, so it counts against the
-- capacity and is forgotten (its expiry) when both windows have ended. A
-- scoped call touches the key's slot and each scope's, so the scope steps are
-- scripts of their own: a call takes one event of a scope's budget first
-- (scope_take) and gives it back (scope_refund) when the call is refused
-- elsewhere or the event did not happen (ARCHITECTURE.md: reserve and refund).
--
-- ARGV[3] the side, 'i' (issues) or 'f' (failures); ARGV[4] that side's
-- budget; ARGV[5] the issue window and ARGV[6] the failure window, in ms.

local SCOPE = '>BI6I4I6I4' -- version, issue window start, issues,
                           -- failure window start, failures
local SCOPE_VERSION = 83   -- 'S': never a key's state version

local function scope_args(ARGV)
  return ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
end

-- The scope's state as of now (a window that has ended counts nothing), or
-- nil when it holds nothing.
local function scope_load(issue_window, failure_window)
  local raw = redis.call('GET', state_key)
  if not raw then
    return nil
  end
  local version, issue_start, issues, failure_start, failures = struct.unpack(SCOPE, raw)
  if version ~= SCOPE_VERSION then
    error('otpengine: scope state in an unknown layout (version ' .. tostring(version) .. ')')
  end
  local sc = { issue_start = issue_start, issues = issues,
               failure_start = failure_start, failures = failures }
  if sc.issues > 0 and now >= sc.issue_start + issue_window then
    sc.issues = 0
  end
  if sc.failures > 0 and now >= sc.failure_start + failure_window then
    sc.failures = 0
  end
  return sc
end

local function scope_forget_at(sc, issue_window, failure_window)
  local at = 0
  if sc.issues > 0 then
    at = sc.issue_start + issue_window
  end
  if sc.failures > 0 then
    at = math.max(at, sc.failure_start + failure_window)
  end
  return at
end

local function scope_store(sc, issue_window, failure_window)
  local at = scope_forget_at(sc, issue_window, failure_window)
  if at <= now then
    forget()
    return
  end
  redis.call('SET', state_key,
    struct.pack(SCOPE, SCOPE_VERSION, sc.issue_start, sc.issues, sc.failure_start, sc.failures),
    'PX', int(at - now + slack))
  if indexed then
    redis.call('ZADD', held_key, int(at), member)
  end
end

-- scope_take: one event of the side's budget. Replies {OK, the start of the
-- window it counts in} (what scope_refund names), {RATE_LIMITED, wait} when
-- the side's budget is spent (issues), {LOCKED, wait} (failures), or
-- {FULL, 0} for a new scope on a full store; a refusal changes nothing.
local function scope_take(KEYS, ARGV)
  setup(KEYS, ARGV)
  local side, budget, issue_window, failure_window = scope_args(ARGV)
  local sc = scope_load(issue_window, failure_window)
  if not sc then
    if not new_state() then
      return { FULL, 0 }
    end
    sc = { issue_start = 0, issues = 0, failure_start = 0, failures = 0 }
  end
  local start, count, window = sc.issue_start, sc.issues, issue_window
  if side == 'f' then
    start, count, window = sc.failure_start, sc.failures, failure_window
  end
  if budget > 0 and count >= budget and now < start + window then
    return { side == 'f' and LOCKED or RATE_LIMITED, start + window - now }
  end
  if count == 0 or now >= start + window then
    start, count = now, 1
  else
    count = count + 1
  end
  if side == 'f' then
    sc.failure_start, sc.failures = start, count
  else
    sc.issue_start, sc.issues = start, count
  end
  scope_store(sc, issue_window, failure_window)
  return { OK, start }
end

-- scope_refund: ARGV[7] the window start scope_take replied. Gives the event
-- back if that window is still the scope's; replies {OK, 1} if it did.
local function scope_refund(KEYS, ARGV)
  setup(KEYS, ARGV)
  local side, _, issue_window, failure_window = scope_args(ARGV)
  local taken_in = tonumber(ARGV[7])
  local sc = scope_load(issue_window, failure_window)
  if not sc then
    return { OK, 0 }
  end
  if side == 'f' and sc.failures > 0 and sc.failure_start == taken_in then
    sc.failures = sc.failures - 1
  elseif side == 'i' and sc.issues > 0 and sc.issue_start == taken_in then
    sc.issues = sc.issues - 1
  else
    return { OK, 0 }
  end
  scope_store(sc, issue_window, failure_window)
  return { OK, 1 }
end

-- scope_clear: forgets the scope (unlock_scope). Replies {OK, 1} if it had a
-- count in a running window.
local function scope_clear(KEYS, ARGV)
  setup(KEYS, ARGV)
  local _, _, issue_window, failure_window = scope_args(ARGV)
  local sc = scope_load(issue_window, failure_window)
  if not sc then
    return { OK, 0 }
  end
  forget()
  return { OK, (sc.issues > 0 or sc.failures > 0) and 1 or 0 }
end
