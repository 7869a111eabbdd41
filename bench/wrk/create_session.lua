-- POST /api/adapter/createSession with a new token every time, for a random
-- seeded user, expiring 30 days from now (as Auth.js sets it: later sessions
-- expire later). BENCH_USERS: how many users were seeded.
local secret = os.getenv("BENCH_SECRET")
local users = tonumber(os.getenv("BENCH_USERS"))
local run = os.getenv("BENCH_RUN") or tostring(os.time())
local counter = 0
local prefix = ""
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer " .. secret
wrk.headers["Content-Type"] = "application/json"

function init(args)
  local seed = tonumber(tostring({}):sub(8), 16)
  math.randomseed(os.time() + seed)
  prefix = "w-" .. run .. "-" .. seed .. "-"
end

function request()
  counter = counter + 1
  local expires = string.format("%d", (os.time() + 30 * 86400) * 1000 + counter % 1000)
  local body = '{"session":{"sessionToken":"' .. prefix .. counter .. '","userId":"user-'
    .. math.random(0, users - 1) .. '","expires":' .. expires .. '}}'
  return wrk.format(nil, "/api/adapter/createSession", nil, body)
end

