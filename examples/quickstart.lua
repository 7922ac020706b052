-- A first look at the library: the table, a tenant and a user written and read through the client,
-- a lookup by email on GSI1, a conditional write that refuses a duplicate, and what each step cost.
-- (The AuthHero adapters will tell this story at the entity level; this is the layer beneath.)
-- Run by `make demo`; or: DYNAMODB_ENDPOINT=http://127.0.0.1:8000 lua5.4 examples/quickstart.lua
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = "build/5.4/?.so;" .. package.cpath
local aws = require "authhero.aws"
local core = require "authhero.aws.core"

local endpoint = os.getenv("DYNAMODB_ENDPOINT")
local client = aws.client.new({
    region = os.getenv("AWS_REGION") or "us-east-1",
    endpoint = endpoint,
    -- DynamoDB Local accepts any credentials; against AWS leave this out and the chain finds them
    credentials = endpoint and { accessKeyId = "local", secretAccessKey = "local" } or nil,
})
local TABLE = aws.schema.table_name()

local last = { requests = 0, read = 0, write = 0 }
local function step(what)
    local s = client.stats
    print(string.format("%-64s %d request(s), %.1f RCU, %.1f WCU", what, s.requests - last.requests,
        s.read_capacity - last.read, s.write_capacity - last.write))
    last = { requests = s.requests, read = s.read_capacity, write = s.write_capacity }
end

aws.schema.create_table(client, { tableName = TABLE })
step("create table " .. TABLE .. " (GSI1, GSI2, TTL on ttl)")

local tenant = "acme"
client:call("PutItem", { TableName = TABLE, ReturnConsumedCapacity = "TOTAL", Item = {
    PK = core.key("TENANT", tenant), SK = "TENANT", entityType = "TENANT", id = tenant,
    friendly_name = "Acme Inc.", created_at = os.date("!%Y-%m-%dT%H:%M:%SZ"),
} })
step("put tenant " .. tenant)

local email = "ada@acme.example"
local user = {
    PK = core.key("TENANT", tenant), SK = core.key("USER", "auth2|ada"),
    GSI1PK = core.key("TENANT", tenant, "EMAIL", email), GSI1SK = "USER",
    entityType = "USER", tenant_id = tenant, user_id = "auth2|ada", email = email,
    email_verified = true, login_count = 0, app_metadata = '{"roles":["admin"]}',
}
client:call("PutItem", { TableName = TABLE, Item = user, ConditionExpression = "attribute_not_exists(PK)",
    ReturnConsumedCapacity = "TOTAL" })
step("sign up user auth2|ada (must not exist yet)")

local ok, err = pcall(client.call, client, "PutItem", { TableName = TABLE, Item = user,
    ConditionExpression = "attribute_not_exists(PK)" })
assert(not ok and aws.errors.is(err, "ConditionalCheckFailedException"))
step("sign up the same user again -> " .. tostring(err.code))

local found = client:call("Query", { TableName = TABLE, IndexName = "GSI1", ReturnConsumedCapacity = "TOTAL",
    KeyConditionExpression = "GSI1PK = :e", ExpressionAttributeValues = { [":e"] = user.GSI1PK } }).Items
assert(#found == 1 and found[1].user_id == "auth2|ada")
step("find user by email on GSI1 -> " .. found[1].user_id)

local r = client:call("UpdateItem", { TableName = TABLE, Key = { PK = user.PK, SK = user.SK },
    UpdateExpression = "ADD login_count :one SET last_login = :now",
    ExpressionAttributeValues = { [":one"] = 1, [":now"] = os.date("!%Y-%m-%dT%H:%M:%SZ") },
    ReturnValues = "ALL_NEW", ReturnConsumedCapacity = "TOTAL" })
step("log in: login_count -> " .. r.Attributes.login_count)

local got = client:call("GetItem", { TableName = TABLE, Key = { PK = user.PK, SK = user.SK },
    ReturnConsumedCapacity = "TOTAL" }).Item
assert(got.email == email and got.email_verified == true)
step("get user by id -> " .. got.email)

client:call("PutItem", { TableName = TABLE, ReturnConsumedCapacity = "TOTAL", Item = {
    PK = core.key("TENANT", tenant), SK = core.key("SESSION", "s1"), entityType = "SESSION",
    user_id = user.user_id, ttl = os.time() + 3600,
} })
step("open a session that DynamoDB expires in an hour (ttl)")

local n = 0
for page in client:paginate("Query", { TableName = TABLE, KeyConditionExpression = "PK = :pk",
    ExpressionAttributeValues = { [":pk"] = core.key("TENANT", tenant) }, ReturnConsumedCapacity = "TOTAL" }) do
    n = n + #page.Items
end
step("list everything of tenant " .. tenant .. " -> " .. n .. " items")
print(string.format("total: %d requests, %d retries", client.stats.requests, client.stats.retries))
client:close()
