function request()
   local r = math.random(1, 100)
   if r <= 35 then return balance(player()) end
   if r <= 70 then return history(player()) end
   if r <= 85 then return topup(player()) end
   return spend(player())
end
