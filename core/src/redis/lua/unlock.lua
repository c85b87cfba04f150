
-- unlock: lifts a lockout and clears the failure history (count and strikes);
-- replies {OK, 1} if there was one to clear, {OK, 0} if not. A burned code stays burned.
local function unlock(KEYS, ARGV)
  setup(KEYS, ARGV)
  local st = current()
  if not st then
    return { OK, 0 }
  end
  local had_failures = st.failures > 0 or st.strikes > 0
  clear_failures(st)
  settle(st)
  return { OK, had_failures and 1 or 0 }
end
