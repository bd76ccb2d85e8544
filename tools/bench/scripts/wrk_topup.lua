function request() return topup(player()) end
