-- authhero.aws.metrics: the counters it keeps from on_request events, and render()'s Prometheus
-- text format (0.0.4), parsed back here: HELP/TYPE before every family's samples, label escaping,
-- cumulative histogram buckets with +Inf, _sum and _count; the shared_dict mode with a stand-in for
-- ngx.shared (scripts/openresty-test runs the real one in nginx).
local aws = require "authhero.aws"
local metrics = require "authhero.aws.metrics"
local cjson = require "cjson"

-- label values: "..." with \\, \" and \n escapes -> { name = value }
local function parse_labels(s)
    local out, i = {}, 1
    while i <= #s do
        local name, j = s:match("^([%a_][%w_]*)=\"()", i)
        assert(name, "bad labels at " .. i .. ": " .. s)
        local buf = {}
        i = j
        while true do
            local c = s:sub(i, i)
            assert(c ~= "", "unterminated label value: " .. s)
            if c == "\\" then
                local n = s:sub(i + 1, i + 1)
                assert(n == "\\" or n == '"' or n == "n", "bad escape \\" .. n)
                buf[#buf + 1] = n == "n" and "\n" or n
                i = i + 2
            elseif c == '"' then
                i = i + 1
                break
            else
                assert(c ~= "\n", "raw line feed in a label value")
                buf[#buf + 1] = c
                i = i + 1
            end
        end
        out[name] = table.concat(buf)
        if s:sub(i, i) == "," then i = i + 1 end
    end
    return out
end

-- text -> { types = {name = type}, help = {name = text}, samples = { {name, labels, value} } };
-- fails on anything the format does not allow.
local function parse(text)
    assert(text:sub(-1) == "\n", "the text must end with a line feed")
    local r = { types = {}, help = {}, samples = {} }
    local family_of = function(name)
        for _, suffix in ipairs({ "_bucket", "_sum", "_count" }) do
            local base = name:match("^(.*)" .. suffix .. "$")
            if base and r.types[base] == "histogram" then return base end
        end
        return name
    end
    for line in text:gmatch("([^\n]*)\n") do
        if line:sub(1, 1) == "#" then
            local kind, name, rest = line:match("^# (%u+) ([%a_:][%w_:]*) (.*)$")
            assert(kind == "HELP" or kind == "TYPE", "bad comment line: " .. line)
            if kind == "TYPE" then
                assert(rest == "counter" or rest == "histogram" or rest == "gauge", line)
                assert(r.types[name] == nil, "two TYPE lines for " .. name)
                r.types[name] = rest
            else
                r.help[name] = rest
            end
        else
            local name, labels, value = line:match("^([%a_:][%w_:]*){(.*)} (%S+)$")
            if not name then name, value = line:match("^([%a_:][%w_:]*) (%S+)$") end
            assert(name, "bad sample line: " .. line)
            local v = value == "+Inf" and math.huge or tonumber(value)
            assert(v, "bad value: " .. line)
            local fam = family_of(name)
            assert(r.types[fam], "sample before its TYPE line: " .. line)
            assert(r.help[fam], "sample without HELP: " .. line)
            r.samples[#r.samples + 1] = { name = name, labels = parse_labels(labels or ""), value = v }
        end
    end
    return r
end

-- the value of the one sample with that name and those labels (all of them), or nil
local function value(r, name, labels)
    local found
    for _, s in ipairs(r.samples) do
        if s.name == name then
            local same = true
            for k, v in pairs(labels) do if s.labels[k] ~= v then same = false end end
            for k in pairs(s.labels) do if labels[k] == nil then same = false end end
            if same then
                assert(found == nil, "two samples " .. name .. cjson.encode(labels))
                found = s.value
            end
        end
    end
    return found
end

local P = "authhero_dynamodb"

describe("metrics", function()
    it("counts requests, errors by code, retries, capacity and bytes per operation and table", function()
        local m = metrics.new()
        local observe = m.observe -- a plain function: no self
        observe({ op = "GetItem", table = "t", status = 200, attempt = 1, latency_ms = 3, bytes_sent = 40,
            bytes_received = 100, consumed_capacity = { TableName = "t", CapacityUnits = 0.5 } })
        observe({ op = "GetItem", table = "t", status = 400, code = "ThrottlingException", attempt = 1,
            latency_ms = 2, bytes_sent = 40, bytes_received = 60, retry = true })
        observe({ op = "GetItem", table = "t", status = 0, code = "TransportError", reason = "reset", attempt = 2,
            latency_ms = 20, bytes_sent = 40, bytes_received = 0, retry = true })
        observe({ op = "GetItem", table = "t", status = 200, attempt = 3, latency_ms = 4, bytes_sent = 40,
            bytes_received = 100, consumed_capacity = { TableName = "t", CapacityUnits = 0.5 } })
        observe({ op = "PutItem", table = "t", status = 200, attempt = 1, latency_ms = 7,
            consumed_capacity = { TableName = "t", CapacityUnits = 1 } })
        observe({ op = "TransactWriteItems", table = "a, b", status = 200, attempt = 1, latency_ms = 12,
            consumed_capacity = { { TableName = "a", CapacityUnits = 2, WriteCapacityUnits = 2 },
                { TableName = "b", ReadCapacityUnits = 1, WriteCapacityUnits = 4 } } })
        observe({ op = "ListTables", status = 200, attempt = 1, latency_ms = 1 })
        local r = parse(m:render())
        assert.equal("counter", r.types[P .. "_requests_total"])
        assert.equal("histogram", r.types[P .. "_request_duration_seconds"])
        assert.equal(4, value(r, P .. "_requests_total", { op = "GetItem", table = "t" }))
        assert.equal(1, value(r, P .. "_requests_total", { op = "PutItem", table = "t" }))
        assert.equal(1, value(r, P .. "_requests_total", { op = "ListTables", table = "" }))
        assert.equal(1, value(r, P .. "_errors_total", { op = "GetItem", table = "t", code = "ThrottlingException" }))
        assert.equal(1, value(r, P .. "_errors_total", { op = "GetItem", table = "t", code = "TransportError" }))
        assert.is_nil(value(r, P .. "_errors_total", { op = "PutItem", table = "t", code = "TransportError" }))
        assert.equal(2, value(r, P .. "_retries_total", { op = "GetItem", table = "t" }))
        assert.is_nil(value(r, P .. "_retries_total", { op = "PutItem", table = "t" }))
        local cap = P .. "_consumed_capacity_units_total"
        assert.equal(1, value(r, cap, { op = "GetItem", table = "t", type = "read" }))
        assert.is_nil(value(r, cap, { op = "GetItem", table = "t", type = "write" }))
        assert.equal(1, value(r, cap, { op = "PutItem", table = "t", type = "write" }))
        assert.equal(1, value(r, cap, { op = "TransactWriteItems", table = "a, b", type = "read" }))
        assert.equal(6, value(r, cap, { op = "TransactWriteItems", table = "a, b", type = "write" }))
        assert.equal(160, value(r, P .. "_sent_bytes_total", { op = "GetItem", table = "t" }))
        assert.equal(260, value(r, P .. "_received_bytes_total", { op = "GetItem", table = "t" }))
    end)

    it("the latency histogram: seconds, cumulative buckets, +Inf = _count, _sum", function()
        local m = metrics.new({ buckets = { 0.005, 0.01, 0.1 } })
        for _, ms in ipairs({ 1, 5, 5.0001, 9, 10, 50, 100, 250, 3000 }) do
            m.observe({ op = "Query", table = "t", status = 200, attempt = 1, latency_ms = ms })
        end
        local r = parse(m:render())
        local h = P .. "_request_duration_seconds"
        local L = { op = "Query", table = "t" }
        local function b(le)
            return value(r, h .. "_bucket", { op = "Query", table = "t", le = le })
        end
        -- le is "less than or equal": 5 ms falls in 0.005, 10 ms in 0.01
        assert.same({ 2, 5, 7, 9 }, { b("0.005"), b("0.01"), b("0.1"), b("+Inf") })
        assert.equal(9, value(r, h .. "_count", L))
        local sum = (1 + 5 + 5.0001 + 9 + 10 + 50 + 100 + 250 + 3000) / 1000
        assert.is_true(math.abs(value(r, h .. "_sum", L) - sum) < 1e-9)
        -- the buckets come in order, each at least the one before
        local last = -1
        for _, s in ipairs(r.samples) do
            if s.name == h .. "_bucket" then
                assert.is_true(s.value >= last)
                last = s.value
            end
        end
        -- default buckets: 13 bounds and +Inf
        local d = metrics.new()
        d.observe({ op = "GetItem", table = "t", attempt = 1, latency_ms = 2 })
        local n = 0
        for _, s in ipairs(parse(d:render()).samples) do
            if s.name == h .. "_bucket" then n = n + 1 end
        end
        assert.equal(#metrics.DEFAULT_BUCKETS + 1, n)
    end)

    it("escapes label values (backslash, double quote, line feed) and they parse back the same", function()
        local m = metrics.new()
        local odd = 'we"ird\\tab\nle'
        m.observe({ op = "GetItem", table = odd, status = 400, code = 'Bad"Code\\x', attempt = 1, latency_ms = 1 })
        local text = m:render()
        assert.truthy(text:find('table="we\\"ird\\\\tab\\nle"', 1, true))
        local r = parse(text)
        assert.equal(1, value(r, P .. "_requests_total", { op = "GetItem", table = odd }))
        assert.equal(1, value(r, P .. "_errors_total", { op = "GetItem", table = odd, code = 'Bad"Code\\x' }))
    end)

    it("an empty aggregator renders every family's HELP and TYPE and no samples", function()
        local r = parse(metrics.new():render())
        assert.equal(0, #r.samples)
        assert.equal("counter", r.types[P .. "_errors_total"])
        assert.truthy(r.help[P .. "_request_duration_seconds"])
    end)

    it("skips what it does not understand; never raises from observe", function()
        local m = metrics.new()
        m.observe(nil)
        m.observe("x")
        m.observe({ op = "GetItem", latency_ms = "slow", consumed_capacity = "lots", attempt = "2" })
        local r = parse(m:render())
        assert.equal(1, value(r, P .. "_requests_total", { op = "GetItem", table = "" }))
    end)

    it("checks its options", function()
        for _, opts in ipairs({ { buckets = {} }, { buckets = { 0.1, 0.05 } }, { buckets = { -1 } },
            { buckets = { 1, math.huge } }, { prefix = "bad name" }, { shared_dict = "nope" }, "x" }) do
            local ok, err = pcall(metrics.new, opts)
            assert.is_false(ok)
            assert.is_true(aws.errors.is(err, "ValidationError"), tostring(err))
        end
        local m = metrics.new({ prefix = "my_app_ddb" })
        m.observe({ op = "GetItem", table = "t", attempt = 1, latency_ms = 1 })
        assert.equal(1, value(parse(m:render()), "my_app_ddb_requests_total", { op = "GetItem", table = "t" }))
        m:reset()
        assert.equal(0, #parse(m:render()).samples)
    end)

    it("is require('authhero.aws').metrics, loaded on first use", function()
        assert.equal(metrics.new, aws.metrics.new)
        assert.equal(metrics.CONTENT_TYPE, aws.metrics.CONTENT_TYPE)
    end)

    it("counts a client's real calls as on_request (scripted transport)", function()
        local m = metrics.new()
        local steps = {
            { status = 400, body = '{"__type":"x#ThrottlingException","message":"slow down"}', headers = {} },
            { status = 200, body = '{"Item":{"PK":{"S":"a"}}}', headers = {} },
        }
        local client = aws.client.new({
            region = "us-east-1", endpoint = "http://127.0.0.1:1", on_request = m.observe,
            credentials = { accessKeyId = "AKID", secretAccessKey = "secret" },
            transport = { request = function() return table.remove(steps, 1) end },
            sleep = function() end, random = function() return 0 end,
        })
        client:call("GetItem", { TableName = "users", Key = { PK = "a" } })
        local r = parse(m:render())
        local L = { op = "GetItem", table = "users" }
        assert.equal(2, value(r, P .. "_requests_total", L))
        assert.equal(1, value(r, P .. "_retries_total", L))
        assert.equal(1, value(r, P .. "_errors_total", { op = "GetItem", table = "users", code = "ThrottlingException" }))
        assert.equal(2, value(r, P .. "_request_duration_seconds_count", L))
    end)

    describe("with shared_dict", function()
        -- a stand-in for ngx.shared.DICT: incr(key, v, init), get, get_keys(0), flush_all
        local function fake_dict(capacity)
            local d = { data = {}, n = 0 }
            function d.incr(self, k, v, init)
                if self.data[k] == nil then
                    if init == nil then return nil, "not found" end
                    if capacity and self.n >= capacity then return nil, "no memory" end
                    self.data[k], self.n = init, self.n + 1
                end
                self.data[k] = self.data[k] + v
                return self.data[k]
            end
            function d.get(self, k) return self.data[k] end
            function d.get_keys(self)
                local keys = {}
                for k in pairs(self.data) do keys[#keys + 1] = k end
                return keys
            end
            function d.flush_all(self) self.data, self.n = {}, 0 end
            return d
        end
        local saved
        before_each(function() saved = rawget(_G, "ngx") end)
        after_each(function() rawset(_G, "ngx", saved) end)

        it("every worker's aggregator counts into the dict, and any one renders them all", function()
            rawset(_G, "ngx", { shared = { ddb_metrics = fake_dict() } })
            local w1 = metrics.new({ shared_dict = "ddb_metrics" })
            local w2 = metrics.new({ shared_dict = "ddb_metrics" })
            w1.observe({ op = "GetItem", table = "t", attempt = 1, latency_ms = 3, bytes_sent = 10 })
            w2.observe({ op = "GetItem", table = "t", attempt = 2, latency_ms = 30, code = "InternalServerError" })
            w2.observe({ op = "Query", table = "t", attempt = 1, latency_ms = 0.5,
                consumed_capacity = { CapacityUnits = 2.5 } })
            for _, m in ipairs({ w1, w2 }) do
                local r = parse(m:render())
                assert.equal(2, value(r, P .. "_requests_total", { op = "GetItem", table = "t" }))
                assert.equal(1, value(r, P .. "_retries_total", { op = "GetItem", table = "t" }))
                assert.equal(2.5, value(r, P .. "_consumed_capacity_units_total", { op = "Query", table = "t", type = "read" }))
                assert.equal(2, value(r, P .. "_request_duration_seconds_count", { op = "GetItem", table = "t" }))
                assert.is_true(math.abs(value(r, P .. "_request_duration_seconds_sum", { op = "GetItem", table = "t" })
                    - 0.033) < 1e-12)
            end
            w1:reset()
            assert.equal(0, #parse(w2:render()).samples)
        end)

        it("a full dict drops counts and says how many", function()
            rawset(_G, "ngx", { shared = { small = fake_dict(2) } })
            local m = metrics.new({ shared_dict = "small" })
            m.observe({ op = "GetItem", table = "t", attempt = 1, latency_ms = 3 })
            assert.is_true(m.dropped > 0)
            parse(m:render())
        end)
    end)
end)
