-- DynamoDB Local for integration specs (Lua 5.1+, LuaJIT).
--
--   local ddb = require "support.ddb_local"   -- busted's lpath has spec/?.lua (see .busted)
--   local url = ddb.endpoint()                -- $DYNAMODB_ENDPOINT, else a local instance
--   ...
--   teardown(function() ddb.stop() end)       -- or leave it to the exit of the process
--
-- ddb.endpoint() returns $DYNAMODB_ENDPOINT when set (then nothing is started or stopped);
-- otherwise it starts DynamoDB Local through scripts/dynamodb-local, once per Lua process, in a
-- state folder of its own (.deps/dynamodb-local/lua-<pid>), so parallel test runs never share
-- or stop each other's instance. It is stopped by ddb.stop(), else when the Lua state closes
-- (busted closes it on exit), else by the script's watchdog once this process is gone (crash,
-- kill -9). Folders left by dead processes are reaped at the next start.
-- The database is in memory and shared by every access key and region (-sharedDb): use table
-- names unique to a spec file if files may share one instance.
local M = {}

-- Survives busted's insulate(), which restores package.loaded and _G after each file: one
-- instance per process, whichever copy of this module asks.
local REG_KEY = "authhero.spec.ddb_local"
local registry = debug.getregistry()
local S = registry[REG_KEY]
if type(S) ~= "table" then
    S = {}
    registry[REG_KEY] = S
end

local function shell_quote(s)
    return "'" .. (tostring(s):gsub("'", "'\\''")) .. "'"
end
M.shell_quote = shell_quote

-- Runs a shell command; returns its exit code and stdout (stderr goes to the terminal).
local function run(cmd)
    local p = assert(io.popen(cmd .. '; echo "__rc=$?"', "r"))
    local out = p:read("*a") or ""
    p:close()
    local rc = tonumber(out:match("__rc=(%d+)%s*$")) or -1
    out = out:gsub("__rc=%d+%s*$", "")
    return rc, out
end
M.run = run

local function last_line(s)
    local last
    for line in s:gmatch("[^\n]+") do
        last = line
    end
    return last
end

local function read_first_line(path)
    local f = io.open(path, "r")
    if not f then
        return nil
    end
    local line = f:read("*l")
    f:close()
    return line
end

-- The repository's root, from where this file was loaded.
local function find_root()
    local src = debug.getinfo(1, "S").source
    local file = src:sub(1, 1) == "@" and src:sub(2) or ""
    local root = file:match("^(.-)/?spec/support/ddb_local%.lua$")
    if root == nil or root == "" then
        root = "."
    end
    if root:sub(1, 1) ~= "/" then
        local cwd = os.getenv("PWD")
        if not cwd or cwd == "" then
            local _, out = run("pwd")
            cwd = last_line(out) or "."
        end
        root = (root == ".") and cwd or (cwd .. "/" .. root:gsub("^%./", ""))
    end
    return root
end

M.root = find_root()
M.script = os.getenv("DDB_LOCAL_SCRIPT") or (M.root .. "/scripts/dynamodb-local")

-- Pid of this Lua process: the parent of the shell that io.popen starts.
local function my_pid()
    if not S.my_pid then
        local _, out = run("echo $PPID")
        S.my_pid = tonumber(last_line(out) or "")
    end
    return S.my_pid
end
M.my_pid = my_pid

local function stop_cmd(dir)
    return shell_quote(M.script) .. " stop --state " .. shell_quote(dir)
end

-- Stops the instance at the close of the Lua state (os.exit(code, true), or the end of the
-- script). A userdata on Lua 5.1/LuaJIT, where tables have no __gc.
local function arm_finalizer()
    if S.sentinel then
        return
    end
    local function finalize()
        if S.dir then
            os.execute(stop_cmd(S.dir) .. " >/dev/null 2>&1")
            S.dir, S.endpoint, S.pid = nil, nil, nil
        end
    end
    if newproxy then
        local u = newproxy(true)
        getmetatable(u).__gc = finalize
        S.sentinel = u
    else
        S.sentinel = setmetatable({}, { __gc = finalize })
    end
end

-- Starts (or finds) this process's DynamoDB Local, ignoring $DYNAMODB_ENDPOINT; returns its URL.
function M.start()
    if S.endpoint then
        return S.endpoint
    end
    local pid = assert(my_pid(), "ddb_local: cannot tell this process's pid")
    local dir = M.root .. "/.deps/dynamodb-local/lua-" .. pid
    run(shell_quote(M.script) .. " reap")
    local rc, out = run(shell_quote(M.script) .. " start --state " .. shell_quote(dir) .. " --owner " .. pid)
    local ep = last_line(out)
    if rc ~= 0 or not ep or not ep:match("^http://127%.0%.0%.1:%d+$") then
        error(("ddb_local: %s start failed (exit %d); its output:\n%s"):format(M.script, rc, out), 2)
    end
    S.dir, S.endpoint = dir, ep
    S.pid = tonumber(read_first_line(dir .. "/pid") or "")
    arm_finalizer()
    return ep
end

-- $DYNAMODB_ENDPOINT if set, else this process's DynamoDB Local (started on first use).
function M.endpoint()
    local env = os.getenv("DYNAMODB_ENDPOINT")
    if env and env ~= "" then
        return env
    end
    return M.start()
end

-- Stops the instance this process started; true if there was one. Safe to call repeatedly.
function M.stop()
    if not S.dir then
        return false
    end
    local rc, out = run(stop_cmd(S.dir))
    S.dir, S.endpoint, S.pid = nil, nil, nil
    if rc ~= 0 then
        error(("ddb_local: stop failed (exit %d): %s"):format(rc, out), 2)
    end
    return true
end

-- The JVM's pid and the state folder of the running instance (nil when none was started here).
function M.pid()
    return S.pid
end

function M.state_dir()
    return S.dir
end

return M
