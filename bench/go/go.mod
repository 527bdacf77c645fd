module ssebench

go 1.19
