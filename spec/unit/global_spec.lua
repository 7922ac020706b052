-- aws.global, the multi-Region router, over one stub transport per Region (no database): the REAL
-- adapters run through create_adapters(router), and each Region's transport records what it got.
-- Classification of the adapters' write and read paths, refuse / forward / warn, nothing sent
-- before a WrongRegion or RegionFrozen, the breaker's transitions on an injected clock, fail-closed
-- security writes, read failover, evacuation (freeze, set_home), the MRSC refusal, batches split
-- by destination, and the client retrying ReplicatedWriteConflictException.
local aws = require "authhero.aws"
local cjson = require "cjson"
local global = require "authhero.aws.global"
local errors = aws.errors

local EU, US = "eu-west-1", "us-east-1"
local T_EU, T_US = "t-eu", "t-us" -- tenants whose homes are EU and US

local function err_reply(status, code, extra)
    local body = { __type = "com.amazonaws.dynamodb.v20120810#" .. code, message = code }
    for k, v in pairs(extra or {}) do body[k] = v end
    return { status = status, body = cjson.encode(body), headers = {} }
end

local function target_of(req)
    for _, h in ipairs(req.headers) do
        if h[1] == "x-amz-target" then return (h[2]:gsub("^[^.]*%.", "")) end
    end
end

