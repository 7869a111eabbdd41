-- POST /api/adapter/deleteSession (a sign-out: the session goes and its
-- event is written) for seeded sessions bench-session-<n>, each once, from
-- BENCH_FIRST on. BENCH_SECRET: the server's secret.
local secret = os.getenv("BENCH_SECRET")
local next_session = tonumber(os.getenv("BENCH_FIRST"))
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer " .. secret
wrk.headers["Content-Type"] = "application/json"

function request()
  local body = '{"sessionToken":"bench-session-' .. next_session .. '"}'
  next_session = next_session + 1
  return wrk.format(nil, "/api/adapter/deleteSession", nil, body)
end
