-- Per-call options, deadlines, the on_request hook and authhero.aws.metrics on real requests:
-- DynamoDB Local directly, and behind spec/support/faultd.py --proxy for scripted faults (500s,
-- slow replies), with real sleeps and the real libcurl transport.
local aws = require "authhero.aws"
local core = require "authhero.aws.core"
local cjson = require "cjson"
local ddb = require "support.ddb_local"

local TABLE = "hooks_spec_" .. tostring(os.time()) .. "_" .. math.random(1000000)
local CREDS = { accessKeyId = "AKIDHOOKSSPEC", secretAccessKey = "hooks-spec-secret/key+1" }

local fault_proxy = require "support.fault_proxy"
local direct, proxy, fp, dc


local function proxy_requests() return fp:stats().requests end

-- the next requests through the proxy get these faults, one each; then none
local function script(faults) fp:script(faults) end

local raises = require "support.raises"

-- A client through the proxy; backoff is full (random() = 1) so delays are 50, 100, 200 ms...
local function proxied(extra)
    local events = {}
    local config = { region = "us-east-1", endpoint = proxy, credentials = CREDS, random = function() return 1 end,
        on_request = function(ev) events[#events + 1] = ev end }
    for k, v in pairs(extra or {}) do config[k] = v end
    return aws.client.new(config), events
end

local KEY = { PK = "HOOKS", SK = "1" }

describe("per-call options, deadlines and on_request against DynamoDB Local", function()
    setup(function()
        direct = ddb.endpoint()
        dc = aws.client.new({ region = "us-east-1", endpoint = direct, credentials = CREDS })
        aws.schema.create_table(dc, { tableName = TABLE })
        dc:call("PutItem", { TableName = TABLE, Item = { PK = KEY.PK, SK = KEY.SK, v = "x" } })
        fp = fault_proxy.start(direct)
        proxy = fp.url
    end)

    teardown(function()
        if fp then fp:stop() end
        if dc then
            pcall(dc.call, dc, "DeleteTable", { TableName = TABLE })
            dc:close()
        end
    end)

    describe("on_request on real calls", function()
        it("reports every field for successes and failures, and never a credential", function()
            local events = {}
            local secret = "hooks-spec-secret-" .. core.sha256_hex(tostring(core.now())):sub(1, 16)
            local c = aws.client.new({ region = "us-east-1", endpoint = direct, return_consumed_capacity = true,
                credentials = { accessKeyId = "AKIDHOOKSREAL", secretAccessKey = secret, sessionToken = "tok-" .. secret },
                on_request = function(ev) events[#events + 1] = ev end })
            c:call("PutItem", { TableName = TABLE, Item = { PK = "HOOKS", SK = "2", v = string.rep("y", 100) } })
            local got = c:call("GetItem", { TableName = TABLE, Key = { PK = "HOOKS", SK = "2" }, ConsistentRead = true })
            assert.equal(string.rep("y", 100), got.Item.v)
            c:call("Query", { TableName = TABLE, KeyConditionExpression = "PK = :p",
                ExpressionAttributeValues = { [":p"] = "HOOKS" } })
            local err = raises(c.call, c, "GetItem", { TableName = "no_such_table_hooks", Key = KEY })
            assert.equal("ResourceNotFoundException", err.code)
            assert.equal(4, #events)
            local ops = {}
            for i, ev in ipairs(events) do
                ops[i] = ev.op
                assert.equal(1, ev.attempt)
                assert.is_true(ev.latency_ms > 0 and ev.latency_ms < 5000, tostring(ev.latency_ms))
                assert.is_true(ev.bytes_sent > 20)
                assert.is_true(ev.bytes_received > 0)
                assert.is_false(ev.retry)
                assert.is_string(ev.request_id)
                assert.is_true(#ev.request_id > 0)
                for k, v in pairs(ev) do
                    local s = type(v) == "table" and cjson.encode(v) or tostring(v)
                    assert.is_nil(s:find(secret, 1, true), k)
                    assert.is_nil(s:find("AKIDHOOKSREAL", 1, true), k)
                    assert.is_nil(s:find("Signature", 1, true), k)
                end
            end
            assert.same({ "PutItem", "GetItem", "Query", "GetItem" }, ops)
            assert.same({ TABLE, TABLE, TABLE, "no_such_table_hooks" },
                { events[1].table, events[2].table, events[3].table, events[4].table })
            assert.same({ 200, 200, 200, 400 }, { events[1].status, events[2].status, events[3].status, events[4].status })
            assert.equal("ResourceNotFoundException", events[4].code)
            assert.equal(err.request_id, events[4].request_id)
            -- a strongly consistent read of an item under 4 KB costs 1 unit
            assert.equal(1, events[2].consumed_capacity.CapacityUnits)
            assert.equal(TABLE, events[2].consumed_capacity.TableName)
            assert.is_true(events[2].bytes_received > 100) -- the item came back in the body
            c:close()
        end)

        it("feeds authhero.aws.metrics", function()
            local m = aws.metrics.new()
            local c = aws.client.new({ region = "us-east-1", endpoint = direct, credentials = CREDS,
                return_consumed_capacity = true, on_request = m.observe })
            for _ = 1, 3 do c:call("GetItem", { TableName = TABLE, Key = KEY }) end
            c:call("PutItem", { TableName = TABLE, Item = { PK = "HOOKS", SK = "3" } })
            local text = m:render()
            local L = 'op="GetItem",table="' .. TABLE .. '"'
            assert.truthy(text:find("authhero_dynamodb_requests_total{" .. L .. "} 3\n", 1, true), text)
            assert.truthy(text:find('authhero_dynamodb_requests_total{op="PutItem",table="' .. TABLE .. '"} 1\n', 1, true))
            assert.truthy(text:find("authhero_dynamodb_request_duration_seconds_count{" .. L .. "} 3\n", 1, true))
            assert.truthy(text:find('authhero_dynamodb_request_duration_seconds_bucket{' .. L .. ',le="+Inf"} 3\n', 1, true))
            -- three eventually consistent reads at 0.5 units each
            assert.truthy(text:find('authhero_dynamodb_consumed_capacity_units_total{' .. L .. ',type="read"} 1.5\n', 1,
                true), text)
            c:close()
        end)
    end)

    describe("through the fault proxy", function()
        it("deadline_ms expires during retries: no sleep past it, a TransportError with reason deadline", function()
            script({ "500", "500", "500", "500", "500" })
            local c, events = proxied()
            local t0 = core.now()
            -- 500s back off 50, 100, 200 ms: attempts at ~0, 50, 150 ms; the next sleep would end at
            -- ~350 ms, past the 300 ms deadline
            local err = raises(c.call, c, "GetItem", { TableName = TABLE, Key = KEY }, { deadline_ms = 300 })
            local took = core.now() - t0
            assert.equal("TransportError", err.code)
            assert.equal("deadline", err.reason)
            assert.equal(0, err.status)
            assert.is_false(err.retryable)
            assert.equal(3, err.attempts)
            assert.equal("GetItem", err.op)
            assert.equal(TABLE, err.table)
            assert.equal("InternalServerError", err.last_error.code)
            assert.is_true(took < 0.3, "took " .. took .. " s")
            assert.is_true(took >= 0.15, "took " .. took .. " s")
            assert.equal(3, proxy_requests())
            assert.same({ true, true, false }, { events[1].retry, events[2].retry, events[3].retry })
            c:close()
        end)

        it("a deadline cuts a slow attempt short; a write's error says it may have been applied", function()
            script({ "slow:1500" })
            local c = proxied()
            local t0 = core.now()
            local err = raises(c.call, c, "PutItem", { TableName = TABLE, Item = { PK = "HOOKS", SK = "slow" } },
                { deadline_ms = 300 })
            local took = core.now() - t0
            assert.equal("deadline", err.reason)
            assert.equal("timeout", err.last_error.reason)
            assert.is_true(err.maybe_applied)
            assert.equal(1, err.attempts)
            assert.is_true(took >= 0.29 and took < 0.8, "took " .. took .. " s")
            assert.equal(1, proxy_requests())
            c:close()
        end)

        it("the client-level deadline_ms applies to every call", function()
            script({ "slow:1500" })
            local c = proxied({ deadline_ms = 250 })
            local t0 = core.now()
            local err = raises(c.call, c, "GetItem", { TableName = TABLE, Key = KEY })
            assert.equal("deadline", err.reason)
            assert.is_true(core.now() - t0 < 0.8)
            c:close()
        end)

        it("per-call timeout_ms bounds one attempt; the retry then succeeds", function()
            script({ "slow:1500" })
            local c, events = proxied()
            local err = raises(c.call, c, "GetItem", { TableName = TABLE, Key = KEY }, { timeout_ms = 200, max_attempts = 1 })
            assert.equal("TransportError", err.code)
            assert.equal("timeout", err.reason)
            assert.is_true(events[1].latency_ms >= 190 and events[1].latency_ms < 700, tostring(events[1].latency_ms))
            script({ "slow:1500" })
            local t0 = core.now()
            local got = c:call("GetItem", { TableName = TABLE, Key = KEY }, { timeout_ms = 200 })
            assert.equal("x", got.Item.v)
            assert.is_true(core.now() - t0 < 1.0)
            assert.equal(2, proxy_requests())
            assert.equal("timeout", events[2].reason)
            assert.is_true(events[2].retry)
            assert.equal(200, events[3].status)
            c:close()
        end)

        it("per-call max_attempts replaces the client's", function()
            script({ "500", "500", "500" })
            local c = proxied({ max_attempts = 5 })
            local err = raises(c.call, c, "GetItem", { TableName = TABLE, Key = KEY }, { max_attempts = 2 })
            assert.equal("InternalServerError", err.code)
            assert.equal("attempts", err.gave_up)
            assert.equal(2, proxy_requests())
            script({ "500", "500", "500" })
            local c1 = proxied({ max_attempts = 1 })
            assert.equal("x", c1:call("GetItem", { TableName = TABLE, Key = KEY }, { max_attempts = 4 }).Item.v)
            assert.equal(4, proxy_requests())
            c:close()
            c1:close()
        end)
    end)
end)
