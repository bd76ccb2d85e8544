-- POST /wallets/batch of batch_size operations (args[3]): top-ups (10) and spends (1) alternating, every
-- reference id unique, each of a random pre-funded player of this thread's own stripe of the players (one
-- connection per thread, args[4] threads: no two connections' batches share a wallet), as scripts/batch.sql
-- does at the SQL level.
function stripe_player()
   return "bench_" .. (tid + stripes * math.random(0, math.max(math.floor(players / stripes), 1) - 1))
end

function request()
   local operations = {}
   for i = 1, batch_size do
      if i % 2 == 1 then
         operations[i] = string.format(
            '{"operation":"topup","user_id":"%s","asset_code":"GOLD_COINS","amount":10,"reference_id":"%s","payment_method":"bench"}',
            stripe_player(), reference())
      else
         operations[i] = string.format(
            '{"operation":"spend","user_id":"%s","asset_code":"GOLD_COINS","amount":1,"reference_id":"%s","item_id":"bench_item"}',
            stripe_player(), reference())
      end
   end
   return wrk.format("POST", "/api/v1/wallets/batch", json_headers,
      '{"operations":[' .. table.concat(operations, ",") .. ']}')
end

-- every operation of a 200 answer must have posted (201): the others count as errors (a non-200 answer is one
-- of wrk's own status errors)
function response(status, headers, body)
   if status == 200 then
      local _, posted = string.gsub(body, '"status":%s*201[,}]', "")
      item_errors = item_errors + batch_size - posted
   end
end
