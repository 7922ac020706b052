-- Table setup for scripts/openresty-test, under lua5.4 with the curl transport (outside nginx):
--   lua5.4 spec/openresty/table.lua create|delete NAME
-- DYNAMODB_ENDPOINT, AWS_REGION and the AWS_* credentials come from the environment.
local root = arg[0]:match("^(.*)/spec/openresty/[^/]+$") or "."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/5.4/?.so;" .. package.cpath
local aws = require "authhero.aws"

local action, name = arg[1], arg[2]
assert((action == "create" or action == "delete") and name, "usage: table.lua create|delete NAME")
local client = aws.client.new({ endpoint = os.getenv("DYNAMODB_ENDPOINT") })
if action == "create" then
    aws.schema.create_table(client, { tableName = name })
    print("table " .. name .. " ready")
else
    local ok, err = pcall(client.call, client, "DeleteTable", { TableName = name })
    if not ok and not aws.errors.is(err, "ResourceNotFoundException") then error(err, 0) end
end
client:close()
