-- Canned DynamoDB replies for the benchmark's stub backend (scripts/bench-openresty), taken from the
-- real table so the adapters read exactly what they wrote:
--   lua5.4 spec/openresty/stub_replies.lua TABLE TENANT USER_ID OUTDIR
-- writes OUTDIR/getitem.json (GetItem of that user), OUTDIR/tenant.json (GetItem of the tenant, which
-- the example reads first on every request) and OUTDIR/query.json (an empty Query page).
local root = arg[0]:match("^(.*)/spec/openresty/[^/]+$") or "."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/5.4/?.so;" .. package.cpath
local aws = require "authhero.aws"
local core = require "authhero.aws.core"

local table_name, tenant, user_id, out = arg[1], arg[2], arg[3], arg[4]
assert(out, "usage: stub_replies.lua TABLE TENANT USER_ID OUTDIR")
local client = aws.client.new({ endpoint = os.getenv("DYNAMODB_ENDPOINT") })
local item = client:call("GetItem", { TableName = table_name, Key = aws.schema.keys.user(tenant, user_id),
    ConsistentRead = true }).Item
assert(item, "no such user: " .. user_id)
local function write(name, text)
    local f = assert(io.open(out .. "/" .. name, "wb"))
    f:write(text)
    f:close()
end
write("getitem.json", '{"Item":' .. core.marshal_item(item) .. "}")
local tenant_item = client:call("GetItem", { TableName = table_name, Key = aws.schema.keys.tenant(tenant),
    ConsistentRead = true }).Item
assert(tenant_item, "no such tenant: " .. tenant)
write("tenant.json", '{"Item":' .. core.marshal_item(tenant_item) .. "}")
write("query.json", '{"Count":0,"Items":[],"ScannedCount":0}')
client:close()
