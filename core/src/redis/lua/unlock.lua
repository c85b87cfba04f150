
-- unlock: lifts a lockout and clears the failure count; replies {OK, 1} if
-- there was one to clear, {OK, 0} if not. A burned code stays burned.
local st = current()
if not st then
  return { OK, 0 }
end
local had_failures = st.failures > 0
st.failures = 0
settle(st)
return { OK, had_failures and 1 or 0 }
