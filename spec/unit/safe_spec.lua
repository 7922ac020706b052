-- authhero.aws.safe with a scripted transport in place of DynamoDB: the client's and the adapters'
-- calls return nil, err instead of raising, everything else passes through unchanged, colon and dot
-- calls, the paginate iterator's convention, transaction, and wrapping generated from the real
-- objects (a method or an adapter added later is wrapped too).
local aws = require "authhero.aws"
local safe = require "authhero.aws.safe"
local cjson = require "cjson"
local errors = aws.errors
local client_mod = require "authhero.aws.client"
local schema = require "authhero.aws.schema"
local store = require "authhero.aws.store"

-- a flat item of strings and numbers -> DynamoDB's typed JSON, for the items of a scripted reply
local function typed(item)
    local m = {}
    for k, x in pairs(item) do m[k] = type(x) == "number" and { N = tostring(x) } or { S = x } end
    return m
end
local ITEM_FIELDS = { Item = true, LastEvaluatedKey = true }
local function reply(body)
    local b = {}
    for k, v in pairs(body) do
        if ITEM_FIELDS[k] then
            b[k] = typed(v)
        elseif k == "Items" then
            b[k] = {}
            for i, it in ipairs(v) do b[k][i] = typed(it) end
        elseif k == "Responses" then
            b[k] = {}
            for name, items in pairs(v) do
                b[k][name] = {}
                for i, it in ipairs(items) do b[k][name][i] = typed(it) end
            end
        else
            b[k] = v
        end
    end
    return { status = 200, body = cjson.encode(b), headers = {} }
end
local function err_reply(status, code, message)
    return { status = status, headers = {},
        body = cjson.encode({ __type = "com.amazonaws.dynamodb.v20120810#" .. code, message = message or code }) }
end

