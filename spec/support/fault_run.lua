-- Issue 12's fault run: AuthHero-shaped writes through a fault-injecting proxy (spec/support/faultd.py
-- --proxy) in front of DynamoDB Local, then the table read back directly to count, per kind of write:
--   lost             reported as success, not in the table
--   failed_applied   reported as an error, yet in the table (the "409 for your own signup" of the issue)
--   twice            applied twice (only observable for counters and login counts)
--   maybe            ended in an error with maybe_applied (the caller was told the outcome is unknown;
--                    counted apart, with how many of them had been applied, and not as successes)
--   ok / total       the success rate, with the client's default settings
-- Kinds: user signups with a password (users.create: one TransactWriteItems), reads (users.get,
-- sessions.get), login-count updates (users.update, as AuthHero does after a login: read, then
-- login_count + 1), session creates (sessions.create: a conditional PutItem), the CLI import
-- (bin/authhero-dynamo import against the proxy, checked with verify against DynamoDB Local), and
-- raw counters (UpdateItem ADD, not idempotent: never re-sent after a failure the server may have
-- acted on, so such a call ends in an error with maybe_applied; those are counted apart).
--
--   local fr = require "support.fault_run"
--   local report = fr.run({ n = 600, workers = 4 })   -- n writes of each kind in all
--   print(fr.format(report))
-- Used by spec/integration/exactly_once_spec.lua (small n) and scripts/fault-run (README figures).
local aws = require "authhero.aws"
local core = require "authhero.aws.core"
local cjson = require "cjson"

local M = {}

-- The issue's rates: 20% throttling, 5% 500s (half of them after the write was forwarded), 2% resets
-- before forwarding, 2% after the upstream replied.
M.RATES = { throttle = 0.20, ["500"] = 0.025, ["500_after"] = 0.025, reset = 0.02, reset_after = 0.02 }

local CREDS = { accessKeyId = "AKIDFAULTRUN", secretAccessKey = "fault-run-secret" }
local TENANT = "faultrun"

local here = debug.getinfo(1, "S").source:match("^@(.*[/\\])") or "./"
local ROOT = here .. "../.."

local function q(s)
    return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function client(endpoint, extra)
    local config = { region = "us-east-1", endpoint = endpoint, credentials = CREDS }
    for k, v in pairs(extra or {}) do config[k] = v end
    return aws.client.new(config)
end

local function control(ctl_client, base, body)
    local res = ctl_client:request({ method = "POST", url = base .. "/_control", body = cjson.encode(body) })
    assert(res.status == 200, "faultd /_control: " .. tostring(res.status))
end

local function proxy_stats(ctl_client, base)
    local res = ctl_client:request({ method = "GET", url = base .. "/_stats" })
    local t = {}
    for name, value in res.body:gmatch("(%S+) (%S+)\n") do t[name] = tonumber(value) or value end
    return t
end

-- outcome of pcall(f, ...) as a line field: "ok", or "err:<code>:<maybe 0/1>"
local function outcome(ok, err)
    if ok then return "ok" end
    if type(err) == "table" then
        return "err:" .. tostring(err.code) .. ":" .. (err.maybe_applied and "1" or "0")
    end
    return "err:bug:0:" .. tostring(err):gsub("%s", "_")
end

local function ids(run, w, k)
    local tag = run .. "-" .. w .. "-" .. k
    return "auth2|fr-" .. tag, "fr" .. tag .. "@example.com", "sess-" .. tag, "COUNTER#" .. tag
end

