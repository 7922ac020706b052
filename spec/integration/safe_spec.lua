-- authhero.aws.safe against DynamoDB Local: the safe client and adapters return nil, err where the
-- real ones raise (a ValidationError before any request, a 409 from a conditional create, a missing
-- table), nil and no err for what is not found, the real results otherwise; transaction, paginate.
local aws = require "authhero.aws"
local safe = require "authhero.aws.safe"
local ddb = require "support.ddb_local"
local errors = aws.errors

local TABLE = "safe_spec_" .. os.time() .. "_" .. math.random(1000000)

describe("authhero.aws.safe against DynamoDB Local", function()
    local client, a, tenant

    setup(function()
        local err
        client, err = safe.client.new({
            region = "us-east-1",
            endpoint = ddb.endpoint(),
            credentials = { accessKeyId = "fakeMyKeyId", secretAccessKey = "fakeSecretAccessKey" },
        })
        assert(client, tostring(err))
        -- the rest of the library takes the real client (safe.wrap makes any function nil, err)
        local _, cerr = safe.wrap(aws.schema.create_table)(client.raw, { tableName = TABLE })
        assert(cerr == nil, tostring(cerr))
        a, err = safe.create_adapters(client, { tableName = TABLE })
        assert(a, tostring(err))
        tenant = "safe-" .. math.random(1000000)
        local t
        t, err = a.tenants.create({ id = tenant, friendly_name = "Safe" })
        assert(t, tostring(err))
    end)

    teardown(function()
        if client then
            client:call("DeleteTable", { TableName = TABLE })
            client:close()
        end
    end)

    it("a ValidationError comes back as nil, err (400), and nothing is sent", function()
        local before = client.stats.requests
        local u, err = a.users.create(tenant, { email = "x@example.com" }) -- no connection, no provider
        assert.is_nil(u)
        assert.is_true(errors.is(err, "ValidationError"), tostring(err))
        assert.equals(400, err.status)
        local r
        r, err = a.clients:get(tenant, "")
        assert.is_nil(r)
        assert.equals(400, err.status)
        assert.equals(before, client.stats.requests)
    end)

    it("a get that finds nothing returns nil and no error", function()
        local before = client.stats.requests
        local u, err = a.users.get(tenant, "auth2|nobody")
        assert.is_nil(u)
        assert.is_nil(err)
        local t
        t, err = a.tenants:get("no-such-tenant-" .. tenant)
        assert.is_nil(t)
        assert.is_nil(err)
        assert.is_true(client.stats.requests > before) -- those were real reads
    end)

    it("a conditional-create conflict returns nil, err 409; the first write stands", function()
        local r, err = a.roles.create(tenant, { id = "admin", name = "first" })
        assert.is_nil(err)
        assert.equals("admin", r.id)
        r, err = a.roles.create(tenant, { id = "admin", name = "second" })
        assert.is_nil(r)
        assert.is_true(errors.is(err, "Conflict"), tostring(err))
        assert.equals(409, err.status)
        assert.equals("first", (a.roles.get(tenant, "admin")).name)
        -- a user's e-mail guard: the same through the users adapter's own transaction
        local u1
        u1, err = a.users.create(tenant, { email = "ada@example.com", connection = "Username-Password-Authentication",
            provider = "auth2" })
        assert.is_nil(err)
        local u2
        u2, err = a.users.create(tenant, { email = "ADA@example.com", connection = "Username-Password-Authentication",
            provider = "auth2" })
        assert.is_nil(u2)
        assert.equals(409, err.status)
        assert.equals(u1.user_id, a.users.getByEmail(tenant, "ada@example.com").user_id)
    end)

    it("remove: true when removed, false (no err) when not found", function()
        a.roles.create(tenant, { id = "gone", name = "gone" })
        local ok, err = a.roles.remove(tenant, "gone")
        assert.is_true(ok)
        assert.is_nil(err)
        ok, err = a.roles.remove(tenant, "gone")
        assert.is_false(ok)
        assert.is_nil(err)
    end)

    it("transaction hands fn the safe adapters, returns its results, and nil, err when fn raises", function()
        local x, y = a.transaction(function(trx)
            assert.equals(a, trx)
            local r, err = trx.roles.create(tenant, { id = "in-tx", name = "in-tx" })
            assert(r, tostring(err))
            return r.id, 2
        end)
        assert.equals("in-tx", x)
        assert.equals(2, y)
        local r, err = a:transaction(function(trx)
            trx.roles.create(tenant, { id = "kept", name = "kept" })
            local again, e = trx.roles.create(tenant, { id = "kept", name = "again" })
            if not again then error(e) end -- lua-resty code re-raising inside: the transaction's err
        end)
        assert.is_nil(r)
        assert.equals(409, err.status)
        assert.equals("kept", a.roles.get(tenant, "kept").name) -- no rollback (contract §7)
    end)

    it("a storage failure (no such table) is nil, err with the client's context", function()
        local other = assert(safe.create_adapters(client, { tableName = "no_such_table_" .. math.random(1000000) }))
        local t, err = other.tenants.get("x")
        assert.is_nil(t)
        assert.is_true(errors.is(err, "ResourceNotFoundException"), tostring(err))
        assert.equals("GetItem", err.op)
        -- and through the real adapters made on the safe client: they raise, as always
        local real = aws.create_adapters(client, { tableName = "no_such_table" })
        local ok, e = pcall(real.tenants.get, "x")
        assert.is_false(ok)
        assert.is_true(errors.is(e, "ResourceNotFoundException"), tostring(e))
    end)

    it("client: call, batch_write, batch_get (both results) and paginate over real pages", function()
        local reqs, keys = {}, {}
        for i = 1, 30 do
            local k = { PK = "SAFE#" .. tenant, SK = string.format("N#%02d", i) }
            reqs[i] = { PutRequest = { Item = { PK = k.PK, SK = k.SK, n = i } } }
            keys[i] = k
        end
        local left, err = client:batch_write(TABLE, reqs)
        assert.is_nil(err)
        assert.same({}, left)
        local items, unprocessed = client:batch_get(TABLE, keys)
        assert.equals(30, #items)
        assert.same({}, unprocessed)
        local got, pages = 0, 0
        for page, e in client:paginate("Query", { TableName = TABLE, Limit = 7,
            KeyConditionExpression = "PK = :pk", ExpressionAttributeValues = { [":pk"] = "SAFE#" .. tenant } }) do
            assert(page, tostring(e))
            pages = pages + 1
            got = got + #page.Items
        end
        assert.equals(30, got)
        assert.is_true(pages >= 5)
        -- a failing page reaches the loop
        local failures = 0
        for page, e in client:paginate("Query", { TableName = TABLE .. "_missing",
            KeyConditionExpression = "PK = :pk", ExpressionAttributeValues = { [":pk"] = "x" } }) do
            assert.equals(false, page)
            assert.equals("ResourceNotFoundException", e.code)
            failures = failures + 1
            if failures > 3 then break end
        end
        assert.equals(1, failures)
        local r
        r, err = client:call("GetItem", { TableName = TABLE, Key = { PK = "SAFE#" .. tenant, SK = "N#07" } })
        assert.is_nil(err)
        assert.equals(7, r.Item.n)
        r, err = client:call("GetItem", { TableName = TABLE, Key = { PK = "SAFE#" .. tenant } }) -- no SK
        assert.is_nil(r)
        assert.equals("ValidationException", err.code)
        assert.equals(400, err.status)
    end)
end)
