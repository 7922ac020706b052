-- aws.client.within(ms, fn, ...): a deadline for every DynamoDB call one coroutine makes (the
-- adapters', aws.global's per-Region clients', the cache's waits), with scripted transports and one
-- fake clock shared by the clients and the scopes (client._scope_clock) in place of DynamoDB.
-- scripts/openresty-test checks the same in nginx: a request bounded while a concurrent one is not.
local aws = require "authhero.aws"
local cjson = require "cjson"
local errors = aws.errors
local client_mod = aws.client
local cache_mod = require "authhero.aws.cache"
local fails = require "support.raises"

local within = client_mod.within
-- PUC Lua 5.1 cannot yield across pcall (within's, the cache's); LuaJIT and 5.2+ can
local yieldable_pcall = _VERSION ~= "Lua 5.1" or rawget(_G, "jit") ~= nil
local clock = { t = 1000 }

local function err_reply(status, code)
    return { status = status, body = cjson.encode({ __type = "com.amazonaws.dynamodb.v20120810#" .. code,
        message = code }), headers = { ["x-amzn-requestid"] = "RID-" .. code } }
end

local R = {
    ok = function() return { status = 200, body = '{"Item":{"PK":{"S":"a"}}}', headers = {} } end,
    empty = function() return { status = 200, body = "{}", headers = {} } end,
    throttle = function() return err_reply(400, "ThrottlingException") end,
}