-- One worker: n of each kind against the proxy, with the client's defaults. Writes one line per
-- operation to out: "<kind> <id> <outcome>".
function M.worker(proxy, tbl, run, w, n, out)
    local c = client(proxy)
    local a = aws.create_adapters(c, { tableName = tbl })
    local function rec(kind, id, ok, err)
        out:write(kind, " ", id, " ", outcome(ok, err), "\n")
        out:flush()
        if not ok and kind ~= "counter" then io.stderr:write(kind, " ", id, ": ", tostring(err), "\n") end
        return ok
    end
    for k = 1, n do
        local uid, email, sid, counter = ids(run, w, k)
        local signed = rec("signup", uid, pcall(a.users.create, TENANT, {
            user_id = uid, email = email, connection = "Username-Password-Authentication", provider = "auth2",
            password = { hash = "$2a$10$" .. string.rep("x", 53), algorithm = "bcrypt" },
        }))
        if signed then
            local ok, user = pcall(a.users.get, TENANT, uid)
            rec("read", uid, ok, user)
            if ok and user == nil then rec("read_missing", uid, true) end
            if ok and user then -- a login, as AuthHero records it: the count read plus one
                rec("login", uid, pcall(a.users.update, TENANT, uid, {
                    login_count = (user.login_count or 0) + 1, last_login = os.date("!%Y-%m-%dT%H:%M:%S.000Z"),
                }))
            end
        end
        local created = rec("session", sid, pcall(a.sessions.create, TENANT, {
            id = sid, user_id = uid, login_session_id = "ls-" .. sid, clients = core.array({ "app" }),
            expires_at = os.date("!%Y-%m-%dT%H:%M:%S.000Z", os.time() + 86400),
        }))
        if created then
            local ok, s = pcall(a.sessions.get, TENANT, sid)
            rec("read", sid, ok, s)
            if ok and s == nil then rec("read_missing", sid, true) end
        end
        rec("counter", counter, pcall(c.call, c, "UpdateItem", {
            TableName = tbl, Key = { PK = "FAULTRUN#" .. run, SK = counter },
            UpdateExpression = "ADD #n :one", ExpressionAttributeNames = { ["#n"] = "n" },
            ExpressionAttributeValues = { [":one"] = 1 },
        }))
    end
    c:close()
end

-- The import file: m users with passwords, one JSON line each.
local function write_import(path, run, m)
    local f = assert(io.open(path, "w"))
    for i = 1, m do
        f:write(cjson.encode({ entity = "users", tenant_id = TENANT .. "-import", record = {
            user_id = "auth2|imp-" .. run .. "-" .. i, email = "imp" .. run .. "-" .. i .. "@example.com",
            connection = "Username-Password-Authentication", provider = "auth2",
            created_at = "2025-01-01T00:00:00.000Z", updated_at = "2025-01-01T00:00:00.000Z",
            password = { hash = "$2a$10$" .. string.rep("y", 53), algorithm = "bcrypt" },
        } }), "\n")
    end
    f:close()
end

local function sh(cmd)
    local p = assert(io.popen(cmd .. " 2>&1; echo \"__rc=$?\"", "r"))
    local out = p:read("*a")
    p:close()
    local rc = tonumber(out:match("__rc=(%d+)%s*$"))
    return rc, (out:gsub("__rc=%d+%s*$", ""))
end

local function last_json(text)
    local line
    for l in text:gmatch("[^\n]+") do
        if l:sub(1, 1) == "{" then line = l end
    end
    return line and cjson.decode(line)
end

local function new_counts()
    return { total = 0, ok = 0, lost = 0, failed_applied = 0, twice = 0, errors = {}, maybe = 0, maybe_applied = 0 }
end

local function count_error(c, field)
    local code = field:match("^err:([^:]+)") or field
    if field:sub(-2) == ":1" then code = code .. " (maybe_applied)" end
    c.errors[code] = (c.errors[code] or 0) + 1
end

