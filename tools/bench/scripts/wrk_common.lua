-- Shared by every wrk scenario (the scenario's request() is appended after this file):
-- a random pre-funded player, a unique reference id per request, and one summary line at the end.
local threads = {}

function setup(thread)
   thread:set("tid", #threads + 1)
   table.insert(threads, thread)
end

function init(args)
   players = tonumber(args[1]) or 10000
   -- args[2]: the API key (httpload.run_wrk); every request sends it
   auth_headers = { ["Authorization"] = "Bearer " .. (args[2] or "") }
   json_headers = { ["Content-Type"] = "application/json", ["Authorization"] = auth_headers["Authorization"] }
   -- args[3]: a batch scenario's operations per request (httpload.run_wrk; 0 for the other scenarios)
   batch_size = tonumber(args[3]) or 0
   -- args[4]: wrk's threads (httpload.run_wrk): a batch scenario's stripes of the players, one per thread
   stripes = tonumber(args[4]) or 1
   item_errors = 0 -- operations of a 200 batch answer that did not post (wrk_batch.lua's response())
   math.randomseed(os.time() * 1000 + tid)
   prefix = string.format("http-%d-%d-%d", os.time(), tid, math.random(1, 1000000000))
   counter = 0
end

function player()
   return "bench_" .. math.random(1, players)
end

function reference()
   counter = counter + 1
   return prefix .. "-" .. counter
end


function topup(user)
   return wrk.format("POST", "/api/v1/wallets/topup", json_headers, string.format(
      '{"user_id":"%s","asset_code":"GOLD_COINS","amount":10,"reference_id":"%s","payment_method":"bench"}',
      user, reference()))
end

function spend(user)
   return wrk.format("POST", "/api/v1/wallets/spend", json_headers, string.format(
      '{"user_id":"%s","asset_code":"GOLD_COINS","amount":1,"reference_id":"%s","item_id":"bench_item"}',
      user, reference()))
end

-- a purchase of 2 assets, 1 of each (sqlload.PURCHASE_ASSETS; the players are funded in both)
function purchase(user)
   return wrk.format("POST", "/api/v1/wallets/purchase", json_headers, string.format(
      '{"user_id":"%s","reference_id":"%s","item_id":"bench_bundle","price":[{"asset_code":"GOLD_COINS","amount":1},{"asset_code":"DIAMONDS","amount":1}]}',
      user, reference()))
end

function balance(user)
   return wrk.format("GET", "/api/v1/wallets/" .. user .. "/balance?asset_code=GOLD_COINS", auth_headers)
end

function history(user)
   return wrk.format("GET", "/api/v1/wallets/" .. user .. "/transactions?asset_code=GOLD_COINS&limit=50", auth_headers)
end

function done(summary, latency, requests)
   local e = summary.errors
   local items = 0
   for _, thread in ipairs(threads) do
      items = items + (tonumber(thread:get("item_errors")) or 0)
   end
   io.write(string.format(
      "WRKRESULT requests=%d duration_us=%d connect=%d read=%d write=%d status=%d timeout=%d p50=%d p95=%d p99=%d items=%d\n",
      summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(95), latency:percentile(99), items))
end
