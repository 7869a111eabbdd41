-- POST /api/adapter/getSessionAndUser for random seeded sessions.
-- BENCH_SECRET: the server's secret; BENCH_SESSIONS: how many sessions were seeded.
local secret = os.getenv("BENCH_SECRET")
local sessions = tonumber(os.getenv("BENCH_SESSIONS"))
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer " .. secret
wrk.headers["Content-Type"] = "application/json"

function init(args)
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
end

function request()
  local body = '{"sessionToken":"bench-session-' .. math.random(0, sessions - 1) .. '"}'
  return wrk.format(nil, "/api/adapter/getSessionAndUser", nil, body)
end