-- A transport answering request i with steps[i] (a reply, or a function of the decoded body).
local function scripted(steps)
    local t = { seen = {}, closed = 0 }
    function t.request(_, req)
        local body = cjson.decode(req.body)
        t.seen[#t.seen + 1] = body
        local s = table.remove(steps, 1)
        assert(s, "no reply scripted for request " .. #t.seen)
        if type(s) == "function" then return s(body) end
        return s
    end
    function t.close() t.closed = t.closed + 1 end
    return t
end

local function config(transport)
    return {
        region = "us-east-1", endpoint = "http://127.0.0.1:1", transport = transport,
        credentials = { accessKeyId = "AKID", secretAccessKey = "secret" },
        sleep = function() end, random = function() return 0 end, max_attempts = 2,
    }
end

local function new_client(steps)
    local t = scripted(steps or {})
    local c, err = safe.client.new(config(t))
    assert(c, tostring(err))
    return c, t
end

local GET = { TableName = "t", Key = { PK = "a", SK = "b" } }

describe("safe.client.new", function()
    it("returns nil, err on a bad config instead of raising", function()
        local c, err = safe.client.new({ region = "BAD REGION", credentials = { accessKeyId = "a", secretAccessKey = "b" } })
        assert.is_nil(c)
        assert.is_true(errors.is(err, "ValidationError"))
        assert.equals(400, err.status)
        c, err = safe.client.new({ region = 42 })
        assert.is_nil(c)
        assert.equals("bad config field 'region' (string expected, got number)", err)
        c, err = safe.client.new({ region = "us-east-1", transport = "pigeon" })
        assert.is_nil(c)
        assert.matches("bad config field 'transport'", err)
    end)

    it("wraps a real client, exposed as .raw, whose fields (stats) it reads through", function()
        local c = new_client({ reply({ Item = { PK = "a", SK = "b", n = 1 } }) })
        assert.equals(getmetatable(client_mod.new(config(scripted({})))), getmetatable(c.raw))
        assert.equals(c.raw, safe.raw(c))
        assert.equals("us-east-1", c.region)
        assert.equals(c.raw.stats, c.stats)
        assert.equals(0, c.stats.requests)
        assert.equals(1, c:call("GetItem", GET).Item.n)
        assert.equals(1, c.stats.requests)
        c.stats = { requests = 7, retries = 0, read_capacity = 0, write_capacity = 0 } -- writes go through too
        assert.equals(7, c.raw.stats.requests)
    end)
end)

describe("the safe client's methods", function()
    it("call: the reply, or nil, err (the error object raised, with its context)", function()
        local c, t = new_client({ err_reply(400, "ConditionalCheckFailedException", "nope"), reply({ Item = { PK = "x" } }) })
        local res, err = c:call("PutItem", { TableName = "t", Item = { PK = "a", SK = "b" },
            ConditionExpression = "attribute_not_exists(PK)" })
        assert.is_nil(res)
        assert.is_true(errors.is(err, "ConditionalCheckFailedException"))
        assert.equals(400, err.status)
        assert.equals("PutItem", err.op)
        assert.equals("t", err.table)
        assert.equals(1, #t.seen)
        res, err = c:call("GetItem", GET)
        assert.is_nil(err)
        assert.equals("x", res.Item.PK)
    end)

    it("call: a bug in the arguments comes back as the plain string, nothing sent", function()
        local c, t = new_client()
        local res, err = c:call("not an op", {})
        assert.is_nil(res)
        assert.equals("bad argument #1 to 'call' (DynamoDB operation name expected, got not an op)", err)
        res, err = c:call("GetItem", "params")
        assert.is_nil(res)
        assert.equals("bad argument #2 to 'call' (table expected, got string)", err)
        assert.equals(0, #t.seen)
        assert.equals(0, c.stats.requests)
    end)

    it("call: a value that does not encode is a MarshalError before any request", function()
        local c, t = new_client()
        local res, err = c:call("PutItem", { TableName = "t", Item = { PK = "a", f = function() end } })
        assert.is_nil(res)
        assert.is_true(errors.is(err), tostring(err))
        assert.equals(0, #t.seen)
    end)

    it("dot and colon calls, on the view or with the real client, are the same", function()
        local c = new_client({ reply({ Item = { PK = "1" } }), reply({ Item = { PK = "2" } }), reply({ Item = { PK = "3" } }) })
        assert.equals("1", c:call("GetItem", GET).Item.PK)
        assert.equals("2", c.call(c, "GetItem", GET).Item.PK)
        assert.equals("3", c.call(c.raw, "GetItem", GET).Item.PK)
        assert.equals(3, c.raw.stats.requests)
        assert.equals(c.call, c.call) -- made once per method, not per access
    end)

    it("batch_get: both results, items and unprocessed keys", function()
        local c = new_client({ reply({ Responses = { t = { { PK = "a", SK = "1" }, { PK = "a", SK = "2" } } } }) })
        local n = select("#", c:batch_get("t", { { PK = "a", SK = "1" }, { PK = "a", SK = "2" } }))
        assert.equals(2, n)
        c = new_client({ reply({ Responses = { t = { { PK = "a", SK = "1" } } } }) })
        local items, unprocessed = c:batch_get("t", { { PK = "a", SK = "1" }, { PK = "a", SK = "2" } })
        assert.equals(1, #items)
        assert.same({}, unprocessed)
    end)

    it("batch_write: a failure is nil, err with err.unprocessed", function()
        local c = new_client({ err_reply(400, "ValidationException", "bad item") })
        local reqs = {}
        for i = 1, 30 do reqs[i] = { PutRequest = { Item = { PK = "a", SK = tostring(i) } } } end
        local left, err = c:batch_write("t", reqs)
        assert.is_nil(left)
        assert.is_true(errors.is(err, "ValidationException"))
        assert.equals(30, #err.unprocessed)
        left, err = c:batch_write(5, reqs)
        assert.is_nil(left)
        assert.equals("bad argument #1 to 'batch_write' (string expected)", err)
    end)

    it("paginate: every page, then nil: the loop ends normally", function()
        local c = new_client({
            reply({ Items = { { PK = "1" } }, LastEvaluatedKey = { PK = "1" } }),
            reply({ Items = { { PK = "2" } } }),
        })
        local got = {}
        for page, err in c:paginate("Query", { TableName = "t" }) do
            assert.is_nil(err)
            got[#got + 1] = page.Items[1].PK
        end
        assert.same({ "1", "2" }, got)
    end)

    it("paginate: a failed page reaches the loop's body as false, err; then the loop ends", function()
        local c, t = new_client({
            reply({ Items = { { PK = "1" } }, LastEvaluatedKey = { PK = "1" } }),
            err_reply(400, "ResourceNotFoundException", "no table"),
        })
        local seen, failure, rounds = {}, nil, 0
        local pages = c:paginate("Query", { TableName = "t" })
        for page, err in pages do
            rounds = rounds + 1
            if rounds > 5 then break end
            if not page then
                assert.equals(false, page)
                failure = err
            else
                seen[#seen + 1] = page.Items[1].PK
            end
        end
        assert.same({ "1" }, seen)
        assert.equals(2, rounds)
        assert.is_true(errors.is(failure, "ResourceNotFoundException"))
        -- the iterator keeps the error: called again it says why it ended, and sends nothing more
        local v, err = pages()
        assert.is_nil(v)
        assert.equals(failure, err)
        assert.equals(2, #t.seen)
    end)

    it("paginate: a loop that ignores the error does not run on (and fails loudly if it reads it)", function()
        local c = new_client({ err_reply(400, "ResourceNotFoundException", "no table") })
        local bodies = 0
        for _ in c:paginate("Query", { TableName = "t" }) do
            bodies = bodies + 1
            if bodies > 5 then break end -- (a loop that never ends would fail here, not hang)
        end
        assert.equals(1, bodies)
        c = new_client({ err_reply(400, "ResourceNotFoundException", "no table") })
        assert.has_error(function()
            for page in c:paginate("Query", { TableName = "t" }) do local _ = page.Items end
        end)
    end)

    it("close: closes the real transport; to-be-closed works on the view", function()
        local c, t = new_client()
        local r, err = c:close()
        assert.is_nil(r)
        assert.is_nil(err)
        assert.equals(1, t.closed)
        if _VERSION == "Lua 5.4" and not rawget(_G, "jit") then
            local f = assert(load([[
                local safe, cfg = ...
                local c <close> = assert(safe.client.new(cfg))
            ]]))
            local t2 = scripted({})
            f(safe, config(t2))
            assert.equals(1, t2.closed)
        end
    end)

    it("a method the client gains later is wrapped too (read from the real client, not a list)", function()
        local c = new_client()
        client_mod.h2_probe = function(self, x)
            if x == "fail" then errors.raise(503, "Probe", "probe failed") end
            return self == c.raw, x
        end
        local ok, a, b = pcall(function() return c:h2_probe("v") end)
        local r, err = c:h2_probe("fail")
        client_mod.h2_probe = nil
        assert.is_true(ok)
        assert.is_true(a)
        assert.equals("v", b)
        assert.is_nil(r)
        assert.equals("Probe", err.code)
        assert.is_nil(c.h2_probe)
    end)

    it("err is never nil or false on a failure", function()
        local c = new_client()
        client_mod.h2_probe = function(_, v) error(v) end
        local r1, e1 = c:h2_probe(nil)
        local r2, e2 = c:h2_probe(false)
        local obj = errors.new(418, "Teapot", "short and stout")
        local r3, e3 = c:h2_probe(obj)
        client_mod.h2_probe = nil
        assert.is_nil(r1)
        assert.equals("(error object is a nil value)", e1)
        assert.is_nil(r2)
        assert.equals("(error object is a false value)", e2)
        assert.is_nil(r3)
        assert.equals(obj, e3) -- the very object raised
    end)
end)

describe("safe.wrap", function()
    it("wraps any function and any object, once", function()
        local f = safe.wrap(function(a, b) if a then return a, b end error("no a") end)
        assert.same({ 1, 2 }, { f(1, 2) })
        local r, err = f(nil)
        assert.is_nil(r)
        assert.matches("no a$", err)
        local obj = { n = 1 }
        function obj:get() return self.n end
        local v = safe.wrap(obj)
        assert.equals(1, v:get())
        assert.equals(v, safe.wrap(v))
        assert.equals(obj, safe.raw(v))
        assert.equals(5, safe.raw(5))
        assert.has_error(function() safe.wrap(5) end, "bad argument #1 to 'wrap' (function or table expected, got number)")
    end)
end)

describe("safe.create_adapters", function()
    local function adapters(steps)
        local c, t = new_client(steps)
        local a, err = safe.create_adapters(c, { tableName = "t" })
        assert(a, tostring(err))
        return a, t, c
    end

    it("has every adapter and method of the real adapters, generated from them", function()
        local a = adapters()
        local raw = safe.raw(a)
        assert.equals(raw, a.raw)
        local n = 0
        for name, x in pairs(raw) do
            if type(x) == "table" then
                assert.is_table(a[name], name)
                for m, fn in pairs(x) do
                    if type(fn) == "function" then
                        n = n + 1
                        assert.is_function(rawget(a[name], m), name .. "." .. m)
                        assert.are_not.equal(fn, a[name][m])
                    end
                end
            else
                assert.equals(type(x), type(a[name]), name)
            end
        end
        assert.is_true(n > 100, n .. " methods")
        assert.is_function(a.transaction)
    end)

    it("a validation error is nil, err (400) before any request, dot or colon", function()
        local a, t = adapters()
        local r, err = a.users.get(nil, "auth2|x")
        assert.is_nil(r)
        assert.equals("ValidationError", err.code)
        assert.equals(400, err.status)
        r, err = a.users:get(nil, "auth2|x")
        assert.is_nil(r)
        assert.equals("ValidationError", err.code)
        r, err = a.tenants.create({})
        assert.is_nil(r)
        assert.equals(400, err.status)
        assert.equals(0, #t.seen)
    end)

    it("a get that finds nothing returns nil and no error; a found one its record", function()
        local a, t = adapters({ reply({}), reply({ Item = { PK = "TENANT#x", SK = "TENANT", id = "x", friendly_name = "X",
            entityType = "TENANT", created_at = "2026-01-01T00:00:00.000Z", updated_at = "2026-01-01T00:00:00.000Z" } }) })
        local r, err = a.tenants.get("x")
        assert.is_nil(r)
        assert.is_nil(err)
        r, err = a.tenants:get("x")
        assert.is_nil(err)
        assert.equals("X", r.friendly_name)
        assert.equals(2, #t.seen)
    end)

    it("a storage failure is nil, err: the client's error object", function()
        local a = adapters({ err_reply(400, "ResourceNotFoundException", "no table") })
        local r, err = a.tenants.get("x")
        assert.is_nil(r)
        assert.is_true(errors.is(err, "ResourceNotFoundException"))
        assert.equals("GetItem", err.op)
    end)

    it("the unsupported adapters return nil, err 501", function()
        local a = adapters()
        local r, err = a.actions.create("t", {})
        assert.is_nil(r)
        assert.equals(501, err.status)
    end)

    it("transaction hands fn the safe adapters and returns its results", function()
        local a = adapters()
        local got
        local x, y = a.transaction(function(s)
            got = s
            return 1, 2
        end)
        assert.equals(a, got)
        assert.same({ 1, 2 }, { x, y })
        x = a:transaction(function(s) return s == a end)
        assert.is_true(x)
    end)

    it("transaction: nil, err when fn raises (an error object or a string) or is no function", function()
        local a = adapters({ reply({}) })
        local obj = errors.new(409, "Conflict", "taken")
        local r, err = a.transaction(function(s)
            local _, e = s.users.get("t", "auth2|x") -- a safe call inside: no raise, nil, nil
            assert(e == nil)
            error(obj)
        end)
        assert.is_nil(r)
        assert.equals(obj, err)
        r, err = a.transaction(function() error("boom", 0) end)
        assert.is_nil(r)
        assert.equals("boom", err)
        r, err = a.transaction("not a function")
        assert.is_nil(r)
        assert.equals("bad argument #1 to 'transaction' (function expected)", err)
    end)

    it("takes a safe client or a raw one; the real create_adapters takes a safe one too", function()
        local c, t = new_client({ reply({}), err_reply(400, "ResourceNotFoundException", "no table") })
        local a = assert(safe.create_adapters(c.raw, { tableName = "t" }))
        assert.is_nil(a.tenants.get("x"))
        local real = aws.create_adapters(c, { tableName = "t" })
        -- the real adapters raise, on the real client: not a nil reply turned into a confused bug
        local ok, err = pcall(real.tenants.get, "x")
        assert.is_false(ok)
        assert.is_true(errors.is(err, "ResourceNotFoundException"))
        assert.equals(2, #t.seen)
    end)

    it("returns nil, err for a bad client or table name", function()
        local a, err = safe.create_adapters(42, {})
        assert.is_nil(a)
        assert.equals("bad argument #1 to 'create_adapters' (client expected)", err)
        local c = new_client()
        a, err = safe.create_adapters(c, { tableName = 42 })
        assert.is_nil(a)
        assert.equals("tableName must be a string", err.message)
    end)

    it("an adapter added to the registry later is wrapped with no change here", function()
        package.preload["authhero.aws.adapters.h2_probe"] = function()
            return function()
                return store.adapter({
                    echo = function(x) return x end,
                    bug = function() local t = nil; return t.field end,
                    fail = function() errors.validation("probe %s", "refused") end,
                })
            end
        end
        table.insert(schema.entities, { name = "h2Probe", module = "h2_probe" })
        local ok, a = pcall(adapters)
        for i = #schema.entities, 1, -1 do
            if schema.entities[i].name == "h2Probe" then table.remove(schema.entities, i) end
        end
        package.preload["authhero.aws.adapters.h2_probe"] = nil
        package.loaded["authhero.aws.adapters.h2_probe"] = nil
        assert(ok, tostring(a))
        assert.equals("v", a.h2Probe.echo("v"))
        assert.equals("v", a.h2Probe:echo("v"))
        local r, err = a.h2Probe.fail()
        assert.is_nil(r)
        assert.equals("probe refused", err.message)
        r, err = a.h2Probe.bug()
        assert.is_nil(r)
        assert.is_string(err) -- a bug is the plain Lua message
        assert.matches("attempt to index", err)
    end)
end)