-- A transport answering from steps (one function per request, in order); each request advances the
-- shared clock by `cost` seconds (default 1 ms).
local function transport(steps, cost)
    local t = { seen = {} }
    function t.request(_, req)
        t.seen[#t.seen + 1] = { timeout_ms = req.timeout_ms, body = req.body }
        local f = table.remove(steps, 1)
        assert(f, "no reply scripted for request " .. #t.seen)
        clock.t = clock.t + (cost or 0.001)
        return f(req)
    end
    function t.close() end
    return t
end

local function options(t, extra)
    local config = {
        region = "us-east-1", endpoint = "http://127.0.0.1:1", transport = t,
        credentials = { accessKeyId = "AKIDH9WITHIN", secretAccessKey = "h9-secret" },
        now = function() return clock.t end,
        sleep = function(s) clock.t = clock.t + s end,
        random = function() return 1 end,
    }
    for k, v in pairs(extra or {}) do config[k] = v end
    return config
end

local function new_client(steps, extra, cost)
    local t = transport(steps, cost)
    return aws.client.new(options(t, extra)), t
end

local GET = { TableName = "t", Key = { PK = "a" } }

-- the attempts' timeouts (ms) are these, each within 1 ms (the client rounds the time left up)
local function timeouts_near(want, seen)
    assert.equal(#want, #seen, "requests")
    for i, w in ipairs(want) do
        local got = seen[i].timeout_ms
        assert(type(got) == "number" and math.abs(got - w) <= 1,
            string.format("request %d: timeout_ms %s, expected %s", i, tostring(got), tostring(w)))
    end
end

local function is_scope_deadline(err, ms)
    assert.equal("TransportError", err.code)
    assert.equal("deadline", err.reason)
    assert.equal(0, err.status)
    assert.is_false(err.retryable)
    assert.equal("deadline", err.gave_up)
    assert.is_true(err.within)
    assert.equal(ms, err.deadline_ms)
    assert.truthy(tostring(err):find("within() deadline (" .. ms .. " ms) passed", 1, true), tostring(err))
end

before_each(function()
    clock.t = 1000
    client_mod._scope_clock(function() return clock.t end)
end)

after_each(function()
    client_mod._scope_clock(nil)
    assert.is_nil(client_mod.scope_left(), "a test left a within() scope open")
end)

describe("within", function()
    it("is reachable as aws.within and returns every result of fn, nils included", function()
        assert.equal(within, aws.within)
        local n, a, b, c, d = (function(...) return select("#", ...), ... end)(
            within(100, function(x, y) return x, y, nil, 4 end, 1, 2))
        assert.same({ 4, 1, 2, nil, 4 }, { n, a, b, c, d })
        assert.equal(0, select("#", within(100, function() end)))
    end)

    it("bounds several calls in sequence: cut timeouts, then a call with nothing left sends nothing", function()
        -- every request takes 40 ms of the 100
        local c, t = new_client({ R.ok, R.ok, R.ok, R.ok }, nil, 0.040)
        local err = fails(within, 100, function()
            c:call("GetItem", GET)
            c:call("GetItem", GET)
            c:call("GetItem", GET) -- 20 ms left: its timeout is cut to that
            c:call("GetItem", GET) -- none left
        end)
        is_scope_deadline(err, 100)
        timeouts_near({ 100, 60, 20 }, t.seen)
        assert.equal(3, c.stats.requests)
        assert.equal(0, err.attempts)
        assert.equal("GetItem", err.op)
        assert.equal("t", err.table)
        assert.is_nil(err.last_error)
    end)

    it("cuts backoff like deadline_ms: the sleep that would end past it is not slept", function()
        -- throttled: backoff 1 s, then 2 s (random() = 1); 1.5 s allows the first only
        local c, t = new_client({ R.throttle, R.throttle, R.ok })
        local err = fails(within, 1500, c.call, c, "GetItem", GET)
        is_scope_deadline(err, 1500)
        assert.equal(2, #t.seen)
        assert.equal("ThrottlingException", err.last_error.code)
        assert.equal(2, err.attempts)
    end)

    it("reaches the adapters' calls", function()
        local c, t = new_client({ R.empty })
        local adapters = aws.create_adapters(c, { tableName = "t" })
        assert.is_nil(within(50, adapters.users.get, "tenant-1", "auth2|u1"))
        timeouts_near({ 50 }, t.seen)
        local err = fails(within, 50, function()
            clock.t = clock.t + 0.050
            return adapters.users.get("tenant-1", "auth2|u1")
        end)
        is_scope_deadline(err, 50)
        assert.equal(1, #t.seen)
    end)

    it("reaches aws.global's per-Region clients", function()
        local eu, us = transport({ R.empty }), transport({})
        local router = aws.global.new({
            local_region = "eu-west-1", home = "eu-west-1", now = function() return clock.t end,
            regions = { ["eu-west-1"] = options(eu, { region = "eu-west-1" }),
                ["us-east-1"] = options(us, { region = "us-east-1" }) },
        })
        within(80, router.call, router, "GetItem", GET)
        timeouts_near({ 80 }, eu.seen)
        local err = fails(within, 80, function()
            clock.t = clock.t + 0.1
            return router:call("GetItem", GET)
        end)
        assert.equal("deadline", err.reason)
        assert.is_true(err.within)
        assert.equal(1, #eu.seen)
        assert.equal(0, #us.seen)
    end)

    it("nested scopes take the earliest deadline", function()
        local c, t = new_client({ R.ok, R.ok, R.ok, R.ok })
        within(1000, function()
            within(100, c.call, c, "GetItem", GET) -- the inner one is earlier
            clock.t = clock.t + 0.2
            within(5000, c.call, c, "GetItem", GET) -- the outer one is earlier: 1000 - 1 - 200 ms left
            c:call("GetItem", GET)                  -- back in the outer scope alone
        end)
        timeouts_near({ 100, 799, 798 }, t.seen)
        local err = fails(within, 1000, function()
            return within(100, function()
                clock.t = clock.t + 0.150
                return c:call("GetItem", GET)
            end)
        end)
        is_scope_deadline(err, 100)
        assert.equal(3, #t.seen)
    end)

    it("ends when fn returns and when it raises; the error is fn's own", function()
        local c, t = new_client({ R.ok, R.ok, R.ok })
        within(100, function() end)
        clock.t = clock.t + 1
        c:call("GetItem", GET)
        assert.is_nil(t.seen[1].timeout_ms)

        local mine = errors.new(409, "Conflict", "mine")
        local ok, err = pcall(within, 100, function() error(mine) end)
        assert.is_false(ok)
        assert.equal(mine, err)
        ok, err = pcall(within, 100, function() error("plain", 0) end)
        assert.is_false(ok)
        assert.equal("plain", err)
        clock.t = clock.t + 1
        c:call("GetItem", GET)
        assert.is_nil(t.seen[2].timeout_ms)
        assert.is_nil(client_mod.scope_left())

        -- a nested scope that raised gives the outer one back, not none
        within(1000, function()
            pcall(within, 10, error, "inner")
            assert.near(1.0, client_mod.scope_left(), 1e-9)
            c:call("GetItem", GET)
        end)
        assert.is_nil(t.seen[2].timeout_ms)
        timeouts_near({ 1000 }, { t.seen[3] })
    end)

    it("bounds only its own coroutine: a call from another coroutine meanwhile is not bounded", function()
        local c, t = new_client({ R.ok, R.ok, R.ok, R.ok })
        local other = coroutine.wrap(function()
            c:call("GetItem", GET)
            coroutine.yield()
            within(5000, c.call, c, "GetItem", GET)
        end)
        local err = fails(within, 100, function()
            clock.t = clock.t + 0.5 -- this scope has passed
            other()                  -- another coroutine's call, unbounded
            other()                  -- and its own scope, not this one
            return c:call("GetItem", GET)
        end)
        is_scope_deadline(err, 100)
        assert.equal(2, #t.seen)
        assert.is_nil(t.seen[1].timeout_ms)
        timeouts_near({ 5000 }, { t.seen[2] })
        -- and a scope inside a coroutine never reaches the main thread's calls
        local co = coroutine.create(function()
            within(10, function() coroutine.yield() end)
        end)
        local ok, e = coroutine.resume(co)
        if yieldable_pcall then
            assert(ok, e)
            assert.equal("suspended", coroutine.status(co)) -- its scope open
            assert.is_nil(client_mod.scope_left())
            clock.t = clock.t + 1
            c:call("GetItem", GET)
            assert.is_nil(t.seen[3].timeout_ms)
            assert(coroutine.resume(co))
        else
            -- PUC 5.1 cannot yield across within's pcall: the error leaves within, its scope closed
            assert.is_false(ok)
            assert.truthy(tostring(e):find("yield across", 1, true), tostring(e))
        end
        assert.equal("dead", coroutine.status(co))
    end)

    it("a call's own deadline_ms (or the client's) applies when it comes first", function()
        local c, t = new_client({ R.throttle, R.throttle, R.ok })
        local err = fails(within, 60000, c.call, c, "GetItem", GET, { deadline_ms = 1500 })
        assert.equal("deadline", err.reason)
        assert.is_nil(err.within)
        assert.equal(1500, err.deadline_ms)
        assert.equal(2, #t.seen)
        timeouts_near({ 1500 }, { t.seen[1] })

        local c2, t2 = new_client({ R.ok, R.ok }, { deadline_ms = 300 })
        within(1000, c2.call, c2, "GetItem", GET)
        within(100, c2.call, c2, "GetItem", GET, { deadline_ms = 5000 })
        timeouts_near({ 300, 100 }, t2.seen)
    end)

    it("validates its arguments before running anything", function()
        local ran = 0
        local function fn() ran = ran + 1 end
        for _, ms in ipairs({ 0, -1, "100", true, 0 / 0, math.huge, -math.huge, {} }) do
            local err = fails(within, ms, fn)
            assert.equal("ValidationError", err.code)
            assert.equal(400, err.status)
        end
        local err = fails(within, nil, fn)
        assert.equal("ValidationError", err.code)
        for _, bad in ipairs({ "fn", 5, {}, true }) do
            local ok, e = pcall(within, 100, bad)
            assert.is_false(ok)
            assert.equal("string", type(e))
            assert.truthy(e:find("bad argument #2 to 'within' (function expected, got " .. type(bad) .. ")", 1, true), e)
        end
        assert.is_false(pcall(within, 100))
        assert.equal(0, ran)
        assert.equal(1, within(0.5, function() return 1 end)) -- a fraction of a millisecond is a positive number
    end)

    it("scope_left is the time left, nil outside any scope", function()
        assert.is_nil(client_mod.scope_left())
        within(250, function()
            assert.near(0.25, client_mod.scope_left(), 1e-9)
            clock.t = clock.t + 0.3
            assert.near(-0.05, client_mod.scope_left(), 1e-9)
        end)
        assert.is_nil(client_mod.scope_left())
    end)
end)

describe("within and the configuration cache", function()
    -- the waiter's scope bounds its wait; the load itself yields inside the cache's pcall
    local it_yieldable = yieldable_pcall and it or pending

    -- support.fake_semaphore, whose timed-out waits advance the fake clock by their timeout
    local function fake_semaphore()
        local sem = require("support.fake_semaphore")()
        sem.advance = function(timeout) clock.t = clock.t + timeout end
        return sem
    end

    -- a cache and a load under way in a coroutine of its own (suspended mid-request)
    local function load_under_way()
        local c = cache_mod.new({ now = function() return clock.t end })
        local sem = fake_semaphore()
        c._semaphore = sem
        local loads = 0
        local function load()
            loads = loads + 1
            coroutine.yield("io")
            return { v = "x" }
        end
        local loader = coroutine.create(function() return c:read("k", "t:x", load) end)
        assert(coroutine.resume(loader))
        return c, sem, load, loader, function() return loads end
    end

    it_yieldable("a waiter waits at most its scope's time left, then raises its deadline", function()
        local c, sem, load, loader, loads = load_under_way()
        sem.timeout_now = true
        local err = fails(within, 200, function()
            clock.t = clock.t + 0.050
            return c:read("k", "t:x", load)
        end)
        is_scope_deadline(err, 200)
        assert.equal(1, #sem.timeouts)
        assert.near(0.150, sem.timeouts[1], 1e-9)
        assert.truthy(err.message:find("waiting for a read under way", 1, true))
        assert.equal(1, loads())
        assert.equal(1, c.stats.waits)
        assert(coroutine.resume(loader)) -- the load ends, as it would; nobody else needed it
        assert.equal("x", c:read("k", "t:x", load).v)
        assert.equal(1, loads())
    end)

    it_yieldable("a waiter whose scope has passed raises at once, without waiting", function()
        local c, sem, load, _, loads = load_under_way()
        local err = fails(within, 20, function()
            clock.t = clock.t + 0.020
            return c:read("k", "t:x", load)
        end)
        is_scope_deadline(err, 20)
        assert.equal(0, #sem.timeouts)
        assert.equal(0, c.stats.waits)
        assert.equal(1, loads())
    end)

    it_yieldable("within its time, a waiter gets the load's value; without a scope it waits up to 30 s", function()
        local c, sem, load, loader, loads = load_under_way()
        local got = {}
        local scoped = coroutine.create(function()
            got.scoped = within(500, c.read, c, "k", "t:x", load)
        end)
        local plain = coroutine.create(function() got.plain = c:read("k", "t:x", load) end)
        assert(coroutine.resume(scoped))
        assert(coroutine.resume(plain))
        assert.equal(2, #sem.timeouts)
        assert.near(0.5, sem.timeouts[1], 1e-9)
        assert.equal(30, sem.timeouts[2])
        assert(coroutine.resume(loader))
        assert(coroutine.resume(scoped))
        assert(coroutine.resume(plain))
        assert.equal("x", got.scoped.v)
        assert.equal("x", got.plain.v)
        assert.equal(1, loads())
        assert.equal(2, c.stats.waits)
    end)
end)
