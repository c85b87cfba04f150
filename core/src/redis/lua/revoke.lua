
-- revoke: drops the key's codes; replies {OK, 1} if one of them was pending,
-- {OK, 0} if not. Rate limits and the failure count stay as they were.
local function revoke(KEYS, ARGV)
  setup(KEYS, ARGV)
  local st = current()
  if not st then
    return { OK, 0 }
  end
  local had_pending = any_pending(st)
  clear_codes(st, EMPTY)
  settle(st)
  return { OK, had_pending and 1 or 0 }
end
