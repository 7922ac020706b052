-- Exactly-once rules of client:call (issue 12) with a scripted transport in place of DynamoDB: which
-- failures are retried for which calls, maybe_applied, the transactions' ClientRequestToken, the
-- max_time_ms bound, the names of what failed in errors, return_consumed_capacity; and the store's
-- conditional writes recognising their own earlier attempt.
local aws = require "authhero.aws"
local cjson = require "cjson"
local errors = aws.errors
local store = require "authhero.aws.store"
local client_mod = require "authhero.aws.client"

local function err_reply(status, code, message, extra)
    local body = { __type = "com.amazonaws.dynamodb.v20120810#" .. code, message = message or code }
    for k, v in pairs(extra or {}) do body[k] = v end
    return { status = status, body = cjson.encode(body), headers = {} }
end

-- Faults a step can be: a reply, or a transport failure (as the transports raise them).
local function transport_error(reason, sent)
    return function()
        errors.raise(0, "TransportError", "POST http://stub/: " .. reason, { reason = reason, retryable = true, sent = sent })
    end
end
local R = {
    ok = function() return { status = 200, body = "{}", headers = {} } end,
    throttle = function() return err_reply(400, "ThrottlingException", "Rate exceeded") end,
    e500 = function() return err_reply(500, "InternalServerError") end,
    conflict = function()
        return err_reply(400, "TransactionCanceledException", "cancelled", {
            CancellationReasons = { { Code = "None" }, { Code = "TransactionConflict" } } })
    end,
    reset_unsent = transport_error("reset", false),
    reset_sent = transport_error("reset", true),
    stale = transport_error("stale", true),
    timeout = transport_error("timeout", true),
    connect = transport_error("connect", false),
    garbled = function() return { status = 200, body = '{"Item":{"PK":', headers = {} } end,
}

