-- An AWS Lambda handler using authhero-aws (custom runtime, see README.md): for an HTTP request
-- (API Gateway HTTP API or a function URL), find the tenant by the request's host (a custom domain)
-- or ?tenant=, and look a user up by ?email=. The client and adapters are made once per container
-- and reused by every invocation (one kept-alive connection to DynamoDB).
-- Lambda's environment supplies everything the library reads: AWS_REGION, the role's credentials
-- (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN) and DYNAMODB_TABLE_NAME (set it).
local aws = require "authhero.aws"
local cjson = require "cjson"

local client = aws.client.new({ timeout_ms = 5000 })
local adapters = aws.create_adapters(client, { tableName = aws.schema.table_name() })

local _M = {}

local function reply(status, body)
    return { statusCode = status, headers = { ["content-type"] = "application/json" }, body = cjson.encode(body) }
end

-- handler(event, context) -> the HTTP response; raising makes the runtime report an error.
function _M.handler(event, context) -- luacheck: no unused args
    local headers = event.headers or {}
    local params = event.queryStringParameters or {}
    local host = headers.host or headers.Host
    local tenant_id = params.tenant
    if host and not tenant_id then
        local domain = adapters.customDomains.getByDomain(host)
        tenant_id = domain and domain.tenant_id
    end
    if not tenant_id then return reply(404, { error = "unknown host " .. tostring(host) }) end
    local tenant = adapters.tenants.get(tenant_id)
    if not tenant then return reply(404, { error = "no tenant " .. tenant_id }) end
    if not params.email then return reply(200, { tenant = tenant.id, name = tenant.friendly_name }) end

    local ok, user = pcall(adapters.users.getByEmail, tenant_id, params.email)
    if not ok then
        -- the error object: status, code, message (never secrets)
        if aws.errors.is(user) and user.status == 400 then return reply(400, { error = user.message }) end
        error(user, 0)
    end
    if not user then return reply(404, { error = "no such user" }) end
    return reply(200, { tenant = tenant.id, user_id = user.user_id, email = user.email, name = user.name,
        identities = #user.identities })
end

return _M
