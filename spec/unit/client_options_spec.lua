-- client:call's per-call options (timeout_ms, max_attempts, deadline_ms), the client-level
-- deadline_ms, and the on_request hook, with a scripted transport and a fake clock in place of
-- DynamoDB (spec/integration/client_hooks_spec.lua does the same against DynamoDB Local).
local aws = require "authhero.aws"
local cjson = require "cjson"
local errors = aws.errors

local ACCESS_KEY, SECRET, TOKEN = "AKIDH1OPTIONSTEST", "h1-secret-key/Do-Not-Leak+xyz", "h1-session-token-never-shown"

local function err_reply(status, code, message, headers)
    return { status = status, body = cjson.encode({ __type = "com.amazonaws.dynamodb.v20120810#" .. code,
        message = message or code }), headers = headers or { ["x-amzn-requestid"] = "RID-" .. code } }
end

local function transport_error(reason, sent)
    return function()
        errors.raise(0, "TransportError", "POST http://stub/: " .. reason, { reason = reason, retryable = true, sent = sent })
    end
end

local R = {
    ok = function() return { status = 200, body = '{"Item":{"PK":{"S":"a"}}}', headers = { ["x-amzn-requestid"] = "RID-OK" } } end,
    capacity = function()
        return { status = 200, body = '{"ConsumedCapacity":{"TableName":"t","CapacityUnits":0.5}}',
            headers = { ["x-amzn-requestid"] = "RID-CC" } }
    end,
    throttle = function() return err_reply(400, "ThrottlingException", "Rate exceeded") end,
    e500 = function() return err_reply(500, "InternalServerError") end,
    condition = function() return err_reply(400, "ConditionalCheckFailedException") end,
    reset = transport_error("reset", true),
    stale = transport_error("stale", true),
    timeout = transport_error("timeout", true),
    skew = function()
        return err_reply(400, "InvalidSignatureException", "Signature expired: 20261201T000000Z is now earlier than ...",
            { date = "Sat, 05 Dec 2026 00:00:00 GMT" })
    end,
    expired = function() return err_reply(400, "ExpiredTokenException", "The security token included in the request is expired") end,
}

