-- POST /api/adapter/getAccount for random seeded accounts of one provider.
-- BENCH_SECRET: the server's secret; BENCH_ACCOUNTS: accounts seeded per
-- provider; BENCH_PROVIDER: "sealed" (three OAuth tokens each, stored sealed
-- under the KEK) or "plain" (the same bytes in fields of its own, stored as
-- they come).
local secret = os.getenv("BENCH_SECRET")
local accounts = tonumber(os.getenv("BENCH_ACCOUNTS"))
local provider = os.getenv("BENCH_PROVIDER")
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer " .. secret
wrk.headers["Content-Type"] = "application/json"

function init(args)
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
end

function request()
  local body = '{"provider":"' .. provider .. '","providerAccountId":"' .. math.random(0, accounts - 1) .. '"}'
  return wrk.format(nil, "/api/adapter/getAccount", nil, body)
end
