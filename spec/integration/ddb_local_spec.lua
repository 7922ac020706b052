-- Smoke test of scripts/dynamodb-local and spec/support/ddb_local.lua: DynamoDB Local starts,
-- answers a ListTables carrying a fake SigV4 header, and is gone after stop.
-- busted --lua=lua5.4 --lpath='lua/?.lua;lua/?/init.lua;spec/?.lua' spec/integration/ddb_local_spec.lua
local ddb = require "support.ddb_local"
local q = ddb.shell_quote

local FAKE_AUTH = "AWS4-HMAC-SHA256 Credential=fake/20240101/us-east-1/dynamodb/aws4_request, "
    .. "SignedHeaders=host, Signature=0"

-- POST to DynamoDB Local with curl; returns the HTTP status and the body.
local function post(endpoint, target, body, auth)
    local cmd = "curl -s --noproxy '*' --max-time 10 -w '\\n%{http_code}' -X POST " .. q(endpoint .. "/")
        .. " -H 'Content-Type: application/x-amz-json-1.0'"
        .. " -H " .. q("X-Amz-Target: DynamoDB_20120810." .. target)
    if auth then
        cmd = cmd .. " -H " .. q("Authorization: " .. auth)
    end
    cmd = cmd .. " -d " .. q(body or "{}")
    local _, out = ddb.run(cmd)
    local reply, code = out:match("^(.*)\n(%d%d%d)%s*$")
    return tonumber(code), reply or out
end

-- A live DynamoDB Local JVM (a zombie or a recycled pid has another or an empty cmdline).
local function jvm_alive(pid)
    local f = io.open("/proc/" .. tostring(pid) .. "/cmdline", "rb")
    if not f then
        return false
    end
    local cmdline = f:read("*a") or ""
    f:close()
    return cmdline:find("DynamoDBLocal.jar", 1, true) ~= nil
end

local function wait_gone(pid, seconds)
    for _ = 1, seconds * 5 do
        if not jvm_alive(pid) then
            return true
        end
        os.execute("sleep 0.2")
    end
    return not jvm_alive(pid)
end

local function file_exists(path)
    local f = io.open(path, "r")
    if f then
        f:close()
    end
    return f ~= nil
end

-- Runs a Lua chunk in a child process of the same interpreter, with env (a shell prefix)
-- before it; returns its stdout lines.
local function child_lua(env, code)
    local _, exe = ddb.run("readlink /proc/" .. ddb.my_pid() .. "/exe")
    exe = exe:gsub("%s+$", "")
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    f:write("package.path = ", ("%q"):format(ddb.root .. "/spec/?.lua;"), " .. package.path\n", code)
    f:close()
    local _, out = ddb.run(env .. " " .. q(exe) .. " " .. q(path) .. " 2>&1")
    os.remove(path)
    local lines = {}
    for line in out:gmatch("[^\n]+") do
        lines[#lines + 1] = line
    end
    return lines, out
end

describe("DynamoDB Local (scripts/dynamodb-local)", function()
    teardown(function()
        ddb.stop()
    end)

    it("starts on a loopback port and answers ListTables with TableNames", function()
        local endpoint = ddb.start()
        assert.matches("^http://127%.0%.0%.1:%d+$", endpoint)
        local code, reply = post(endpoint, "ListTables", "{}", FAKE_AUTH)
        assert.equals(200, code)
        assert.matches('"TableNames"%s*:%s*%[', reply)
    end)

    it("is started once per process: a second start returns the same endpoint and pid", function()
        local endpoint, pid = ddb.start(), ddb.pid()
        assert.equals(endpoint, ddb.start())
        assert.equals(pid, ddb.pid())
        assert.is_true(jvm_alive(pid))
        local rc, out = ddb.run(q(ddb.script) .. " status --state " .. q(ddb.state_dir()))
        assert.equals(0, rc)
        assert.equals(endpoint, (out:gsub("%s+$", "")))
    end)

    it("accepts any signature but not a request without one", function()
        local endpoint = ddb.start()
        local other = "AWS4-HMAC-SHA256 Credential=someoneelse/20991231/eu-west-3/dynamodb/aws4_request, "
            .. "SignedHeaders=content-type;host;x-amz-date, Signature=" .. ("ab"):rep(32)
        local code, reply = post(endpoint, "ListTables", "{}", other)
        assert.equals(200, code)
        assert.matches('"TableNames"', reply)
        code, reply = post(endpoint, "ListTables", "{}", nil)
        assert.equals(400, code)
        assert.matches("MissingAuthenticationToken", reply)
    end)

    it("stop ends the process and clears its state; stopping again is a no-op", function()
        ddb.start()
        local pid, dir = ddb.pid(), ddb.state_dir()
        assert.is_number(pid)
        assert.is_true(ddb.stop())
        assert.is_true(wait_gone(pid, 5), "DynamoDB Local pid " .. pid .. " still runs after stop")
        assert.is_false(file_exists(dir .. "/pid"))
        assert.is_nil(ddb.pid())
        assert.is_false(ddb.stop())
        local rc = ddb.run(q(ddb.script) .. " stop --state " .. q(dir))
        assert.equals(0, rc)
        rc = ddb.run(q(ddb.script) .. " status --state " .. q(dir) .. " 2>/dev/null")
        assert.equals(3, rc)
    end)

    it("endpoint() prefers $DYNAMODB_ENDPOINT and then starts nothing", function()
        local lines, out = child_lua("DYNAMODB_ENDPOINT=http://127.0.0.1:1",
            'local d = require "support.ddb_local"\n'
            .. "print(d.endpoint()); print(tostring(d.pid()))\n")
        assert.same({ "http://127.0.0.1:1", "nil" }, lines, out)
    end)

    it("leaves no JVM behind when its Lua process is killed", function()
        local lines, out = child_lua("DYNAMODB_ENDPOINT=",
            'local d = require "support.ddb_local"\n'
            .. 'print("EP=" .. d.endpoint()); print("PID=" .. d.pid()); print("DIR=" .. d.state_dir())\n'
            .. 'io.stdout:flush(); os.execute("kill -9 " .. d.my_pid())\n')
        local got = {}
        for _, line in ipairs(lines) do
            local k, v = line:match("^(%u+)=(.*)$")
            if k then
                got[k] = v
            end
        end
        local endpoint, pid, dir = got.EP, tonumber(got.PID or ""), got.DIR
        assert.is_truthy((endpoint or ""):match("^http://127%.0%.0%.1:%d+$"), out)
        assert.is_number(pid, out)
        assert.is_true(wait_gone(pid, 20), "orphaned DynamoDB Local pid " .. pid .. " still runs")
        ddb.run(q(ddb.script) .. " reap")
        assert.is_false(file_exists(dir .. "/owner"), "reap left " .. dir)
    end)
end)
