local d = arg[1]
local p = d .. "/out.txt"
local f = assert(io.open(p, "w"))
for i = 1, 2000 do f:write(i, " ", string.rep("x", i % 50), "\n") end
f:close()
local n, lines = 0, 0
for l in io.lines(p) do n = n + #l; lines = lines + 1 end
print(n, lines)
f = assert(io.open(p, "a")) f:write("end\n") f:close()
f = assert(io.open(p, "r+")) print(f:seek("end", -4), f:read("a")) f:seek("set", 0) f:write("ZZ") f:close()
f = assert(io.open(p, "rb")) local all = f:read("a") f:close() print(#all, all:sub(1, 12))
print(os.rename(p, d .. "/moved.txt"), (select(3, io.open(p))))
f = io.open(d .. "/moved.txt") print(f:read("l"), f:read("n"), f:read(3)) f:close()
local t = io.tmpfile() t:write("temporary") t:seek("set") print(t:read("a")) t:close()
local name = os.tmpname() f = io.open(name, "w") f:write("named") f:close() print(io.open(name):read("a"), os.remove(name))
print(os.remove(d .. "/moved.txt"), (select(3, os.remove(d .. "/moved.txt"))))
