
-- verify_totp: ARGV[3] the earliest allowed time step plus one, ARGV[4] the
-- bitmask of the allowed steps the typed code matched (bit i: that step plus
-- i), ARGV[5] the step length and ARGV[6] the call's wall time, in ms. The
-- codes were computed and compared by the engine: the secret never comes here.
-- The key's state is a random-code key's, with the newest code standing for
-- the last accepted step: its digest field holds the step plus one (0: none),
-- its expiry the time it was accepted and its ttl how long it must be
-- remembered from then.
-- Replies {OK, 0}, {REPLAYED, 0}, {MISMATCH, failures left} or {LOCKED, wait}
-- ({LOCKED_NOW, wait} from the failure that spent the budget).
local function verify_totp(KEYS, ARGV)
  setup(KEYS, ARGV)
  local first = tonumber(ARGV[3])
  local matched = tonumber(ARGV[4])
  local period, wall = tonumber(ARGV[5]), tonumber(ARGV[6])
  -- As TotpCheck::replay_for: a step is acceptable until wall time
  -- (step + 1 + the largest skew back, 10) * period. `first + b` is step + 1.
  local function replay_for(b)
    return math.max((first + b + 10) * period - wall, 0)
  end

  local st = current()
  if not st then
    st = new_state()
    if not st then
      return { FULL, 0 }
    end
    st.codes = { { digest = step_digest(0), expires_at = 0, ttl = 0, state = EMPTY } }
  end
  local left = lockout_left(st)
  if left then
    return { LOCKED, left }
  end

  local best = nil
  for b = 20, 0, -1 do
    if bit.band(matched, bit.lshift(1, b)) ~= 0 then
      best = b
      break
    end
  end
  local last = digest_step(st.codes[1].digest)

  local reply
  if best and first + best > last then
    -- Remembered until the later of what the previous step needed and what this
    -- one needs: as an expired code issued now whose ttl runs to that moment
    -- (forget_at is expiry plus ttl, and the cooldown's start stays in the past).
    local newest = st.codes[1]
    local before = 0
    if newest.state ~= EMPTY then
      before = newest.expires_at + newest.ttl
    end
    local until_ = math.max(before, now + replay_for(best))
    st.codes = {
      {
        digest = step_digest(first + best),
        expires_at = now,
        ttl = until_ - now,
        state = EXPIRED,
      },
    }
    clear_failures(st)
    reply = { OK, 0 }
  elseif best then
    reply = { REPLAYED, 0 }
  else
    -- A counted wrong code: one failure of the key's budget (always on here).
    local failures_left = count_failure(st)
    if failures_left > 0 then
      reply = { MISMATCH, failures_left }
    else
      reply = { LOCKED_NOW, lockout_left(st) or 0 }
    end
  end
  settle(st)
  return reply
end
