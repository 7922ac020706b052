-- The configuration the OpenResty example reads on every request, written once before it serves:
-- the tenant, its database connection, an application (client) with that connection enabled, the
-- tenant's branding and prompt settings. Run with Lua 5.4 from the repository root (libcurl
-- transport, outside nginx):
--
--   lua5.4 examples/openresty/seed.lua [EXTRA_CLIENT_ID...]
--
-- DYNAMODB_ENDPOINT, DYNAMODB_TABLE_NAME (the table must exist), AWS_REGION and the AWS_*
-- credentials come from the environment, as do TENANT_ID (default "example") and CLIENT_ID
-- (default "example-app"). Each extra argument is the client id of one more application with the
-- same connection (the tests use them as keys nginx has never read). Records that already exist
-- are left as they are, so running it twice is fine.
local root = arg[0]:match("^(.*)/examples/openresty/[^/]+$") or "."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/5.4/?.so;" .. package.cpath
local aws = require "authhero.aws"

local function env(name, default)
    local v = os.getenv(name)
    if v == nil or v == "" then return default end
    return v
end

local TABLE = env("DYNAMODB_TABLE_NAME") or error("DYNAMODB_TABLE_NAME is not set", 0)
local TENANT = env("TENANT_ID", "example")
local CONNECTION_ID = "con-database"
local CONNECTION = "Username-Password-Authentication" -- the name authhero_example.lua looks for

local client = aws.client.new({ endpoint = env("DYNAMODB_ENDPOINT") })
local A = aws.create_adapters(client, { tableName = TABLE })

-- create(fn, ...): fn(...), a Conflict (already there) is fine.
local function create(fn, ...)
    local ok, err = pcall(fn, ...)
    if not ok and not aws.errors.is(err, "Conflict") then error(err, 0) end
end

create(A.tenants.create, { id = TENANT, friendly_name = "Example tenant", session_lifetime = 24 })
create(A.connections.create, TENANT, { id = CONNECTION_ID, name = CONNECTION, strategy = "Username-Password-Authentication" })
local clients = { env("CLIENT_ID", "example-app") }
for i = 1, #arg do clients[#clients + 1] = arg[i] end
for i, id in ipairs(clients) do
    create(A.clients.create, TENANT, {
        client_id = id, name = i == 1 and "Example app" or "Example app " .. id,
        callbacks = aws.array({ "https://app.example.com/callback" }),
    })
    A.clientConnections.addClientToConnection(TENANT, CONNECTION_ID, id)
end
A.branding.set(TENANT, { logo_url = "https://app.example.com/logo.svg", colors = { primary = "#0a5c8a" } })
A.promptSettings.set(TENANT, { identifier_first = false })
client:close()
print(string.format("tenant %s: connection %s, clients %s", TENANT, CONNECTION, table.concat(clients, " ")))