-- A transport answering request i with steps[i] (a function of the decoded request body).
local function scripted(steps)
    local t = { seen = {} }
    function t.request(_, req)
        local body = cjson.decode(req.body)
        t.seen[#t.seen + 1] = body
        local f = table.remove(steps, 1)
        assert(f, "no reply scripted for request " .. #t.seen)
        return f(body)
    end
    function t.close() end
    return t
end

local function new_client(steps, extra)
    local clock, sleeps = 1000, {}
    local transport = scripted(steps)
    local config = {
        region = "us-east-1", endpoint = "http://127.0.0.1:1", transport = transport,
        credentials = { accessKeyId = "AKID", secretAccessKey = "secret" },
        now = function() return clock end,
        sleep = function(s)
            sleeps[#sleeps + 1] = s
            clock = clock + s
        end,
        random = function() return 1 end,
    }
    for k, v in pairs(extra or {}) do config[k] = v end
    return aws.client.new(config), transport, sleeps
end

local fails = require "support.raises"

local COND_PUT = { TableName = "t", Item = { PK = "a", SK = "b" }, ConditionExpression = "attribute_not_exists(PK)" }
local ADD = { TableName = "t", Key = { PK = "a", SK = "b" }, UpdateExpression = "ADD #n :one",
    ExpressionAttributeNames = { ["#n"] = "n" }, ExpressionAttributeValues = { [":one"] = 1 } }

describe("client: which calls are idempotent by nature", function()
    local nature = client_mod._idempotent_by_nature
    local function update(expr, extra)
        local p = { TableName = "t", Key = { PK = "a" }, UpdateExpression = expr }
        for k, v in pairs(extra or {}) do p[k] = v end
        return nature("UpdateItem", p)
    end

    it("reads, unconditional puts and deletes, batch writes, value-only updates: yes", function()
        for _, op in ipairs({ "GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems", "DescribeTable",
            "ListTables", "BatchWriteItem" }) do
            assert.is_true(nature(op, {}), op)
        end
        assert.is_true(nature("PutItem", { TableName = "t", Item = {} }))
        assert.is_true(nature("DeleteItem", { TableName = "t", Key = {}, ReturnValues = "ALL_OLD" }))
        assert.is_true(update("SET #n1 = :v1, #n2 = if_not_exists(#n2, :v2) REMOVE #n3"))
        assert.is_true(update("SET #add = :v1, #delete = :minus")) -- placeholders named like keywords
        assert.is_true(update(nil, { AttributeUpdates = { a = { Action = "PUT", Value = 1 } } }))
        assert.is_true(nature("ExecuteStatement", { Statement = "  select * FROM t" }))
        assert.is_true(nature("TransactWriteItems", { ClientRequestToken = "x", TransactItems = {} }))
    end)

    it("arithmetic, ADD, DELETE, list_append, conditions, PartiQL writes: no", function()
        assert.is_false(update("SET #n = #n + :one"))
        assert.is_false(update("SET #n = if_not_exists(#n, :z) - :one"))
        assert.is_false(update("ADD #n :one"))
        assert.is_false(update("set #a = :v add #n :one"))
        assert.is_false(update("DELETE #s :x"))
        assert.is_false(update("SET #l = list_append(#l, :x)"))
        assert.is_false(update("SET #a = :v", { ConditionExpression = "attribute_exists(PK)" }))
        assert.is_false(update(nil, { AttributeUpdates = { n = { Action = "ADD", Value = 1 } } }))
        assert.is_false(nature("PutItem", COND_PUT))
        assert.is_false(nature("PutItem", { TableName = "t", Item = {}, Expected = { a = { Exists = false } } }))
        assert.is_false(nature("DeleteItem", { TableName = "t", Key = {}, ConditionExpression = "x = :y" }))
        assert.is_false(nature("ExecuteStatement", { Statement = "UPDATE t SET n = n + 1 WHERE PK = 'a'" }))
        assert.is_false(nature("TransactWriteItems", { TransactItems = {} })) -- without a token
    end)
end)

describe("client: failures and retries", function()
    it("a non-idempotent write is retried after failures that prove nothing was done", function()
        local c, t = new_client({ R.throttle, R.connect, R.reset_unsent, R.conflict, R.ok }, { max_attempts = 5 })
        c:call("UpdateItem", ADD)
        assert.equals(5, #t.seen)
    end)

    for _, case in ipairs({ { "e500", "InternalServerError" }, { "reset_sent", "TransportError" },
        { "stale", "TransportError" }, { "timeout", "TransportError" }, { "garbled", "MarshalError" } }) do
        it("a non-idempotent write is not re-sent after " .. case[1] .. ": maybe_applied", function()
            local c, t, sleeps = new_client({ R.throttle, R[case[1]], R.ok })
            local err = fails(c.call, c, "UpdateItem", ADD)
            assert.equals(case[2], err.code)
            assert.equals(2, #t.seen)
            assert.equals(2, err.attempts)
            assert.is_true(err.maybe_applied)
            assert.is_false(err.retryable)
            assert.equals(1, #sleeps)
            assert.equals("UpdateItem", err.op)
            assert.equals("t", err.table)
            if case[1] ~= "garbled" then
                assert.equals("not idempotent", err.gave_up)
                assert.matches("%(UpdateItem on t; not re%-sent after 2 attempts: the write is not idempotent; "
                    .. "may have been applied%)$", tostring(err))
            end
        end)
    end

    it("the same failures are retried for idempotent calls, and for calls declared idempotent", function()
        local c, t = new_client({ R.e500, R.reset_sent, R.stale, R.timeout, R.ok }, { max_attempts = 5 })
        c:call("PutItem", { TableName = "t", Item = { PK = "a" } })
        assert.equals(5, #t.seen)
        c, t = new_client({ R.e500, R.reset_sent, R.ok })
        c:call("PutItem", COND_PUT, { idempotent = true })
        assert.equals(3, #t.seen)
        -- and { idempotent = false } forbids it for a call that would be
        c, t = new_client({ R.e500, R.ok })
        local err = fails(c.call, c, "PutItem", { TableName = "t", Item = { PK = "a" } }, { idempotent = false })
        assert.is_true(err.maybe_applied)
        assert.equals(1, #t.seen)
    end)

    it("a reused connection found dead counts as an attempt, retried at once", function()
        local c, t, sleeps = new_client({ R.stale, R.ok })
        c:call("GetItem", { TableName = "t", Key = { PK = "a" } })
        assert.equals(2, #t.seen)
        assert.same({}, sleeps)
        c = new_client({ R.stale, R.stale, R.stale, R.ok }, { max_attempts = 3 })
        local err = fails(c.call, c, "GetItem", { TableName = "t", Key = { PK = "a" } })
        assert.equals(3, err.attempts)
        assert.equals("attempts", err.gave_up)
        assert.is_nil(err.maybe_applied) -- a read
    end)

    it("a condition failing on a retry after a maybe-applied attempt says maybe_applied; on a first attempt not", function()
        local ccf = function() return err_reply(400, "ConditionalCheckFailedException", "failed", { Item = { PK = { S = "a" } } }) end
        local c = new_client({ R.reset_sent, ccf })
        local err = fails(c.call, c, "PutItem", COND_PUT, { idempotent = true })
        assert.equals("ConditionalCheckFailedException", err.code)
        assert.is_true(err.maybe_applied)
        assert.equals("a", err.cause.Item.PK)
        c = new_client({ R.throttle, ccf })
        err = fails(c.call, c, "PutItem", COND_PUT, { idempotent = true })
        assert.is_nil(err.maybe_applied)
        assert.equals(2, err.attempts)
    end)

    it("max_time_ms: no backoff sleeps past it", function()
        -- throttling backs off 1, 2, 4, 8 s (random() = 1): 1 + 2 + 4 fit in 10 s, 8 more do not
        local c, t, sleeps = new_client({ R.throttle, R.throttle, R.throttle, R.throttle, R.ok },
            { max_attempts = 10, max_time_ms = 10000 })
        local err = fails(c.call, c, "GetItem", { TableName = "t", Key = { PK = "a" } })
        assert.equals(4, #t.seen)
        assert.same({ 1, 2, 4 }, sleeps)
        assert.equals("time", err.gave_up)
        assert.equals(7000, err.elapsed_ms)
        assert.equals("ThrottlingException (400): Rate exceeded (GetItem on t; gave up after 4 attempts in 7.0 s "
            .. "(max_time_ms))", tostring(err))
        assert.has_error(function() aws.client.new({ region = "us-east-1", max_time_ms = -1 }) end)
    end)

    it("5 attempts by default; tostring says so", function()
        local c, t = new_client({ R.e500, R.e500, R.e500, R.e500, R.e500, R.ok })
        local err = fails(c.call, c, "GetItem", { TableName = "t", Key = { PK = "a" } })
        assert.equals(5, #t.seen)
        assert.equals("InternalServerError (500): InternalServerError (GetItem on t; gave up after 5 attempts)",
            tostring(err))
    end)
end)

describe("client: transactions carry a ClientRequestToken", function()
    local tx = { TransactItems = { { Put = { TableName = "b", Item = { PK = "x" } } },
        { Update = { TableName = "a", Key = { PK = "y" }, UpdateExpression = "ADD #n :one",
            ExpressionAttributeNames = { ["#n"] = "n" }, ExpressionAttributeValues = { [":one"] = 1 } } } } }

    it("the same on every attempt of one call, another for the next call; re-sent after a lost reply", function()
        local c, t = new_client({ R.e500, R.reset_sent, R.ok, R.ok })
        c:call("TransactWriteItems", tx)
        c:call("TransactWriteItems", tx)
        assert.equals(4, #t.seen)
        local tok = t.seen[1].ClientRequestToken
        assert.is_string(tok)
        assert.is_true(#tok >= 1 and #tok <= 36)
        assert.equals(tok, t.seen[2].ClientRequestToken)
        assert.equals(tok, t.seen[3].ClientRequestToken)
        assert.are_not.equal(tok, t.seen[4].ClientRequestToken)
        assert.is_nil(tx.ClientRequestToken) -- the caller's table is left alone
    end)

    it("a caller's own token is kept", function()
        local c, t = new_client({ R.ok })
        c:call("TransactWriteItems", { ClientRequestToken = "mine", TransactItems = tx.TransactItems })
        assert.equals("mine", t.seen[1].ClientRequestToken)
    end)

    it("errors name the transaction's tables", function()
        local c = new_client({ function() return err_reply(400, "ResourceNotFoundException", "Requested resource not found") end })
        local err = fails(c.call, c, "TransactWriteItems", tx)
        assert.equals("TransactWriteItems", err.op)
        assert.equals("a, b", err.table)
        assert.equals("ResourceNotFoundException (400): Requested resource not found (TransactWriteItems on a, b)",
            tostring(err))
    end)
end)

describe("client: errors name what failed", function()
    it("op and table, in the error and its tostring", function()
        local c = new_client({ function()
            return err_reply(400, "ResourceNotFoundException", "Cannot do operations on a non-existent table")
        end })
        local err = fails(c.call, c, "GetItem", { TableName = "nope", Key = { PK = "a" } })
        assert.equals("GetItem", err.op)
        assert.equals("nope", err.table)
        assert.equals(1, err.attempts)
        assert.equals("ResourceNotFoundException (400): Cannot do operations on a non-existent table (GetItem on nope)",
            tostring(err))
    end)

    it("a batch's tables; an op without a table", function()
        local c = new_client({ R.e500, R.e500, R.e500 }, { max_attempts = 1 })
        local err = fails(c.call, c, "BatchGetItem", { RequestItems = { z = { Keys = { { PK = "a" } } },
            y = { Keys = { { PK = "b" } } } } })
        assert.equals("y, z", err.table)
        err = fails(c.call, c, "ListTables", {})
        assert.equals("ListTables", err.op)
        assert.is_nil(err.table)
        assert.matches("%(ListTables; gave up after 1 attempt%)$", tostring(err))
    end)

    it("errors raised before any request too", function()
        local c, t = new_client({})
        local err = fails(c.call, c, "PutItem", { TableName = "t", Item = { PK = "a", f = function() end } })
        assert.equals("PutItem", err.op)
        assert.equals("t", err.table)
        assert.equals(0, #t.seen)
    end)
end)

describe("client: return_consumed_capacity", function()
    it("true means TOTAL; TOTAL, INDEXES and NONE pass; false and nil send nothing", function()
        for _, case in ipairs({ { true, "TOTAL" }, { "TOTAL", "TOTAL" }, { "INDEXES", "INDEXES" }, { "NONE", "NONE" },
            { false, nil } }) do
            local c, t = new_client({ R.ok }, { return_consumed_capacity = case[1] })
            c:call("GetItem", { TableName = "t", Key = { PK = "a" } })
            assert.equals(case[2], t.seen[1].ReturnConsumedCapacity, tostring(case[1]))
        end
    end)

    it("anything else is a ValidationError at new()", function()
        for _, bad in ipairs({ "total", "ALL", 1, {} }) do
            local ok, err = pcall(aws.client.new, { region = "us-east-1", return_consumed_capacity = bad })
            assert.is_false(ok)
            assert.is_true(errors.is(err, "ValidationError"), tostring(err))
            assert.equals(400, err.status)
            assert.matches("return_consumed_capacity must be true, \"TOTAL\", \"INDEXES\" or \"NONE\"", err.message)
        end
    end)
end)

describe("store: conditional writes recognise their own earlier attempt", function()
    local function ctx_with(steps)
        local c, t = new_client(steps)
        return store.new(c, { tableName = "t" }), t
    end
    local item = { PK = "TENANT#a", SK = "SESSION#1", entityType = "SESSION", n = 3, tags = { "x" } }
    local function ccf_with(old)
        return function()
            local cjson_item = {}
            for k, v in pairs(old) do
                if type(v) == "number" then
                    cjson_item[k] = { N = tostring(v) }
                elseif type(v) == "table" then
                    cjson_item[k] = { L = { { S = v[1] } } }
                else
                    cjson_item[k] = { S = v }
                end
            end
            return err_reply(400, "ConditionalCheckFailedException", "failed", { Item = cjson_item })
        end
    end

    it("put_new: a retry that finds this call's own item is a success", function()
        local ctx, t = ctx_with({ R.reset_sent, ccf_with(item) })
        assert.same(item, ctx:put_new(item, "Session already exists"))
        assert.equals(2, #t.seen)
        assert.equals("ALL_OLD", t.seen[1].ReturnValuesOnConditionCheckFailure)
    end)

    it("put_new: another item, or a first-attempt failure, is a 409 without the other item", function()
        local other = { PK = "TENANT#a", SK = "SESSION#1", entityType = "SESSION", n = 4, tags = { "x" } }
        local ctx = ctx_with({ R.e500, ccf_with(other) })
        local err = fails(ctx.put_new, ctx, item, "Session already exists")
        assert.equals("Conflict", err.code)
        assert.equals(409, err.status)
        assert.is_nil(err.cause.cause.Item)
        ctx = ctx_with({ ccf_with(item) })
        err = fails(ctx.put_new, ctx, item, "Session already exists")
        assert.equals("Conflict", err.code)
    end)

    it("update_item: a retry whose condition fails on an item holding every value written is true", function()
        local set = { n = 3, updated_at = "2026-01-01T00:00:00.000Z" }
        local old = { PK = "TENANT#a", SK = "SESSION#1", n = 3, updated_at = "2026-01-01T00:00:00.000Z" }
        local ctx, t = ctx_with({ R.timeout, ccf_with(old) })
        assert.is_true(ctx:update_item({ PK = "TENANT#a", SK = "SESSION#1" }, set, { "gone" }))
        assert.equals(2, #t.seen)
        old.gone = "still here"
        ctx = ctx_with({ R.timeout, ccf_with(old) })
        assert.is_false(ctx:update_item({ PK = "TENANT#a", SK = "SESSION#1" }, set, { "gone" }))
        old.gone = nil
        ctx = ctx_with({ ccf_with(old) }) -- first attempt: the item is not live (or the condition is not met)
        assert.is_false(ctx:update_item({ PK = "TENANT#a", SK = "SESSION#1" }, set))
    end)

    it("a write the client gave up on after a maybe-applied attempt is settled by one consistent read", function()
        local found = function() return { status = 200, body = cjson.encode({ Item = { PK = { S = "TENANT#a" },
            SK = { S = "SESSION#1" }, entityType = { S = "SESSION" }, n = { N = "3" }, tags = { L = { { S = "x" } } } } }),
            headers = {} } end
        local ctx, t = ctx_with({ R.e500, R.e500, R.e500, R.e500, R.e500, found })
        assert.same(item, ctx:put_new(item, "Session already exists"))
        assert.equals(6, #t.seen)
        assert.is_true(t.seen[6].ConsistentRead)
        -- not there (or not ours): the write's own error
        ctx = ctx_with({ R.e500, R.e500, R.e500, R.e500, R.e500, R.ok })
        local err = fails(ctx.put_new, ctx, item, "Session already exists")
        assert.equals("InternalServerError", err.code)
        assert.is_true(err.maybe_applied)
        -- a transaction: settled when every put is there as written
        ctx, t = ctx_with({ R.e500, R.e500, R.e500, R.e500, R.e500, found })
        local tx = ctx:tx()
        tx:put_new(item)
        assert.is_true(tx:run("exists"))
        assert.equals(6, #t.seen)
        ctx = ctx_with({ R.e500, R.e500, R.e500, R.e500, R.e500, R.ok })
        tx = ctx:tx()
        tx:put_new(item)
        assert.equals("InternalServerError", fails(tx.run, tx, "exists").code)
        -- an update: when the item holds every value written
        ctx = ctx_with({ R.e500, R.e500, R.e500, R.e500, R.e500, found })
        assert.is_true(ctx:update_item({ PK = "TENANT#a", SK = "SESSION#1" }, { n = 3 }))
        ctx = ctx_with({ R.e500, R.e500, R.e500, R.e500, R.e500, found })
        assert.equals("InternalServerError", fails(ctx.update_item, ctx, { PK = "TENANT#a", SK = "SESSION#1" }, { n = 4 }).code)
    end)

    it("same: deep, sets unordered", function()
        local core = require "authhero.aws.core"
        assert.is_true(store._same({ a = { 1, { b = "x" } }, s = core.set({ "p", "q" }) },
            { a = { 1, { b = "x" } }, s = core.set({ "q", "p" }) }))
        assert.is_false(store._same({ a = 1 }, { a = 1, b = 2 }))
        assert.is_false(store._same({ a = { 1, 2 } }, { a = { 2, 1 } }))
        assert.is_false(store._same(nil, { a = 1 }))
    end)
end)
