-- Exactly-once writes under faults (issue 12), against DynamoDB Local behind spec/support/faultd.py
-- in proxy mode: scripted faults first (one per request, in order), then a small fault run at the
-- issue's rates (spec/support/fault_run.lua; scripts/fault-run makes the README's figures).
local aws = require "authhero.aws"
local core = require "authhero.aws.core"
local ddb = require "support.ddb_local"
local fault_run = require "support.fault_run"

local TABLE = "exactly-once"
local CREDS = { accessKeyId = "AKIDEXACT", secretAccessKey = "exact-secret" }

local fault_proxy = require "support.fault_proxy"
local direct, proxy, fp, dc


local function stats() return fp:stats() end

-- the next requests through the proxy get these faults, one each; then none
local function script(faults) fp:script(faults) end

-- A client through the proxy with default settings (sleeps recorded, not slept).
local function proxied()
    local sleeps = {}
    local c = aws.client.new({ region = "us-east-1", endpoint = proxy, credentials = CREDS,
        sleep = function(s) sleeps[#sleeps + 1] = s end })
    return c, sleeps
end

local function counter(sk)
    local it = dc:call("GetItem", { TableName = TABLE, Key = { PK = "COUNTERS", SK = sk }, ConsistentRead = true }).Item
    return it and it.n or 0
end

local function add(c, sk, opts)
    return c:call("UpdateItem", { TableName = TABLE, Key = { PK = "COUNTERS", SK = sk }, UpdateExpression = "ADD #n :one",
        ExpressionAttributeNames = { ["#n"] = "n" }, ExpressionAttributeValues = { [":one"] = 1 } }, opts)
end

local raises = require "support.raises"

describe("exactly once through a faulty proxy to DynamoDB Local", function()
    setup(function()
        direct = ddb.endpoint()
        dc = aws.client.new({ region = "us-east-1", endpoint = direct, credentials = CREDS })
        pcall(dc.call, dc, "DeleteTable", { TableName = TABLE })
        aws.schema.create_table(dc, { tableName = TABLE })
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

    describe("DynamoDB Local and ClientRequestToken", function()
        it("honours it: a repeat with the same token is a no-op success; other parameters are refused", function()
            local items = { { Update = { TableName = TABLE, Key = { PK = "COUNTERS", SK = "tok" },
                UpdateExpression = "ADD #n :one", ExpressionAttributeNames = { ["#n"] = "n" },
                ExpressionAttributeValues = { [":one"] = 1 } } } }
            local token = "spec-" .. core.sha256_hex(tostring(core.now())):sub(1, 20)
            dc:call("TransactWriteItems", { ClientRequestToken = token, TransactItems = items })
            dc:call("TransactWriteItems", { ClientRequestToken = token, TransactItems = items })
            assert.equals(1, counter("tok"))
            items[1].Update.ExpressionAttributeValues[":one"] = 2
            local err = raises(dc.call, dc, "TransactWriteItems", { ClientRequestToken = token, TransactItems = items })
            assert.equals("IdempotentParameterMismatchException", err.code)
            assert.equals(1, counter("tok"))
        end)
    end)

    describe("a lost reply", function()
        local a
        before_each(function()
            local c = proxied()
            a = aws.create_adapters(c, { tableName = TABLE })
        end)

        for _, fault in ipairs({ "reset_after", "500_after" }) do
            it("(" .. fault .. ") to a signup is not a 409: the retry's token makes it the same success", function()
                local uid = "auth2|eo-" .. fault
                script({ fault })
                local user = a.users.create("eo", { user_id = uid, email = fault .. "@example.com",
                    connection = "Username-Password-Authentication", provider = "auth2",
                    password = { hash = "$2a$10$" .. string.rep("z", 53), algorithm = "bcrypt" } })
                assert.equals(uid, user.user_id)
                local s = stats()
                assert.equals(1, s["fault." .. fault])
                assert.equals(2, s.forwarded) -- both attempts reached DynamoDB Local; one applied
                local da = aws.create_adapters(dc, { tableName = TABLE })
                assert.is_table(da.users.get("eo", uid))
                assert.is_table(da.passwords.get("eo", uid))
                -- and a second signup with the same email is still a real 409
                script({})
                local err = raises(a.users.create, "eo", { user_id = uid .. "x", email = fault .. "@example.com",
                    connection = "Username-Password-Authentication", provider = "auth2" })
                assert.equals("Conflict", err.code)
            end)

            it("(" .. fault .. ") to a session create is not a 409: put_new recognises its own item", function()
                local sid = "eo-sess-" .. fault
                script({ fault })
                local rec = a.sessions.create("eo", { id = sid, user_id = "auth2|eo", login_session_id = "ls-none",
                    clients = core.array({ "app" }) })
                assert.equals(sid, rec.id)
                assert.equals(2, stats().forwarded)
                -- a create of the same id by another call is a conflict, and carries no other record
                script({})
                local err = raises(a.sessions.create, "eo", { id = sid, user_id = "auth2|other",
                    login_session_id = "ls-none" })
                assert.equals("Conflict", err.code)
                assert.equals(409, err.status)
                assert.is_nil(err.cause.cause.Item)
            end)

            it("(" .. fault .. ") to a login-count update is the update's own success", function()
                local da = aws.create_adapters(dc, { tableName = TABLE })
                local uid = "auth2|eo-login-" .. fault
                da.users.create("eo", { user_id = uid, connection = "Username-Password-Authentication", provider = "auth2" })
                script({ fault })
                assert.is_true(a.users.update("eo", uid, { login_count = 1 }))
                assert.equals(1, da.users.get("eo", uid).login_count)
                -- updating a user that does not exist is still false
                script({})
                assert.is_false(a.users.update("eo", uid .. "-missing", { login_count = 1 }))
            end)
        end
    end)

    describe("a raw ADD (not idempotent)", function()
        it("is never applied twice: after a reply lost past the write it raises maybe_applied", function()
            local c, sleeps = proxied()
            script({ "reset_after" })
            local err = raises(add, c, "lost-after")
            assert.is_true(err.maybe_applied)
            assert.equals(1, err.attempts)
            assert.equals(1, counter("lost-after")) -- applied once, and only once
            assert.same({}, sleeps)
            script({ "500_after" })
            err = raises(add, c, "500-after")
            assert.is_true(err.maybe_applied)
            assert.equals(1, counter("500-after"))
        end)

        it("says maybe even when nothing happened (a 500 before the write); throttling is retried", function()
            local c = proxied()
            script({ "500" })
            local err = raises(add, c, "500-before")
            assert.is_true(err.maybe_applied)
            assert.equals(0, counter("500-before"))
            script({ "throttle", "throttle" })
            add(c, "throttled")
            assert.equals(1, counter("throttled"))
            assert.equals(3, stats().requests)
        end)

        it("declared idempotent by its caller, it is re-sent (and here applied twice: the caller's word)", function()
            local c = proxied()
            script({ "reset_after" })
            add(c, "declared", { idempotent = true })
            assert.equals(2, counter("declared"))
        end)
    end)

    describe("a fault run at the issue's rates (20% throttling, 5% 500s, 2% + 2% resets)", function()
        it("loses nothing, reports no applied write as failed, applies nothing twice, succeeds >= 98%", function()
            local report = fault_run.run({ n = 24, workers = 4, direct = direct,
                lua = os.getenv("FAULT_RUN_LUA") or (jit and "luajit" or "lua5.4") })
            local text = fault_run.format(report)
            local T = report.totals
            assert.equals(0, report.proxy.upstream_errors or 0, text)
            assert.is_true((report.proxy["fault.throttle"] or 0) > 0, text) -- the faults did happen
            assert.equals(0, T.lost, text)
            assert.equals(0, T.failed_applied, text)
            assert.equals(0, T.twice, text)
            assert.is_true(T.success_rate >= 0.98, text)
            local C = report.kinds.counter
            assert.equals(0, C.lost, text)
            assert.equals(0, C.twice, text)
            assert.equals(0, C.failed_applied, text)
        end)
    end)
end)
