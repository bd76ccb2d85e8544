function request() return purchase(player()) end
