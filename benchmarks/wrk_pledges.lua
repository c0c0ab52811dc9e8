-- wrk script: POST donation pledges with unique client references, for latency under load.
-- Environment: PLEDGE_AUTH (base64 of "username:password" from `clientstats client
-- credentials CLIENT`), PLEDGE_PATH (e.g. /de/api_v4/clients/volksfreund/projects/1000/donation_pledges.json).
-- Run: PLEDGE_AUTH=... PLEDGE_PATH=... wrk -t1 -c16 -d8s --latency -s benchmarks/wrk_pledges.lua http://127.0.0.1:PORT
local auth = os.getenv("PLEDGE_AUTH")
local path = os.getenv("PLEDGE_PATH")
local counter = 0
math.randomseed(os.time())
local prefix = tostring(math.random(1, 1000000000))

request = function()
  counter = counter + 1
  local body = '{"amount_in_cents":1000,"client_reference":"w' .. prefix .. '-' .. counter
    .. '","tracking_via":"wrk","first_name":"Erika","last_name":"Mustermann",'
    .. '"email":"erika@example.org","street":"Hauptstr. 1","city":"Trier","zip":"54290",'
    .. '"country_code":"DE"}'
  return wrk.format("POST", path,
    {["Content-Type"] = "application/json", ["Authorization"] = "Basic " .. auth}, body)
end

done = function(summary, latency, requests)
  io.write("non-2xx or socket errors: " .. summary.errors.status .. " / "
    .. (summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout) .. "\n")
end
