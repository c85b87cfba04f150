
-- verify: ARGV[3] the digest of the normalised code typed, or "" when what was
-- typed cannot be a code (a counted mismatch all the same).
-- Replies {OK, 0} (verified), {MISMATCH, attempts left}, {LOCKED, wait}
-- ({LOCKED_NOW, wait} when this guess was the failure that burned or locked),
-- {EXPIRED_REPLY, 0} or {NOT_FOUND, 0}.
local function verify(KEYS, ARGV)
  setup(KEYS, ARGV)
  local guess = ARGV[3]

  local st = current()
  if not st then
    return { NOT_FOUND, 0 }
  end
  local left = lockout_left(st)
  if left then
    return { LOCKED, left }
  end
  local all_empty = true
  for _, c in ipairs(st.codes) do
    if c.state ~= EMPTY then
      all_empty = false
    end
  end
  if all_empty then
    return { NOT_FOUND, 0 }
  end
  if st.codes[1].state == BURNED then
    return { LOCKED, 0 }
  end

  -- Compare against every code before deciding anything.
  local hit_pending, hit_expired, pending = false, false, false
  for _, c in ipairs(st.codes) do
    local hit = guess ~= '' and c.digest == guess
    if c.state == PENDING then
      pending = true
      hit_pending = hit_pending or hit
    elseif c.state == EXPIRED then
      hit_expired = hit_expired or hit
    end
  end

  local reply
  if hit_pending then
    clear_codes(st, EMPTY)
    clear_failures(st)
    reply = { OK, 0 }
  elseif not pending or hit_expired then
    reply = { EXPIRED_REPLY, 0 }
  else
    -- A counted wrong guess: spends an attempt and, with a budget, a failure.
    st.attempts = math.max(st.attempts - 1, 0)
    local attempts_left = st.attempts
    if max_failures > 0 then
      attempts_left = math.min(attempts_left, count_failure(st))
    end
    if attempts_left > 0 then
      reply = { MISMATCH, attempts_left }
    else
      clear_codes(st, BURNED)
      reply = { LOCKED_NOW, lockout_left(st) or 0 }
    end
  end
  settle(st)
  return reply
end
