-- What the adapters cost: requests and consumed capacity per call (client.stats with
-- ReturnConsumedCapacity = TOTAL) for the calls an auth server makes most, in a tenant with few
-- users and in one with many, so a cost that grows with the tenant shows.
-- Run by `make bench` (scripts/bench-cost starts DynamoDB Local), or with DYNAMODB_ENDPOINT set:
--   DYNAMODB_ENDPOINT=http://127.0.0.1:8000 lua5.4 bench/cost.lua
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = (os.getenv("BENCH_CPATH") or "build/5.4/?.so") .. ";" .. package.cpath
local aws = require "authhero.aws"
local util = require "authhero.aws.util"

local endpoint = assert(os.getenv("DYNAMODB_ENDPOINT"), "set DYNAMODB_ENDPOINT")
local client = aws.client.new({
    region = "us-east-1", endpoint = endpoint, return_consumed_capacity = "TOTAL",
    credentials = { accessKeyId = "local", secretAccessKey = "local" },
})
local TABLE = "cost_" .. os.time()
aws.schema.create_table(client, { tableName = TABLE })
local adapters = aws.create_adapters(client, { tableName = TABLE })

local function measure(label, f)
    local s = client.stats
    local r0, rc0, wc0 = s.requests, s.read_capacity, s.write_capacity
    local result = f()
    print(string.format("  %-44s %2d request(s)  %5.1f RCU  %5.1f WCU", label, s.requests - r0,
        s.read_capacity - rc0, s.write_capacity - wc0))
    return result
end

for _, n in ipairs({ 10, 500 }) do
    local t = "cost-tenant-" .. n
    adapters.tenants.create({ id = t, friendly_name = "Cost " .. n })
    local reqs = {}
    for i = 1, n - 1 do
        -- bulk users, written straight into the table layout (batch writes, not the measured path)
        local uid = string.format("auth2|bulk%05d", i)
        reqs[#reqs + 1] = { PutRequest = { Item = {
            PK = aws.schema.keys.user(t, uid).PK, SK = aws.schema.keys.user(t, uid).SK, entityType = "USER",
            tenant_id = t, user_id = uid, email = "bulk" .. i .. "@example.com", provider = "auth2",
            connection = "Username-Password-Authentication", created_at = util.iso(0), updated_at = util.iso(0),
            app_metadata = "{}", user_metadata = "{}", login_count = 0, email_verified = false, is_social = false,
        } } }
    end
    assert(#client:batch_write(TABLE, reqs) == 0)
    print(string.format("tenant with %d users:", n))
    local user = measure("users.create (with password)", function()
        return adapters.users.create(t, { email = "ada@example.com", connection = "Username-Password-Authentication",
            provider = "auth2", password = { hash = "$argon2id$demo", algorithm = "argon2id" } })
    end)
    measure("users.get", function() return adapters.users.get(t, user.user_id) end)
    measure("users.getByEmail", function() return adapters.users.getByEmail(t, "ada@example.com") end)
    measure("users.list q=email: (GSI1 fast path)", function()
        return adapters.users.list(t, { q = "email:ada@example.com" })
    end)
    measure("passwords.get", function() return adapters.passwords.get(t, user.user_id) end)
    measure("sessions.create", function()
        return adapters.sessions.create(t, { id = "s-" .. n, user_id = user.user_id, login_session_id = "ls",
            expires_at = util.iso((os.time() + 3600) * 1000) })
    end)
    measure("users.list page (per_page 50)", function() return adapters.users.list(t, { per_page = 50 }) end)
    measure("users.list page with include_totals", function()
        return adapters.users.list(t, { per_page = 50, include_totals = true })
    end)
    measure("users.list keyset page (take 50)", function() return adapters.users.list(t, { take = 50 }) end)
end
client:call("DeleteTable", { TableName = TABLE })
print(string.format("total: %d requests, %d retries", client.stats.requests, client.stats.retries))
