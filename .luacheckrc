-- lua/: only globals common to 5.1-5.4 and LuaJIT (specs and benches run on both, so "max").
std = "min"
read_globals = { "ngx", "jit" }
max_line_length = 130
files["spec"] = { std = "max+busted", max_line_length = 140 }
files["bench"] = { std = "max" }
