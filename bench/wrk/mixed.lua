-- A page-view workload: 90% getSessionAndUser (a random seeded session), 5%
-- updateSession (a random seeded session's expiry moved, as Auth.js does once
-- a day per active session), 5% createSession (a sign-in: a new token for a
-- random seeded user). BENCH_SESSIONS, BENCH_USERS: what was seeded.
-- BENCH_RATE (optional): the offered load in requests per second over all
-- connections (BENCH_CONNECTIONS of them), each pausing a random time
-- (exponential, so arrivals do not fall into step) between its requests;
-- without it, every connection sends its next request at once (saturation).
local secret = os.getenv("BENCH_SECRET")
local sessions = tonumber(os.getenv("BENCH_SESSIONS"))
local users = tonumber(os.getenv("BENCH_USERS"))
local run = os.getenv("BENCH_RUN") or tostring(os.time())
local rate = tonumber(os.getenv("BENCH_RATE") or "0")
local connections = tonumber(os.getenv("BENCH_CONNECTIONS") or "32")
local counter = 0
local prefix = ""
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer " .. secret
wrk.headers["Content-Type"] = "application/json"

function init(args)
  local seed = tonumber(tostring({}):sub(8), 16)
  math.randomseed(os.time() + seed)
  prefix = "m-" .. run .. "-" .. seed .. "-"
end

function request()
  counter = counter + 1
  local pick = math.random(1, 100)
  local expires = string.format("%d", (os.time() + 30 * 86400) * 1000 + counter % 1000)
  if pick <= 90 then
    local body = '{"sessionToken":"bench-session-' .. math.random(0, sessions - 1) .. '"}'
    return wrk.format(nil, "/api/adapter/getSessionAndUser", nil, body)
  elseif pick <= 95 then
    local body = '{"session":{"sessionToken":"bench-session-' .. math.random(0, sessions - 1)
      .. '","expires":' .. expires .. '}}'
    return wrk.format(nil, "/api/adapter/updateSession", nil, body)
  end
  local body = '{"session":{"sessionToken":"' .. prefix .. counter .. '","userId":"user-'
    .. math.random(0, users - 1) .. '","expires":' .. expires .. '}}'
  return wrk.format(nil, "/api/adapter/createSession", nil, body)
end

if rate > 0 then
  -- wrk times each request from its send: the pause is not counted.
  function delay()
    return -math.log(1 - math.random()) * connections * 1000 / rate
  end
end
