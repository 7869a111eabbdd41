-- POST /api/token. BENCH_FRESH=true signs every time; false lets the server
-- reuse recent tokens. BENCH_SESSIONS limits the sessions asked for.
local secret = os.getenv("BENCH_SECRET")
local sessions = tonumber(os.getenv("BENCH_SESSIONS"))
local fresh = os.getenv("BENCH_FRESH")
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer " .. secret
wrk.headers["Content-Type"] = "application/json"

function init(args)
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
end

function request()
  local body = '{"sessionToken":"bench-session-' .. math.random(0, sessions - 1) .. '","fresh":' .. fresh .. '}'
  return wrk.format(nil, "/api/token", nil, body)
end

