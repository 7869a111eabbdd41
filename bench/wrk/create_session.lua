-- POST /api/adapter/createSession with a new token every time, for a random
-- seeded user. BENCH_USERS: how many users were seeded.
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
  local body = '{"session":{"sessionToken":"' .. prefix .. counter .. '","userId":"user-'
    .. math.random(0, users - 1) .. '","expires":"2099-01-01T00:00:00.000Z"}}'
  return wrk.format(nil, "/api/adapter/createSession", nil, body)
end