-- run(opts) -> report. opts: n (writes of each kind, default 600), workers (processes, default 4),
-- import (records, default n), rates (default M.RATES), seed, lua (interpreter for the workers,
-- default "lua5.4"), direct (a DynamoDB endpoint; default: this process's DynamoDB Local),
-- log (function(text) for progress; default none).
function M.run(opts)
    opts = opts or {}
    local n, workers = opts.n or 600, opts.workers or 4
    local per = math.ceil(n / workers)
    local log = opts.log or function() end
    local direct = opts.direct or require("support.ddb_local").endpoint()
    local run = tostring(os.time()) .. tostring(math.random(1000, 9999))
    local tbl = "faultrun-" .. run
    local dc = client(direct)
    aws.schema.create_table(dc, { tableName = tbl })

    -- the proxy (exec: its parent is this process, so it exits by itself if we die)
    local pipe = assert(io.popen("exec " .. (os.getenv("PYTHON") or "python3") .. " " .. q(here .. "faultd.py")
        .. " --proxy " .. q(direct), "r"))
    local banner = pipe:read("*l")
    local pid, port = (banner or ""):match("^(%d+) (%d+)$")
    assert(pid, "faultd.py --proxy did not start: " .. tostring(banner))
    local proxy = "http://127.0.0.1:" .. port
    local ctl = require("authhero.aws.transport.curl").new({ timeout_ms = 10000 })
    local report
    local ok, err = pcall(function()
        control(ctl, proxy, { rates = opts.rates or M.RATES, seed = opts.seed or tonumber(run:sub(-6)),
            reset_stats = true })
        local t0 = core.now()
        -- workers: this module in other processes, each writing its outcomes to a file
        local lua = opts.lua or "lua5.4"
        local setup = "package.path=" .. string.format("%q", package.path) .. " package.cpath="
            .. string.format("%q", package.cpath)
        local files, cmds = {}, {}
        for w = 1, workers do
            files[w] = os.tmpname()
            cmds[w] = lua .. " -e " .. q(setup .. " require('support.fault_run').worker(" .. string.format("%q", proxy)
                .. ", " .. string.format("%q", tbl) .. ", " .. string.format("%q", run) .. ", " .. w .. ", " .. per
                .. ", io.stdout)") .. " > " .. q(files[w]) .. " 2>" .. q(files[w] .. ".err") .. " &"
        end
        log(string.format("%d workers x %d of each kind through %s", workers, per, proxy))
        local rc, out = sh(table.concat(cmds, " ") .. " wait")
        assert(rc == 0, "workers: " .. out)

        -- the CLI import through the proxy, verified against DynamoDB Local
        local m = opts.import or n
        local file, rep = os.tmpname(), os.tmpname()
        write_import(file, run, m)
        local env = "AWS_ACCESS_KEY_ID=" .. CREDS.accessKeyId .. " AWS_SECRET_ACCESS_KEY=" .. CREDS.secretAccessKey
            .. " AWS_REGION=us-east-1 "
        local cli = env .. q(ROOT .. "/bin/authhero-dynamo")
        log("import of " .. m .. " users through the proxy")
        local _, iout = sh(cli .. " import " .. q(file) .. " --endpoint " .. q(proxy) .. " --table " .. q(tbl)
            .. " --json --quiet --report " .. q(rep))
        local isum = last_json(iout) or error("import printed no summary: " .. iout)
        local _, vout = sh(cli .. " verify " .. q(file) .. " --endpoint " .. q(direct) .. " --table " .. q(tbl)
            .. " --json --quiet --no-extra --max 1000000")
        local vsum = last_json(vout) or error("verify printed no summary: " .. vout)
        local elapsed = core.now() - t0

        report = { n = per * workers, workers = workers, seconds = elapsed, kinds = {}, proxy = proxy_stats(ctl, proxy) }
        local K = report.kinds
        for _, kind in ipairs({ "signup", "session", "login", "read", "import", "counter" }) do K[kind] = new_counts() end
        K.read.missing = 0

        -- outcomes, checked against the table
        local a = aws.create_adapters(dc, { tableName = tbl })
        for w = 1, workers do
            local f = assert(io.open(files[w]))
            for line in f:lines() do
                local kind, id, field = line:match("^(%S+) (%S+) (%S+)$")
                assert(kind, "worker " .. w .. ": " .. line)
                local c = K[kind]
                local ok_ = field == "ok"
                if kind == "read_missing" then
                    K.read.missing = K.read.missing + 1
                    c = nil
                end
                if c then
                    c.total = c.total + 1
                    if ok_ then c.ok = c.ok + 1 else count_error(c, field) end
                end
                local present
                if kind == "signup" then
                    present = a.users.get(TENANT, id) ~= nil and a.passwords.get(TENANT, id) ~= nil
                elseif kind == "session" then
                    present = a.sessions.get(TENANT, id) ~= nil
                elseif kind == "login" then
                    local u = a.users.get(TENANT, id)
                    local times = u and u.login_count or 0 -- every user starts at 0 and gets one login
                    present = times >= 1
                    if times > 1 then c.twice = c.twice + 1 end
                elseif kind == "counter" then
                    local it = dc:call("GetItem", { TableName = tbl, Key = { PK = "FAULTRUN#" .. run, SK = id },
                        ConsistentRead = true }).Item
                    local times = it and it.n or 0
                    present = times >= 1
                    if times > 1 then c.twice = c.twice + 1 end
                end
                if c and present ~= nil and not ok_ and field:sub(-2) == ":1" then
                    -- the caller was told "may have been applied": neither lost nor a false failure
                    c.maybe = c.maybe + 1
                    if present then c.maybe_applied = c.maybe_applied + 1 end
                    present = nil
                end
                if c and present ~= nil then
                    if ok_ and not present then c.lost = c.lost + 1 end
                    if not ok_ and present then c.failed_applied = c.failed_applied + 1 end
                end
            end
            f:close()
            local ef = io.open(files[w] .. ".err")
            local errtext = ef and ef:read("*a") or ""
            if ef then ef:close() end
            report.worker_stderr = (report.worker_stderr or "") .. errtext
            os.remove(files[w])
            os.remove(files[w] .. ".err")
        end

        -- the import: lines the CLI reported failed, and the lines verify finds missing or different
        local failed_lines, wrong_lines = {}, {}
        local rf = io.open(rep)
        if rf then
            for l in rf:lines() do
                local p = cjson.decode(l)
                if p.status == "failed" then failed_lines[p.line] = true end
            end
            rf:close()
        end
        for _, d in ipairs(vsum.list or {}) do wrong_lines[d.line] = true end
        local I = K.import
        I.total = m
        for line = 1, m do
            if failed_lines[line] then
                count_error(I, "failed")
                if not wrong_lines[line] then I.failed_applied = I.failed_applied + 1 end
            else
                I.ok = I.ok + 1
                if wrong_lines[line] then I.lost = I.lost + 1 end
            end
        end
        I.summary = { written = isum.written, failed = isum.failed, skipped = isum.skipped, retries = isum.retries,
            differences = vsum.differences }
        os.remove(file)
        os.remove(rep)
    end)
    pcall(ctl.close, ctl)
    os.execute("kill " .. pid .. " 2>/dev/null")
    pipe:close()
    pcall(dc.call, dc, "DeleteTable", { TableName = tbl })
    dc:close()
    if not ok then error(err, 0) end

    -- the totals the targets are about: every AuthHero-shaped write and read, and the import
    local T = { total = 0, ok = 0, lost = 0, failed_applied = 0, twice = 0, maybe = 0, maybe_applied = 0 }
    for _, kind in ipairs({ "signup", "session", "login", "read", "import" }) do
        local c = report.kinds[kind]
        for f in pairs(T) do T[f] = T[f] + c[f] end
    end
    T.success_rate = T.total > 0 and T.ok / T.total or 0
    report.totals = T
    return report
end

local function pct(a, b)
    return b > 0 and string.format("%.2f%%", 100 * a / b) or "-"
end

-- A report as the README's table (markdown) plus the injected faults.
function M.format(r)
    local lines = {
        "| writes | total | succeeded | lost | reported failed, applied | applied twice | error said \"may have been "
            .. "applied\" (were) |",
        "|---|---|---|---|---|---|---|",
    }
    local names = { signup = "user signups with a password (users.create)", session = "session creates",
        login = "login-count updates (users.update)", read = "reads (users.get, sessions.get)",
        import = "CLI import (users with passwords)" }
    for _, kind in ipairs({ "signup", "session", "login", "read", "import" }) do
        local c = r.kinds[kind]
        local maybe = (kind == "read" or kind == "import") and "-" or string.format("%d (%d)", c.maybe, c.maybe_applied)
        lines[#lines + 1] = string.format("| %s | %d | %d (%s) | %d | %d | %s | %s |", names[kind], c.total, c.ok,
            pct(c.ok, c.total), c.lost, c.failed_applied, (kind == "login") and tostring(c.twice) or "-", maybe)
    end
    local errs = {}
    for _, kind in ipairs({ "signup", "session", "login", "read", "import", "counter" }) do
        local codes = {}
        for code, k in pairs(r.kinds[kind].errors) do codes[#codes + 1] = code .. " x" .. k end
        table.sort(codes)
        if #codes > 0 then errs[#errs + 1] = kind .. ": " .. table.concat(codes, ", ") end
    end
    local T = r.totals
    lines[#lines + 1] = string.format("| **all of the above** | %d | %d (%s) | %d | %d | %d | %d (%d) |", T.total, T.ok,
        pct(T.ok, T.total), T.lost, T.failed_applied, T.twice, T.maybe, T.maybe_applied)
    local C = r.kinds.counter
    lines[#lines + 1] = ""
    lines[#lines + 1] = string.format("Raw UpdateItem ADD counters (not idempotent): %d calls, %d succeeded, %d lost, "
        .. "%d reported failed yet applied, %d applied twice; %d ended in an error with maybe_applied (%d of them "
        .. "had been applied).", C.total, C.ok, C.lost, C.failed_applied, C.twice, C.maybe, C.maybe_applied)
    local p = r.proxy
    local req = p.requests or 0
    lines[#lines + 1] = string.format("Proxy: %d requests; throttled %d (%s), 500 before %d, 500 after the write %d, "
        .. "reset before %d, reset after the reply %d; %d upstream errors. %d workers, %.0f s.", req,
        p["fault.throttle"] or 0, pct(p["fault.throttle"] or 0, req), p["fault.500"] or 0, p["fault.500_after"] or 0,
        p["fault.reset"] or 0, p["fault.reset_after"] or 0, p.upstream_errors or 0, r.workers, r.seconds)
    if #errs > 0 then lines[#lines + 1] = "Errors raised: " .. table.concat(errs, "; ") .. "." end
    return table.concat(lines, "\n")
end

return M
