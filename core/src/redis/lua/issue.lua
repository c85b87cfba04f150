
-- issue: ARGV[3] the new code's digest, ARGV[4] its ttl in ms; ARGV[5]
-- 'peek' to only say what the key's own limits answer, issuing nothing (a
-- scoped issue refused by a scope weighs the key's wait against it).
-- Replies {OK, 0}, {LOCKED, wait}, {RATE_LIMITED, wait} or {FULL, 0}; a refusal
-- changes nothing. The code itself was drawn by the engine and never comes here.
local function issue(KEYS, ARGV)
  setup(KEYS, ARGV)
  local digest, ttl = ARGV[3], tonumber(ARGV[4])
  local peek = ARGV[5] == 'peek'

  local st = current()
  if st then
    local left = lockout_left(st)
    if left then
      return { LOCKED, left }
    end
    local wait = rate_wait(st)
    if wait > 0 then
      return { RATE_LIMITED, wait }
    end
  elseif peek then
    return { OK, 0 }
  else
    st = new_state()
    if not st then
      return { FULL, 0 }
    end
  end

  if peek then
    return { OK, 0 }
  end
  -- With codes_per_key > 1 the newest code, if still pending or expired, becomes
  -- the first of the older ones (the oldest drops off); else they all go.
  local codes = { { digest = digest, expires_at = now + ttl, ttl = ttl, state = PENDING } }
  local newest = st.codes[1]
  if codes_per_key > 1 and newest and (newest.state == PENDING or newest.state == EXPIRED) then
    for _, c in ipairs(st.codes) do
      if #codes < codes_per_key then
        codes[#codes + 1] = c
      end
    end
  end
  st.codes = codes
  st.attempts = max_attempts
  if max_issues > 0 then
    if st.window_count == 0 or now >= st.window_start + window then
      st.window_start = now
      st.window_count = 1
    else
      st.window_count = st.window_count + 1
    end
  end
  settle(st)
  return { OK, 0 }
end
