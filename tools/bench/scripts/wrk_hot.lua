function request()
   if math.random(1, 2) == 1 then return topup("bench_hot") end
   return spend("bench_hot")
end
