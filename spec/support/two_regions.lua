-- Two Regions on this machine, for the multi-Region specs (test-only; Lua 5.1+, LuaJIT):
-- two DynamoDB Local instances, the same table in both with a stream (NEW_AND_OLD_IMAGES),
-- spec/support/replicator.py between them (last writer wins, like MREC global tables) and one
-- spec/support/tcpfault.py in front of each (what the library's clients talk to).
--
--   local two = require "support.two_regions"
--   local sim = two.start({ table = "my_spec", regions = { "r1", "r2" }, poll_ms = 20 })
--   sim.table                      -- the table name (default: a fresh "two_regions_..." one)
--   sim.tables                     -- every replicated table: sim.table, then opts.more_tables
--   sim.names                      -- { "r1", "r2" }
--   sim.regions.r1, sim.regions.r2 -- fault proxy URLs: give these to clients / aws.global
--   sim.direct.r1, sim.direct.r2   -- the DynamoDB Locals themselves (no faults)
--   sim:client("r1" [, config])    -- aws.client.new through r1's proxy (fake credentials); closed by stop
--   sim:direct_client("r1" [, config])
--   sim:pause()                    -- partition: the replicator reads and stamps, applies nothing
--   sim:heal()                     -- apply again, the backlog first, in stamp order
--   sim:delay(ms)                  -- apply each record ms after its stamp (0: off)
--   sim:stall("r1"), sim:unstall("r1") -- stop / resume reading r1's stream (r1's writes are not
--                                  -- seen yet, applies to r1 go on): the races LWW must survive
--   sim:drain([timeout_ms])        -- blocks until both directions are caught up -> ms taken;
--                                  -- raises when paused with a backlog, a stream is stalled, or
--                                  -- after timeout_ms (default 30000)
--   sim:stats()                    -- replicator counters: applied["r1->r2"], by_table[t]["r1->r2"], read, echoes,
--                                  -- superseded, repairs, noop, backlog, errors, lag_ms {n,p50,p95,max}
--   sim:reset_stats()
--   sim:fault("r1", mode [, ms])   -- the proxy: "pass" | "delay" (ms) | "blackhole" | "503" | "refuse"
--   sim:proxy_stats("r1")          -- the proxy's counters (requests, forwarded, answered_503, ...)
--   sim:scan("r1" [, table])       -- every item of the table in r1 (direct, consistent), sorted by PK, SK
--   sim:diff([table])              -- differences between the two Regions' scans: a list of strings
--   sim:stop()                     -- stops everything; also at the close of the Lua state, and
--                                  -- (DynamoDB Local's watchdog, the helpers' parent check) when
--                                  -- this process dies
-- The table is made by aws.schema.create_table (streams = true) in both Regions. Everything runs
-- on 127.0.0.1 with its own ports and state folders (.deps/dynamodb-local/lua-<pid>-two<n>-<region>),
-- so specs can run side by side. REPLICATOR_TRACE=FILE makes the replicator log each decision.
local aws = require "authhero.aws"
local cjson = require "cjson"
local ddb = require "support.ddb_local"

local M = {}
local here = debug.getinfo(1, "S").source:match("^@(.*[/\\])") or "./"
local PYTHON = os.getenv("PYTHON") or "python3"
local CREDENTIALS = { accessKeyId = "fakeMyKeyId", secretAccessKey = "fakeSecretAccessKey" }
local sq = ddb.shell_quote

local sim = {}
sim.__index = sim

local seq = 0

-- Starts a python helper; its first line is "PID PORT [PORT2]". exec: the helper's parent is this
-- process, which it watches.
local function spawn(script, args)
    local pipe = assert(io.popen("exec " .. PYTHON .. " " .. sq(here .. script) .. " " .. args, "r"))
    local line = pipe:read("*l")
    local pid, p1, p2 = (line or ""):match("^(%d+) (%d+) ?(%d*)$")
    if not pid then
        pipe:close()
        error(script .. " did not start: " .. tostring(line), 3)
    end
    return { pid = tonumber(pid), port = tonumber(p1), port2 = tonumber(p2), pipe = pipe }
end

local function kill(h)
    if h and h.pid then
        os.execute("kill " .. h.pid .. " 2>/dev/null")
        if h.pipe then h.pipe:close() end
        h.pid, h.pipe = nil, nil
    end
end

