function request() return spend(player()) end