-- steps[i](req, clock) answers request i; each request advances the clock by `cost` seconds
-- (default 1 ms).
local function new_client(steps, extra, cost)
    local clock = { t = 1000 }
    local t = { seen = {}, reqs = {} }
    function t.request(_, req)
        t.seen[#t.seen + 1] = { timeout_ms = req.timeout_ms, meta = req.meta, body = req.body, headers = req.headers }
        local f = table.remove(steps, 1)
        assert(f, "no reply scripted for request " .. #t.seen)
        clock.t = clock.t + (cost or 0.001)
        return f(req, clock)
    end
    function t.close() end
    local sleeps = {}
    local config = {
        region = "us-east-1", endpoint = "http://127.0.0.1:1", transport = t,
        credentials = { accessKeyId = ACCESS_KEY, secretAccessKey = SECRET, sessionToken = TOKEN },
        now = function() return clock.t end,
        sleep = function(s)
            sleeps[#sleeps + 1] = s
            clock.t = clock.t + s
        end,
        random = function() return 1 end,
    }
    for k, v in pairs(extra or {}) do config[k] = v end
    return aws.client.new(config), t, sleeps, clock
end

local fails = require "support.raises"

local GET = { TableName = "t", Key = { PK = "a" } }
local PUT = { TableName = "t", Item = { PK = "a", n = 1 } }

describe("per-call options", function()
    it("reject bad values with a ValidationError before any request", function()
        local bad = {
            { timeout_ms = 0 }, { timeout_ms = -5 }, { timeout_ms = 1.5 }, { timeout_ms = "100" },
            { timeout_ms = 3600001 }, { max_attempts = 0 }, { max_attempts = -1 }, { max_attempts = 2.5 },
            { max_attempts = "3" }, { max_attempts = math.huge }, { max_attempts = 0 / 0 },
            { deadline_ms = 0 }, { deadline_ms = -100 }, { deadline_ms = "1000" }, { deadline_ms = math.huge },
            { deadline_ms = 0 / 0 }, { idempotent = "yes" }, { timeout = 100 }, { [1] = true },
        }
        for _, opts in ipairs(bad) do
            local c, t = new_client({ R.ok })
            local err = fails(c.call, c, "GetItem", GET, opts)
            assert.equal("ValidationError", err.code)
            assert.equal(400, err.status)
            assert.equal(0, #t.seen)
            assert.equal(0, c.stats.requests)
        end
    end)

    it("reject a bad client-level deadline_ms or on_request", function()
        for _, v in ipairs({ 0, -1, "5", math.huge }) do
            local ok, err = pcall(new_client, {}, { deadline_ms = v })
            assert.is_false(ok)
            assert.is_true(errors.is(err, "ValidationError"), tostring(err))
        end
        local ok, err = pcall(new_client, {}, { on_request = "print" })
        assert.is_false(ok)
        assert.truthy(tostring(err):find("on_request", 1, true))
    end)

    it("timeout_ms goes to the transport as each attempt's req.timeout_ms; absent, none is set", function()
        local c, t = new_client({ R.throttle, R.ok, R.ok, R.ok })
        c:call("GetItem", GET, { timeout_ms = 250 })
        assert.same({ 250, 250 }, { t.seen[1].timeout_ms, t.seen[2].timeout_ms })
        c:call("GetItem", GET, nil)
        c:call("GetItem", GET, {})
        assert.is_nil(t.seen[3].timeout_ms)
        assert.is_nil(t.seen[4].timeout_ms)
        local c2, t2 = new_client({ R.ok, R.ok })
        c2:call("GetItem", GET)
        c2:call("GetItem", GET, { idempotent = true })
        assert.is_nil(t2.seen[1].timeout_ms)
        assert.is_nil(t2.seen[2].timeout_ms)
    end)

    it("max_attempts overrides the client's, both ways", function()
        local c, t = new_client({ R.throttle, R.throttle, R.throttle }, { max_attempts = 5 })
        local err = fails(c.call, c, "GetItem", GET, { max_attempts = 2 })
        assert.equal(2, #t.seen)
        assert.equal(2, err.attempts)
        assert.equal("attempts", err.gave_up)
        assert.equal("ThrottlingException", err.code)

        local c2, t2 = new_client({ R.e500, R.e500, R.ok }, { max_attempts = 1 })
        assert.equal("a", c2:call("GetItem", GET, { max_attempts = 3 }).Item.PK)
        assert.equal(3, #t2.seen)
        local c3 = new_client({ R.e500 }, { max_attempts = 1 })
        assert.equal(1, fails(c3.call, c3, "GetItem", GET).attempts)
    end)
end)

describe("deadline_ms", function()
    it("expires during retries: the sleep that would end past it is not slept", function()
        -- throttled: backoff 1 s, then 2 s (random() = 1); a 1.5 s deadline allows the first only
        local c, t, sleeps = new_client({ R.throttle, R.throttle, R.ok })
        local err = fails(c.call, c, "GetItem", GET, { deadline_ms = 1500 })
        assert.equal("TransportError", err.code)
        assert.equal("deadline", err.reason)
        assert.equal(0, err.status)
        assert.is_false(err.retryable)
        assert.equal("deadline", err.gave_up)
        assert.equal("GetItem", err.op)
        assert.equal("t", err.table)
        assert.equal(2, err.attempts)
        assert.is_nil(err.maybe_applied)
        assert.equal("ThrottlingException", err.last_error.code)
        assert.equal(2, #t.seen)
        assert.same({ 1 }, sleeps)
        assert.truthy(tostring(err):find("deadline", 1, true))
        -- the second attempt got only what was left of the 1.5 s (1.5 - 0.001 (request) - 1 (sleep))
        assert.equal(1500, t.seen[1].timeout_ms)
        assert.is_true(math.abs(t.seen[2].timeout_ms - 499) <= 1, tostring(t.seen[2].timeout_ms))
    end)

    it("each attempt's timeout is min(timeout_ms, time left)", function()
        local c, t = new_client({ R.e500, R.e500, R.ok })
        -- backoff 0.05 s then 0.1 s; the deadline (400 ms) stays above timeout_ms (100 ms) throughout
        c:call("GetItem", GET, { deadline_ms = 400, timeout_ms = 100 })
        assert.same({ 100, 100, 100 }, { t.seen[1].timeout_ms, t.seen[2].timeout_ms, t.seen[3].timeout_ms })
        local c2, t2 = new_client({ R.e500, R.ok })
        c2:call("GetItem", GET, { deadline_ms = 120, timeout_ms = 100 })
        assert.equal(100, t2.seen[1].timeout_ms)
        -- 120 - 1 (first request) - 50 (backoff) ms
        assert.is_true(math.abs(t2.seen[2].timeout_ms - 69) <= 1, tostring(t2.seen[2].timeout_ms))
    end)

    it("a timeout cut short by the deadline is a deadline error, never retried; a write's says maybe_applied", function()
        local c, t = new_client({ R.timeout, R.ok }, { timeout_ms = 5000 })
        local err = fails(c.call, c, "PutItem", PUT, { deadline_ms = 300 })
        assert.equal("deadline", err.reason)
        assert.equal("timeout", err.last_error.reason)
        assert.is_true(err.maybe_applied)
        assert.equal(1, err.attempts)
        assert.equal(1, #t.seen)
        assert.equal(300, t.seen[1].timeout_ms)
        -- the same timeout, not cut short (timeout_ms below the time left), is retried as before
        local c2, t2 = new_client({ R.timeout, R.ok })
        c2:call("GetItem", GET, { deadline_ms = 300, timeout_ms = 100 })
        assert.equal(2, #t2.seen)
    end)

    it("no attempt starts past it: a one-off retry (stale connection) is not sent", function()
        local c, t = new_client({ R.stale, R.ok }, nil, 0.25) -- each request takes 250 ms
        local err = fails(c.call, c, "GetItem", GET, { deadline_ms = 200 })
        assert.equal("deadline", err.reason)
        assert.equal("stale", err.last_error.reason)
        assert.equal(1, #t.seen)
    end)

    it("the client-level deadline_ms is the default; a call's own replaces it", function()
        local c, t = new_client({ R.throttle, R.throttle }, { deadline_ms = 500 })
        local err = fails(c.call, c, "GetItem", GET)
        assert.equal("deadline", err.reason)
        assert.equal(1, #t.seen)
        local c2, t2 = new_client({ R.throttle, R.ok }, { deadline_ms = 500 })
        assert.equal("a", c2:call("GetItem", GET, { deadline_ms = 5000 }).Item.PK)
        assert.equal(2, #t2.seen)
    end)

    it("a final error before the deadline is raised as it is", function()
        local c = new_client({ R.condition })
        local err = fails(c.call, c, "PutItem", PUT, { deadline_ms = 1000 })
        assert.equal("ConditionalCheckFailedException", err.code)
    end)

    it("without deadline_ms, max_time_ms still bounds a call", function()
        local c = new_client({ R.throttle, R.throttle, R.throttle }, { max_time_ms = 2500 })
        local err = fails(c.call, c, "GetItem", GET)
        assert.equal("time", err.gave_up)
        assert.equal("ThrottlingException", err.code)
    end)
end)

-- every string anywhere in v (keys and values), for the secrets check
local function strings_in(v, out, seen)
    out, seen = out or {}, seen or {}
    if type(v) == "string" then
        out[#out + 1] = v
    elseif type(v) == "table" and not seen[v] then
        seen[v] = true
        for k, x in pairs(v) do
            strings_in(k, out, seen)
            strings_in(x, out, seen)
        end
    elseif v ~= nil then
        out[#out + 1] = tostring(v)
    end
    return out
end

describe("on_request", function()
    local function hooked(steps, extra, cost)
        local events = {}
        extra = extra or {}
        extra.on_request = function(ev) events[#events + 1] = ev end
        local c, t, sleeps, clock = new_client(steps, extra, cost)
        return c, t, events, sleeps, clock
    end

    it("a success: every field", function()
        local c, t, events = hooked({ R.capacity }, nil, 0.004)
        c:call("GetItem", GET)
        assert.equal(1, #events)
        local ev = events[1]
        assert.equal("GetItem", ev.op)
        assert.equal("t", ev.table)
        assert.equal(200, ev.status)
        assert.is_nil(ev.code)
        assert.is_nil(ev.reason)
        assert.equal(1, ev.attempt)
        assert.is_true(math.abs(ev.latency_ms - 4) < 1e-6, tostring(ev.latency_ms))
        assert.equal("RID-CC", ev.request_id)
        assert.same({ TableName = "t", CapacityUnits = 0.5 }, ev.consumed_capacity)
        assert.equal(#t.seen[1].body, ev.bytes_sent)
        assert.equal(#'{"ConsumedCapacity":{"TableName":"t","CapacityUnits":0.5}}', ev.bytes_received)
        assert.is_false(ev.retry)
        assert.is_true(t.seen[1].meta)
    end)

    it("every attempt of a retried call, with codes, statuses and whether the client retries", function()
        local c, _, events = hooked({ R.throttle, R.e500, R.reset, R.ok })
        c:call("GetItem", GET)
        assert.equal(4, #events)
        local got = {}
        for i, ev in ipairs(events) do
            got[i] = { ev.attempt, ev.status, ev.code, ev.retry, ev.reason, ev.request_id }
        end
        assert.same({
            { 1, 400, "ThrottlingException", true, nil, "RID-ThrottlingException" },
            { 2, 500, "InternalServerError", true, nil, "RID-InternalServerError" },
            { 3, 0, "TransportError", true, "reset", nil },
            { 4, 200, nil, false, nil, "RID-OK" },
        }, got)
        assert.equal(0, events[3].bytes_received)
        assert.is_true(events[1].bytes_received > 0)
    end)

    it("the one-off retries (clock skew, expired credentials) are attempts too", function()
        local invalidated = 0
        local provider = {
            get = function() return { access_key_id = ACCESS_KEY, secret_access_key = SECRET, session_token = TOKEN } end,
            invalidate = function() invalidated = invalidated + 1 end,
        }
        local c, t, events = hooked({ R.skew, R.expired, R.ok }, { credentials_provider = provider })
        c:call("GetItem", GET)
        assert.equal(3, #t.seen)
        assert.equal(1, invalidated)
        assert.same({ 1, 2, 3 }, { events[1].attempt, events[2].attempt, events[3].attempt })
        assert.same({ "InvalidSignatureException", "ExpiredTokenException" }, { events[1].code, events[2].code })
        assert.is_true(events[1].retry and events[2].retry)
        assert.is_false(events[3].retry)
    end)

    it("the last attempt of a failed call says retry = false; a deadline's too", function()
        local c, _, events = hooked({ R.e500, R.e500 }, { max_attempts = 2 })
        fails(c.call, c, "GetItem", GET)
        assert.same({ true, false }, { events[1].retry, events[2].retry })
        local c2, _, ev2 = hooked({ R.throttle, R.throttle })
        fails(c2.call, c2, "GetItem", GET, { deadline_ms = 1500 })
        assert.equal(2, #ev2)
        assert.same({ true, false }, { ev2[1].retry, ev2[2].retry })
    end)

    it("table is err.table's: a batch's names, sorted and joined", function()
        local c, _, events = hooked({ R.ok })
        c:call("BatchGetItem", { RequestItems = { zeta = { Keys = { { PK = "a" } } }, alpha = { Keys = { { PK = "b" } } } } })
        assert.equal("alpha, zeta", events[1].table)
        local c2, _, ev2 = hooked({ function() return { status = 200, body = '{"TableNames":[]}', headers = {} } end })
        c2:call("ListTables", {})
        assert.is_nil(ev2[1].table)
    end)

    it("never carries credentials, headers or the signature", function()
        local c, t, events = hooked({ R.throttle, R.reset, R.e500, R.ok })
        c:call("PutItem", PUT)
        assert.equal(4, #events)
        local secrets = { ACCESS_KEY, SECRET, TOKEN }
        for _, s in ipairs(t.seen) do
            for _, h in ipairs(s.headers) do
                if h[1] == "authorization" then
                    local sig = h[2]:match("Signature=(%x+)")
                    assert.truthy(sig)
                    secrets[#secrets + 1] = sig
                end
            end
        end
        assert.equal(7, #secrets)
        for _, ev in ipairs(events) do
            assert.is_nil(ev.headers)
            for _, s in ipairs(strings_in(ev)) do
                for _, secret in ipairs(secrets) do
                    assert.is_nil(s:find(secret, 1, true), "event holds a secret: " .. s)
                end
                assert.is_nil(s:find("Signature=", 1, true))
            end
        end
    end)

    it("a hook that raises does not break the call; the error goes to config.log", function()
        local logged = {}
        local c, t = new_client({ R.throttle, R.ok }, {
            on_request = function() error("hook bug") end,
            log = function(event, op, attempt, msg) logged[#logged + 1] = { event, op, attempt, msg } end,
        })
        assert.equal("a", c:call("GetItem", GET).Item.PK)
        assert.equal(2, #t.seen)
        local hook_errors = {}
        for _, l in ipairs(logged) do
            if l[1] == "on_request_error" then hook_errors[#hook_errors + 1] = l end
        end
        assert.equal(2, #hook_errors)
        assert.equal("GetItem", hook_errors[1][2])
        assert.truthy(hook_errors[1][4]:find("hook bug", 1, true))
        -- and without a log, silently
        local c2 = new_client({ R.ok }, { on_request = function() error("hook bug") end })
        assert.equal("a", c2:call("GetItem", GET).Item.PK)
    end)

    it("each event is a fresh table", function()
        local c, _, events = hooked({ R.ok, R.ok })
        c:call("GetItem", GET)
        c:call("GetItem", GET)
        assert.are_not.equal(events[1], events[2])
    end)

    it("costs nothing when absent: no meta asked of the transport", function()
        local c, t = new_client({ R.ok })
        c:call("GetItem", GET)
        assert.is_nil(t.seen[1].meta)
    end)
end)