-- Both DynamoDB Locals at once (a JVM start is the slow part).
local function start_locals(names, tag)
    local pid = assert(ddb.my_pid(), "two_regions: cannot tell this process's pid")
    local dirs, outs, parts = {}, {}, {}
    ddb.run(sq(ddb.script) .. " reap")
    for i, name in ipairs(names) do
        dirs[i] = ddb.root .. "/.deps/dynamodb-local/lua-" .. pid .. "-" .. tag .. "-" .. name
        outs[i] = os.tmpname()
        parts[#parts + 1] = "(" .. sq(ddb.script) .. " start --state " .. sq(dirs[i]) .. " --owner " .. pid
            .. " >" .. sq(outs[i]) .. ") &"
    end
    local rc, out = ddb.run(table.concat(parts, " ") .. " wait")
    local eps = {}
    for i = 1, #names do
        local f = io.open(outs[i], "r")
        local text = f and f:read("*a") or ""
        if f then f:close() end
        os.remove(outs[i])
        eps[i] = text:match("(http://127%.0%.0%.1:%d+)%s*$")
    end
    return dirs, eps, rc, out
end

local function new_client(url, extra)
    local config = { region = "us-east-1", endpoint = url, credentials = CREDENTIALS }
    for k, v in pairs(extra or {}) do config[k] = v end
    return aws.client.new(config)
end

-- The table with a NEW_AND_OLD_IMAGES stream (aws.schema.create_table's streams option).
local function make_table(client, name)
    aws.schema.create_table(client, { tableName = name, streams = true, timeout = 30 })
    local t = client:call("DescribeTable", { TableName = name }).Table
    assert(t.StreamSpecification and t.StreamSpecification.StreamViewType == "NEW_AND_OLD_IMAGES",
        "two_regions: table " .. name .. " has no NEW_AND_OLD_IMAGES stream")
    return t
end

-- opts: table (name), more_tables (names of further tables, made and replicated the same way),
-- regions (two names, default { "r1", "r2" }), poll_ms (default 20).
function M.start(opts)
    opts = opts or {}
    seq = seq + 1
    local names = opts.regions or { "r1", "r2" }
    assert(#names == 2 and names[1] ~= names[2], "two_regions: two distinct region names expected")
    for _, n in ipairs(names) do assert(n:match("^[%w-]+$"), "two_regions: bad region name " .. n) end
    local self = setmetatable({
        names = names,
        table = opts.table or ("two_regions_" .. os.time() .. "_" .. math.random(1000000)),
        tables = {},
        regions = {},
        direct = {},
        _proxies = {},
        _clients = {},
        _dirs = {},
    }, sim)
    self.tables[1] = self.table
    for _, t in ipairs(opts.more_tables or {}) do self.tables[#self.tables + 1] = t end
    -- stops everything at the close of the Lua state if stop() was not called
    local function finalize() self:stop() end
    if newproxy then
        self._sentinel = newproxy(true)
        getmetatable(self._sentinel).__gc = finalize
    else
        self._sentinel = setmetatable({}, { __gc = finalize })
    end
    local dirs, eps, rc, out = start_locals(names, "two" .. seq)
    self._dirs = dirs
    for i, name in ipairs(names) do
        if not eps[i] then
            self:stop()
            error(("two_regions: DynamoDB Local for %s did not start (exit %d): %s"):format(name, rc, out), 2)
        end
        self.direct[name] = eps[i]
    end
    local ok, err = pcall(function()
        for _, name in ipairs(names) do
            local c = self:direct_client(name)
            for _, t in ipairs(self.tables) do make_table(c, t) end
        end
        local args = {}
        for _, name in ipairs(names) do args[#args + 1] = "--region " .. sq(name .. "=" .. self.direct[name]) end
        for _, t in ipairs(self.tables) do args[#args + 1] = "--table " .. sq(t) end
        args[#args + 1] = "--poll-ms " .. tostring(opts.poll_ms or 20)
        self._replicator = spawn("replicator.py", table.concat(args, " "))
        self._rep_url = "http://127.0.0.1:" .. self._replicator.port
        for _, name in ipairs(names) do
            local p = spawn("tcpfault.py", "--upstream " .. sq(self.direct[name]))
            p.url = "http://127.0.0.1:" .. p.port
            p.control = "http://127.0.0.1:" .. p.port2
            self._proxies[name] = p
            self.regions[name] = p.url
        end
        self._ctl = require("authhero.aws.transport.curl").new({ timeout_ms = 120000 })
    end)
    if not ok then
        self:stop()
        error(err, 2)
    end
    return self
end

function sim.client(self, name, extra)
    assert(self.regions[name], "two_regions: no region " .. tostring(name))
    local c = new_client(self.regions[name], extra)
    self._clients[#self._clients + 1] = c
    return c
end

function sim.direct_client(self, name, extra)
    assert(self.direct[name], "two_regions: no region " .. tostring(name))
    local c = new_client(self.direct[name], extra)
    self._clients[#self._clients + 1] = c
    return c
end

-- POST/GET on a helper's control port -> status, decoded JSON body
function sim._http(self, method, url, body)
    local res = self._ctl:request({ method = method, url = url, body = body and cjson.encode(body) or nil })
    local ok, decoded = pcall(cjson.decode, res.body or "")
    return res.status, ok and decoded or res.body
end

function sim._rep(self, body)
    local status, out = self:_http("POST", self._rep_url .. "/_control", body)
    if status ~= 200 then
        error(("two_regions: replicator %s: %d %s"):format(body.op, status, cjson.encode(out)), 3)
    end
    return out
end

function sim.pause(self) self:_rep({ op = "pause" }) end

function sim.heal(self) self:_rep({ op = "heal" }) end

function sim.delay(self, ms) self:_rep({ op = "delay", ms = ms or 0 }) end

function sim.reset_stats(self) self:_rep({ op = "reset_stats" }) end

function sim.stall(self, name) self:_rep({ op = "stall", region = name }) end

function sim.unstall(self, name) self:_rep({ op = "unstall", region = name }) end

function sim.drain(self, timeout_ms)
    return self:_rep({ op = "drain", timeout_ms = timeout_ms or 30000 }).ms
end

function sim.stats(self)
    local status, out = self:_http("GET", self._rep_url .. "/_stats")
    assert(status == 200, "two_regions: replicator /_stats: " .. tostring(status))
    return out
end

function sim.fault(self, name, mode, ms)
    local p = assert(self._proxies[name], "two_regions: no region " .. tostring(name))
    local status, out = self:_http("POST", p.control .. "/_control", { mode = mode, ms = ms })
    if status ~= 200 then error(("two_regions: fault %s %s: %d %s"):format(name, mode, status, cjson.encode(out)), 2) end
end

function sim.proxy_stats(self, name)
    local p = assert(self._proxies[name], "two_regions: no region " .. tostring(name))
    local status, out = self:_http("GET", p.control .. "/_stats")
    assert(status == 200, "two_regions: tcpfault /_stats: " .. tostring(status))
    return out
end

local function item_id(item)
    return tostring(item.PK) .. "\0" .. tostring(item.SK)
end

-- Every item in the Region (direct, ConsistentRead), sorted by PK then SK.
function sim.scan(self, name, tbl)
    if not self._scanners then self._scanners = {} end
    local c = self._scanners[name]
    if not c then
        c = self:direct_client(name)
        self._scanners[name] = c
    end
    local items = {}
    for page in c:paginate("Scan", { TableName = tbl or self.table, ConsistentRead = true }) do
        for _, it in ipairs(page.Items or {}) do items[#items + 1] = it end
    end
    table.sort(items, function(a, b) return item_id(a) < item_id(b) end)
    return items
end

-- A stable text for an item: keys sorted, nested tables too.
local function render(v)
    if type(v) ~= "table" then return type(v) == "string" and string.format("%q", v) or tostring(v) end
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = k end
    table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
    local parts = {}
    for _, k in ipairs(keys) do parts[#parts + 1] = tostring(k) .. "=" .. render(v[k]) end
    return "{" .. table.concat(parts, ",") .. "}"
end
M.render = render

-- Differences between the two Regions' full scans of tbl (default sim.table); empty when they
-- hold the same items.
function sim.diff(self, tbl)
    local a, b = self.names[1], self.names[2]
    local by = {}
    for _, it in ipairs(self:scan(a, tbl)) do by[item_id(it)] = { render(it) } end
    for _, it in ipairs(self:scan(b, tbl)) do
        local id = item_id(it)
        by[id] = by[id] or {}
        by[id][2] = render(it)
    end
    local out = {}
    for id, pair in pairs(by) do
        if pair[1] ~= pair[2] then
            out[#out + 1] = ("%s: %s=%s %s=%s"):format(id:gsub("%z", " / "), a, tostring(pair[1]), b, tostring(pair[2]))
        end
    end
    table.sort(out)
    return out
end

function sim.stop(self)
    if self._stopped then return end
    self._stopped = true
    for _, c in ipairs(self._clients or {}) do pcall(c.close, c) end
    self._clients = {}
    if self._ctl then pcall(self._ctl.close, self._ctl) end
    self._ctl = nil
    kill(self._replicator)
    for _, p in pairs(self._proxies or {}) do kill(p) end
    for _, dir in ipairs(self._dirs or {}) do
        os.execute(sq(ddb.script) .. " stop --state " .. sq(dir) .. " >/dev/null 2>&1")
        os.execute("rm -rf " .. sq(dir))
    end
    self._dirs = {}
end


return M