-- A Region's transport: records { op, body } and answers by op; t.fault = "connect" | "e503" makes
-- every request fail; t.replies[op] = a list of replies to give first (then the default).
local function region_transport(name)
    local t = { name = name, seen = {}, replies = {}, closed = 0 }
    function t.request(_, req)
        local op = target_of(req)
        t.seen[#t.seen + 1] = { op = op, body = cjson.decode(req.body) }
        if t.fault == "connect" then
            errors.raise(0, "TransportError", "connect refused", { reason = "connect", retryable = true, sent = false })
        elseif t.fault == "e503" then
            return err_reply(503, "ServiceUnavailable")
        end
        local queue = t.replies[op]
        if queue and #queue > 0 then return table.remove(queue, 1) end
        if op == "Query" or op == "Scan" then return { status = 200, body = '{"Items":[],"Count":0}', headers = {} } end
        if op == "BatchGetItem" then return { status = 200, body = '{"Responses":{}}', headers = {} } end
        return { status = 200, body = "{}", headers = {} }
    end
    function t.close() t.closed = t.closed + 1 end
    function t.ops()
        local out = {}
        for i, s in ipairs(t.seen) do out[i] = s.op end
        return out
    end
    return t
end

local function options(transport)
    return {
        region = transport.name, endpoint = "http://127.0.0.1:1", transport = transport, max_attempts = 1,
        credentials = { accessKeyId = "AKID", secretAccessKey = "secret" },
        sleep = function() end, random = function() return 0 end,
    }
end

-- A router in local Region `where` (default EU) -> router, transports by Region, log lines, clock.
local function setup(cfg)
    cfg = cfg or {}
    local tr = { [EU] = region_transport(EU), [US] = region_transport(US) }
    local logged = {}
    local clock = { t = 1000 }
    local conf = {
        local_region = cfg.local_region or EU,
        regions = { [EU] = options(tr[EU]), [US] = options(tr[US]) },
        home = cfg.home or { default = EU, tenants = { [T_EU] = EU, [T_US] = US, ["a#b%c"] = US } },
        log = function(event, info) logged[#logged + 1] = { event = event, info = info } end,
        now = function() return clock.t end,
        sleep = function() end,
        breaker = cfg.breaker,
        frozen = cfg.frozen,
    }
    for k, v in pairs(cfg) do
        if conf[k] == nil then conf[k] = v end
    end
    local router = global.new(conf)
    return router, tr, logged, clock
end

local fails = require "support.raises"

local FUTURE = "2099-01-01T00:00:00.000Z"

-- The adapter paths of the issue: name, call, kind ("security": only the home Region may take its
-- writes; "local": stays in the local Region) and the ops each one sends.
local PATHS = {
    { "users.create", "security", function(a, t)
        return a.users.create(t, { user_id = "auth2|u1", email = "a@example.com", provider = "auth2",
            connection = "Username-Password-Authentication", is_social = false })
    end },
    { "codes.consume", "security", function(a, t) return a.codes.consume(t, "c1") end },
    { "codes.used", "security", function(a, t) return a.codes.used(t, "c1") end },
    { "refreshTokens.update (conditional rotation)", "security", function(a, t)
        return a.refreshTokens.update(t, "r1", { revoked_at = "2026-01-01T00:00:00.000Z" })
    end },
    { "sessions.create", "security", function(a, t)
        return a.sessions.create(t, { id = "s1", user_id = "u1", login_session_id = "l1", expires_at = FUTURE })
    end },
    { "loginSessions.update", "security", function(a, t)
        return a.loginSessions.update(t, "l1", { state = "authenticated" })
    end },
    { "passwords.create", "security", function(a, t)
        return a.passwords.create(t, { user_id = "u1", password = "hash", algorithm = "bcrypt" })
    end, { "Query" } },
    { "customDomains.create (domain claim)", "security", function(a, t)
        return a.customDomains.create(t, { domain = "login.example.com", type = "auth0_managed_certs" })
    end },
    { "clients.create (client-id pointer)", "security", function(a, t)
        return a.clients.create(t, { client_id = "c1", name = "app" })
    end },
    { "logs.create", "local", function(a, t)
        return a.logs.create(t, { type = "s", date = "2026-01-01T00:00:00.000Z", description = "ok", ip = "10.0.0.1",
            isMobile = false })
    end },
    { "branding.set", "local", function(a, t) return a.branding.set(t, { colors = { primary = "#ffffff" } }) end },
}

describe("aws.global: the adapters' write paths", function()
    for _, case in ipairs(PATHS) do
        local name, kind, fn, reads = case[1], case[2], case[3], case[4] or {}
        if kind == "security" then
            it(name .. ": a foreign tenant's write is refused with WrongRegion before anything is sent", function()
                local router, tr = setup()
                local a = aws.create_adapters(router, { tableName = "t" })
                local err = fails(fn, a, T_US)
                assert.equal("WrongRegion", err.code)
                assert.equal(421, err.status)
                assert.equal(US, err.home_region)
                assert.equal(T_US, err.tenant)
                assert.equal(EU, err.region)
                assert.same({}, tr[EU].seen)
                -- no write was sent anywhere: only the reads before it (passwords.create's consistent
                -- Query of the user's passwords, at home)
                assert.same(reads, tr[US].ops())
            end)
            it(name .. ": forwarded to the home Region (and logged), the local Region gets nothing", function()
                local router, tr, logged = setup({ foreign_security_write = "forward" })
                local a = aws.create_adapters(router, { tableName = "t" })
                fn(a, T_US)
                assert.same({}, tr[EU].seen)
                assert.is_true(#tr[US].seen >= 1)
                local forwards = 0
                for _, l in ipairs(logged) do
                    if l.event == "forward" then
                        forwards = forwards + 1
                        assert.equal(T_US, l.info.tenant)
                        assert.equal(EU, l.info.from)
                        assert.equal(US, l.info.to)
                    end
                end
                assert.is_true(forwards >= 1)
            end)
            it(name .. ": a home tenant's write stays in the local Region", function()
                local router, tr = setup()
                local a = aws.create_adapters(router, { tableName = "t" })
                fn(a, T_EU)
                assert.is_true(#tr[EU].seen >= 1)
                assert.same({}, tr[US].seen)
            end)
        else
            it(name .. ": written in the local Region even for a foreign tenant (refuse mode)", function()
                local router, tr, logged = setup()
                local a = aws.create_adapters(router, { tableName = "t" })
                fn(a, T_US)
                assert.is_true(#tr[EU].seen >= 1)
                assert.same({}, tr[US].seen)
                assert.same({}, logged)
            end)
        end
    end

    it("warn: a foreign security write is made locally and logged", function()
        local router, tr, logged = setup({ foreign_security_write = "warn" })
        local a = aws.create_adapters(router, { tableName = "t" })
        assert.is_true(a.codes.consume(T_US, "c1"))
        assert.same({ "UpdateItem" }, tr[EU].ops())
        assert.same({}, tr[US].seen)
        assert.equal(1, #logged)
        assert.equal("warn", logged[1].event)
        assert.same({ op = "UpdateItem", table = "t", tenant = T_US, from = EU, to = EU, home = US }, logged[1].info)
    end)

    it("the ops each path sends, as the router saw them (forward mode, foreign tenant)", function()
        local router, tr = setup({ foreign_security_write = "forward" })
        local a = aws.create_adapters(router, { tableName = "t" })
        PATHS[1][3](a, T_US)
        PATHS[7][3](a, T_US) -- passwords.create: a consistent Query, then the transaction
        PATHS[5][3](a, T_US) -- sessions.create: the session, then the login session's expiry
        assert.same({ "TransactWriteItems", "Query", "TransactWriteItems", "PutItem", "UpdateItem" }, tr[US].ops())
        assert.same({}, tr[EU].seen)
    end)
end)

describe("aws.global: reads", function()
    it("ConsistentRead reads the home Region; eventually consistent reads stay local", function()
        local router, tr = setup()
        local a = aws.create_adapters(router, { tableName = "t" })
        assert.is_nil(a.users.get(T_US, "u1")) -- GetItem, ConsistentRead
        assert.same({ "GetItem" }, tr[US].ops())
        assert.is_true(tr[US].seen[1].body.ConsistentRead)
        assert.is_nil(a.users.getByEmail(T_US, "a@example.com")) -- GSI1 Query, eventually consistent
        assert.same({ "Query" }, tr[EU].ops())
    end)

    it("reads of security entities go home even when eventually consistent (sessions by user, GSI1)", function()
        local router, tr = setup()
        local a = aws.create_adapters(router, { tableName = "t" })
        a.sessions.list(T_US, { q = "user_id:u1" })
        assert.same({ "Query" }, tr[US].ops())
        assert.equal("GSI1", tr[US].seen[1].body.IndexName)
        assert.same({}, tr[EU].seen)
    end)

    it("a global item without a tenant (client-id pointer) reads home.default", function()
        local router, tr = setup({ home = { default = US, tenants = { [T_EU] = EU } } })
        local a = aws.create_adapters(router, { tableName = "t" })
        assert.is_nil(a.clients.getByClientId("c1"))
        assert.same({ "GetItem" }, tr[US].ops())
        assert.same({}, tr[EU].seen)
    end)

    it("paginate, batch_get and batch_write go through the router", function()
        local router, tr = setup({ foreign_security_write = "forward" })
        tr[EU].replies.Query = {
            { status = 200, body = '{"Items":[],"LastEvaluatedKey":{"PK":{"S":"TENANT#t-eu"},"SK":{"S":"LOG#1"}}}', headers = {} },
        }
        local pages = 0
        for _ in router:paginate("Query", { TableName = "t", KeyConditionExpression = "PK = :p",
            ExpressionAttributeValues = { [":p"] = "TENANT#" .. T_EU } }) do
            pages = pages + 1
        end
        assert.equal(2, pages)
        assert.same({ "Query", "Query" }, tr[EU].ops())
        local items, left = router:batch_get("t", { { PK = "TENANT#" .. T_US, SK = "CODE#c1" } })
        assert.same({}, items)
        assert.same({}, left)
        assert.same({ "BatchGetItem" }, tr[US].ops()) -- a code: a security entity
        local un = router:batch_write("t", { { PutRequest = { Item = { PK = "TENANT#" .. T_US, SK = "LOG#1",
            entityType = "LOG" } } } })
        assert.same({}, un)
        assert.same({ "Query", "Query", "BatchWriteItem" }, tr[EU].ops())
    end)
end)

describe("aws.global: classify", function()
    local router = setup()

    it("finds the tenant in escaped keys, item attributes and conditions", function()
        assert.equal("a#b%c", router:classify("GetItem", { TableName = "t",
            Key = { PK = "TENANT#a%23b%25c", SK = "USER#u" } }).tenant)
        assert.equal(US, router:home_of("a#b%c"))
        local c = router:classify("PutItem", { TableName = "t",
            Item = { PK = "CLIENT_ID#c1", SK = "CLIENT_ID", entityType = "CLIENT_ID_POINTER", tenant_id = T_US } })
        assert.same({ "security_write", T_US }, { c.kind, c.tenant })
        c = router:classify("DeleteItem", { TableName = "t", Key = { PK = "DOMAIN#x.example.com", SK = "CLAIM" },
            ConditionExpression = "#n1 = :v1", ExpressionAttributeNames = { ["#n1"] = "tenant_id" },
            ExpressionAttributeValues = { [":v1"] = T_US } })
        assert.same({ "security_write", T_US }, { c.kind, c.tenant })
        assert.is_nil(router:classify("GetItem", { TableName = "t", Key = { PK = "KEYS", SK = "KEY#k" } }).tenant)
    end)

    it("unconditional writes of security entities, by entityType or key shape; others are ordinary", function()
        local function kind(op, p) return router:classify(op, p).kind end
        assert.equal("security_write", kind("DeleteItem", { Key = { PK = "TENANT#x", SK = "CODE#c" } }))
        assert.equal("security_write", kind("DeleteItem", { Key = { PK = "TENANT#x", SK = "USER_EMAIL#a@b.c#auth2" } }))
        assert.equal("security_write", kind("PutItem", { Item = { PK = "TENANT#x#RT_FAMILY#f", SK = "REFRESH_TOKEN#r",
            entityType = "REFRESH_TOKEN_FAMILY" } }))
        assert.equal("security_write", kind("UpdateItem", { Key = { PK = "TENANT#x#USER#u", SK = "PASSWORD#p" } }))
        assert.equal("security_write", kind("UpdateItem", { Key = { PK = "TENANT#x", SK = "ROLE_NAME#admin" } }))
        assert.equal("write", kind("UpdateItem", { Key = { PK = "TENANT#x", SK = "BRANDING" } }))
        assert.equal("write", kind("PutItem", { Item = { PK = "TENANT#x", SK = "USER#u", entityType = "USER" } }))
        assert.equal("security_write", kind("PutItem", { Item = { PK = "TENANT#x", SK = "USER#u", entityType = "USER" },
            ConditionExpression = "attribute_not_exists(PK)" }))
        assert.equal("security_write", kind("TransactWriteItems", { TransactItems = {} }))
        assert.equal("control", kind("DescribeTable", { TableName = "t" }))
        assert.equal("security_read", kind("TransactGetItems", { TransactItems = {} }))
        assert.equal("read", kind("Query", { IndexName = "GSI1", KeyConditionExpression = "#a = :a",
            ExpressionAttributeNames = { ["#a"] = "GSI1PK" }, ExpressionAttributeValues = { [":a"] = "TENANT#x#EMAIL#a" } }))
    end)

    it("the security entity types come from the registry", function()
        local schema = require "authhero.aws.schema"
        for _, E in ipairs(schema.entities) do
            for _, h in ipairs(E.helpers) do
                if h.kind == "guard" then assert.is_true(global.SECURITY_TYPES[h.entity_type], h.name) end
            end
        end
        for _, n in ipairs({ "CODE", "SESSION", "LOGIN_SESSION", "REFRESH_TOKEN", "REFRESH_TOKEN_FAMILY",
            "REFRESH_TOKEN_LOGIN", "PASSWORD", "CLIENT_ID_POINTER", "CUSTOM_DOMAIN_CLAIM", "USER_GUARD" }) do
            assert.is_true(global.SECURITY_TYPES[n], n)
        end
        assert.is_nil(global.SECURITY_TYPES.LOG)
        assert.is_nil(global.SECURITY_TYPES.BRANDING)
        assert.is_nil(global.SECURITY_TYPES.USER_ORGANIZATION_ID) -- a pointer, but not a client id's
    end)

    it("a transaction over tenants with different homes is a ValidationError, nothing sent", function()
        local r, tr = setup()
        local err = fails(r.call, r, "TransactWriteItems", { TransactItems = {
            { Put = { TableName = "t", Item = { PK = "TENANT#" .. T_EU, SK = "CODE#a" } } },
            { Put = { TableName = "t", Item = { PK = "TENANT#" .. T_US, SK = "CODE#b" } } },
        } })
        assert.equal("ValidationError", err.code)
        assert.same({}, tr[EU].seen)
        assert.same({}, tr[US].seen)
    end)
end)

describe("aws.global: batches", function()
    local LOG_EU = { PutRequest = { Item = { PK = "TENANT#" .. T_EU, SK = "LOG#1", entityType = "LOG" } } }
    local CODE_US = { DeleteRequest = { Key = { PK = "TENANT#" .. T_US, SK = "CODE#c" } } }

    it("refuse: a batch holding a foreign security entry sends nothing", function()
        local r, tr = setup()
        local err = fails(r.call, r, "BatchWriteItem", { RequestItems = { t = { LOG_EU, CODE_US } } })
        assert.equal("WrongRegion", err.code)
        assert.same({}, tr[EU].seen)
        assert.same({}, tr[US].seen)
    end)

    it("forward: split by destination, unprocessed entries merged", function()
        local r, tr = setup({ foreign_security_write = "forward" })
        tr[US].replies.BatchWriteItem = { { status = 200, headers = {},
            body = cjson.encode({ UnprocessedItems = { t = { { DeleteRequest = { Key = {
                PK = { S = "TENANT#" .. T_US }, SK = { S = "CODE#c" } } } } } } }) } }
        local reply = r:call("BatchWriteItem", { RequestItems = { t = { LOG_EU, CODE_US } } })
        assert.same({ "BatchWriteItem" }, tr[EU].ops())
        assert.same({ "BatchWriteItem" }, tr[US].ops())
        assert.equal(1, #tr[EU].seen[1].body.RequestItems.t)
        assert.equal(1, #tr[US].seen[1].body.RequestItems.t)
        assert.same({ CODE_US }, reply.UnprocessedItems.t)
    end)

    it("BatchGetItem: security keys read at home, the others locally, responses merged", function()
        local r, tr = setup()
        local code = { PK = "TENANT#" .. T_US, SK = "CODE#c" }
        local branding = { PK = "TENANT#" .. T_US, SK = "BRANDING" }
        tr[US].replies.BatchGetItem = { { status = 200, headers = {}, body = cjson.encode({ Responses = { t = {
            { PK = { S = code.PK }, SK = { S = code.SK }, code_id = { S = "c" } } } } }) } }
        tr[EU].replies.BatchGetItem = { { status = 200, headers = {}, body = cjson.encode({ Responses = {},
            UnprocessedKeys = { t = { Keys = { { PK = { S = branding.PK }, SK = { S = branding.SK } } } } } }) } }
        local reply = r:call("BatchGetItem", { RequestItems = { t = { Keys = { code, branding } } } })
        assert.same({ "BatchGetItem" }, tr[US].ops())
        assert.same({ "BatchGetItem" }, tr[EU].ops())
        assert.same({ { PK = { S = code.PK }, SK = { S = code.SK } } }, tr[US].seen[1].body.RequestItems.t.Keys)
        assert.same({ { PK = { S = branding.PK }, SK = { S = branding.SK } } }, tr[EU].seen[1].body.RequestItems.t.Keys)
        assert.equal("c", reply.Responses.t[1].code_id)
        assert.same({ branding }, reply.UnprocessedKeys.t.Keys)
    end)
end)

describe("aws.global: breaker", function()
    local BR = { threshold = 3, window_ms = 10000, cooldown_ms = 5000 }

    it("opens after threshold failures in the window; reads fail over meanwhile; half-open probe", function()
        local r, tr, logged, clock = setup({ breaker = BR })
        local a = aws.create_adapters(r, { tableName = "t" })
        tr[US].fault = "e503"
        for i = 1, 3 do
            assert.is_nil(a.users.get(T_US, "u" .. i)) -- home US fails, the read is answered by EU
            clock.t = clock.t + 1
        end
        assert.equal("open", (r:breaker(US)))
        assert.equal(3, #tr[US].seen)
        assert.equal(3, #tr[EU].seen)
        local n = #tr[US].seen
        a.users.get(T_US, "u9") -- skipped: open
        assert.equal(n, #tr[US].seen)
        clock.t = clock.t + 5
        assert.equal("half_open", (r:breaker(US)))
        a.users.get(T_US, "u10") -- the probe, still failing: open again
        assert.equal(n + 1, #tr[US].seen)
        assert.equal("open", (r:breaker(US)))
        clock.t = clock.t + 5
        tr[US].fault = nil
        a.users.get(T_US, "u11") -- the probe succeeds
        assert.equal("closed", (r:breaker(US)))
        local changes = {}
        for _, l in ipairs(logged) do
            if l.event == "breaker" then changes[#changes + 1] = l.info.from .. ">" .. l.info.to end
        end
        assert.same({ "closed>open", "open>half_open", "half_open>open", "open>half_open", "half_open>closed" }, changes)
        local failovers = 0 -- a read that failed at home and was answered locally: u1-u3 and the failed probe
        for _, l in ipairs(logged) do
            if l.event == "failover" then
                failovers = failovers + 1
                assert.same({ US, EU, T_US, "GetItem" }, { l.info.from, l.info.to, l.info.tenant, l.info.op })
            end
        end
        assert.equal(4, failovers)
    end)

    it("failures spread wider than the window do not open it; 4xx answers are not failures", function()
        local r, tr, _, clock = setup({ breaker = BR, local_region = US })
        local a = aws.create_adapters(r, { tableName = "t" })
        tr[US].fault = "connect"
        for _ = 1, 4 do
            fails(a.codes.consume, T_US, "c")
            clock.t = clock.t + 6 -- two failures at most within 10 s
        end
        assert.equal("closed", (r:breaker(US)))
        tr[US].fault = nil
        tr[US].replies.UpdateItem = {}
        for i = 1, 5 do
            tr[US].replies.UpdateItem[i] = err_reply(400, "ConditionalCheckFailedException")
        end
        for _ = 1, 5 do assert.is_false(a.codes.consume(T_US, "c")) end
        assert.equal("closed", (r:breaker(US)))
    end)

    it("fails closed: a tenant's security writes while its home is open raise RegionUnavailable, sent nowhere", function()
        local r, tr = setup({ breaker = BR, local_region = US })
        local a = aws.create_adapters(r, { tableName = "t" })
        r:trip(US)
        local before = #tr[US].seen
        local err = fails(a.codes.consume, T_US, "c1")
        assert.equal("RegionUnavailable", err.code)
        assert.equal(503, err.status)
        assert.equal(US, err.home_region)
        assert.equal(before, #tr[US].seen)
        assert.same({}, tr[EU].seen)
        -- reads and ordinary writes continue in the other Region
        assert.is_nil(a.users.get(T_US, "u1"))
        a.logs.create(T_US, { type = "s", date = "2026-01-01T00:00:00.000Z", description = "x", ip = "1.1.1.1",
            isMobile = false })
        assert.same({ "GetItem", "PutItem" }, tr[EU].ops())
        r:reset(US)
        assert.is_true(a.codes.consume(T_US, "c1"))
    end)

    it("a forwarded write to an open home Region fails closed too", function()
        local r, tr = setup({ foreign_security_write = "forward" })
        r:trip(US)
        local a = aws.create_adapters(r, { tableName = "t" })
        local err = fails(a.codes.consume, T_US, "c1")
        assert.equal("RegionUnavailable", err.code)
        assert.same({ US, EU, US }, { err.region, err.local_region, err.home_region })
        assert.same({}, tr[EU].seen)
        assert.same({}, tr[US].seen)
    end)

    it("every Region open: reads raise RegionUnavailable naming them", function()
        local r, tr = setup()
        r:trip(US)
        r:trip(EU)
        local err = fails(r.call, r, "GetItem", { TableName = "t", Key = { PK = "TENANT#" .. T_EU, SK = "BRANDING" } })
        assert.equal("RegionUnavailable", err.code)
        assert.same({ EU, US }, err.regions)
        assert.same({}, tr[EU].seen)
        assert.same({}, tr[US].seen)
    end)

    it("an error from a Region names it (err.region)", function()
        local r, tr = setup({ local_region = US })
        tr[US].fault = "connect"
        local err = fails(r.call, r, "UpdateItem", { TableName = "t", Key = { PK = "TENANT#" .. T_US, SK = "CODE#c" },
            ConditionExpression = "attribute_exists(PK)" })
        assert.equal("TransportError", err.code)
        assert.equal(US, err.region)
    end)
end)

describe("aws.global: evacuation", function()
    it("frozen tenants' security writes raise RegionFrozen before anything is sent; others continue", function()
        local r, tr = setup({ frozen = { T_EU } })
        local a = aws.create_adapters(r, { tableName = "t" })
        assert.is_true(r:is_frozen(T_EU))
        local err = fails(a.codes.consume, T_EU, "c1")
        assert.equal("RegionFrozen", err.code)
        assert.equal(503, err.status)
        assert.equal(T_EU, err.tenant)
        assert.same({}, tr[EU].seen)
        a.branding.set(T_EU, { colors = { primary = "#000000" } })
        assert.same({ "UpdateItem" }, tr[EU].ops())
        r:unfreeze(T_EU)
        assert.is_true(a.codes.consume(T_EU, "c1"))
    end)

    it("freeze, set_home, unfreeze: the tenant's security writes move to the new home", function()
        local r, tr = setup()
        local a = aws.create_adapters(r, { tableName = "t" })
        assert.is_true(a.codes.consume(T_EU, "c1"))
        r:freeze(T_EU)
        assert.equal("RegionFrozen", fails(a.codes.consume, T_EU, "c1").code)
        r:set_home(T_EU, US)
        r:unfreeze(T_EU)
        assert.equal("WrongRegion", fails(a.codes.consume, T_EU, "c1").code)
        assert.same({ "UpdateItem" }, tr[EU].ops())
        assert.same({}, tr[US].seen)
        assert.equal(US, r:status().homes[T_EU])
        local fwd, ftr = setup({ foreign_security_write = "forward" })
        fwd:set_home(T_EU, US)
        assert.is_true(aws.create_adapters(fwd, { tableName = "t" }).codes.consume(T_EU, "c1"))
        assert.same({ "UpdateItem" }, ftr[US].ops())
        assert.equal("ValidationError", fails(r.set_home, r, T_EU, "ap-south-1").code)
    end)

    it("home as a function", function()
        local r, tr = setup({ home = function(t) return t == "x" and US or EU end })
        r:call("UpdateItem", { TableName = "t", Key = { PK = "TENANT#y", SK = "CODE#c" }, ConditionExpression = "attribute_exists(PK)" })
        assert.same({ "UpdateItem" }, tr[EU].ops())
        assert.equal("WrongRegion", fails(r.call, r, "UpdateItem", { TableName = "t",
            Key = { PK = "TENANT#x", SK = "CODE#c" }, ConditionExpression = "attribute_exists(PK)" }).code)
    end)
end)

describe("aws.global: MRSC", function()
    local function describe_reply(mrc)
        return { status = 200, headers = {}, body = cjson.encode({ Table = { TableName = "t", TableStatus = "ACTIVE",
            MultiRegionConsistency = mrc } }) }
    end

    local function new_mrsc(reply)
        local eu, us = region_transport(EU), region_transport(US)
        eu.replies.DescribeTable = { reply }
        local ok, err = pcall(global.new, { mode = "mrsc", local_region = EU, tableName = "t",
            regions = { [EU] = options(eu), [US] = options(us) }, home = EU })
        return ok, err, eu, us
    end

    it("an MRSC table is refused with the reason; only DescribeTable was sent", function()
        local ok, err, eu, us = new_mrsc(describe_reply("STRONG"))
        assert.is_false(ok)
        assert.equal("MRSCUnsupported", err.code)
        assert.equal(501, err.status)
        assert.matches("no TransactWriteItems and no TTL", err.message, 1, true)
        assert.same({ "DescribeTable" }, eu.ops())
        assert.same({}, us.seen)
    end)

    it("mode = mrsc on a table that is not MRSC is a ValidationError", function()
        local ok, err = new_mrsc(describe_reply("EVENTUAL"))
        assert.is_false(ok)
        assert.equal("ValidationError", err.code)
        ok, err = new_mrsc(describe_reply(nil))
        assert.is_false(ok)
        assert.matches("absent", err.message, 1, true)
    end)

    it("mode = mrec with check_table refuses an MRSC table and takes an MREC one", function()
        for _, case in ipairs({ { "STRONG", false }, { "EVENTUAL", true } }) do
            local eu = region_transport(EU)
            eu.replies.DescribeTable = { describe_reply(case[1]) }
            local ok, r = pcall(global.new, { local_region = EU, tableName = "t", check_table = true,
                regions = { [EU] = options(eu) }, home = EU })
            assert.equal(case[2], ok)
            if not ok then assert.equal("MRSCUnsupported", r.code) end
            assert.same({ "DescribeTable" }, eu.ops())
        end
    end)

    it("the client retries ReplicatedWriteConflictException, even for a conditional write", function()
        local t = region_transport(EU)
        t.replies.PutItem = { err_reply(400, "ReplicatedWriteConflictException") }
        local o = options(t)
        o.max_attempts = 2
        local c = aws.client.new(o)
        c:call("PutItem", { TableName = "t", Item = { PK = "a", SK = "b" }, ConditionExpression = "attribute_not_exists(PK)" })
        assert.same({ "PutItem", "PutItem" }, t.ops())
    end)
end)

describe("aws.global: configuration and the client's stand-in", function()
    it("bad configuration is a ValidationError", function()
        local good = function()
            return { local_region = EU, regions = { [EU] = options(region_transport(EU)) }, home = EU }
        end
        for _, change in ipairs({
            { mode = "strong" }, { foreign_security_write = "allow" }, { local_region = US },
            { home = { default = US } }, { home = 5 }, { breaker = { threshold = 0 } }, { frozen = "t" },
            { local_entities = { "codes" } }, { local_entities = { "nope" } }, { regions = {} },
        }) do
            local cfg = good()
            for k, v in pairs(change) do cfg[k] = v end
            local ok, err = pcall(global.new, cfg)
            assert.is_false(ok)
            assert.equal("ValidationError", errors.is(err) and err.code, next(change))
        end
    end)

    it("stats sum the Regions, close closes them all, aws.global is the module", function()
        local r, tr = setup({ foreign_security_write = "forward" })
        r:call("GetItem", { TableName = "t", Key = { PK = "TENANT#" .. T_EU, SK = "BRANDING" } })
        r:call("GetItem", { TableName = "t", Key = { PK = "TENANT#" .. T_US, SK = "BRANDING" }, ConsistentRead = true })
        assert.equal(2, r.stats.requests)
        assert.equal(1, r.clients[EU].stats.requests)
        r.stats.retries = r.stats.retries + 2 -- what the batch helpers do
        assert.equal(2, r.stats.retries)
        r:close()
        assert.equal(1, tr[EU].closed)
        assert.equal(1, tr[US].closed)
        assert.equal(global.new, aws.global.new)
        assert.equal(EU, r.region)
        local s = r:status()
        assert.equal("closed", s.regions[US].state)
        assert.equal("forward", s.foreign_security_write)
    end)

    it("changes reads the local Region's stream; a home function naming no Region is a ValidationError", function()
        local calls = {}
        local function fake(name)
            return { stats = {}, call = function() error("not expected") end,
                changes = function(_, tname, opts)
                    calls[#calls + 1] = { name, tname, opts }
                    return "iterator of " .. name
                end }
        end
        local r = global.new({ local_region = US, regions = { [EU] = fake(EU), [US] = fake(US) },
            home = function(t) return t == "lost" and "mars-1" or US end })
        assert.equal("iterator of " .. US, r:changes("t", { from = "trim_horizon" }))
        assert.same({ { US, "t", { from = "trim_horizon" } } }, calls)
        local err = fails(r.call, r, "UpdateItem", { TableName = "t", Key = { PK = "TENANT#lost", SK = "CODE#c" },
            ConditionExpression = "attribute_exists(PK)" })
        assert.equal("ValidationError", err.code)
    end)

    it("a client object may stand for a Region", function()
        local t = region_transport(US)
        local c = aws.client.new(options(t))
        local r = global.new({ local_region = US, regions = { [US] = c }, home = US })
        assert.equal(c, r.clients[US])
        aws.create_adapters(r, { tableName = "t" }).codes.used(T_US, "c")
        assert.same({ "UpdateItem" }, t.ops())
    end)
end)
