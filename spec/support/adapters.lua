-- Adapters over DynamoDB Local for the adapter specs: one client and one table per process
-- (created on first use), an injectable clock, and a fresh tenant id per describe.
--   local fx = require "support.adapters"
--   local adapters, t = fx.adapters(), fx.tenant()
--   fx.set_now(ms) / fx.advance(seconds) / fx.reset_clock()   -- the adapters' "now"
local aws = require "authhero.aws"
local ddb = require "support.ddb_local"
local core = require "authhero.aws.core"

local M = {}

-- survives busted's insulation of package.loaded between files
local REG_KEY = "authhero.spec.adapters"
local registry = debug.getregistry()
local S = registry[REG_KEY]
if type(S) ~= "table" then
    S = { offset_ms = 0, counter = 0 }
    registry[REG_KEY] = S
end

function M.now_ms()
    if S.fixed then return S.fixed end
    return core.now() * 1000 + S.offset_ms
end

function M.set_now(ms) S.fixed = ms end
function M.advance(seconds)
    if S.fixed then S.fixed = S.fixed + seconds * 1000 else S.offset_ms = S.offset_ms + seconds * 1000 end
end
function M.reset_clock() S.fixed, S.offset_ms = nil, 0 end

function M.client()
    if not S.client then
        S.client = aws.client.new({
            region = "us-east-1",
            endpoint = ddb.endpoint(),
            credentials = { accessKeyId = "fakeMyKeyId", secretAccessKey = "fakeSecretAccessKey" },
        })
        S.table = "adapters_" .. os.time() .. "_" .. math.random(1000000)
        aws.schema.create_table(S.client, { tableName = S.table })
    end
    return S.client
end

function M.table_name()
    M.client()
    return S.table
end

-- adapters([opts]) -> a fresh adapters table over the shared table, with the spec clock.
function M.adapters(opts)
    local o = { tableName = M.table_name(), now = M.now_ms }
    for k, v in pairs(opts or {}) do o[k] = v end
    return aws.create_adapters(M.client(), o)
end

-- A tenant id no other describe uses.
function M.tenant(prefix)
    S.counter = S.counter + 1
    return (prefix or "t") .. "-" .. os.time() .. "-" .. S.counter .. "-" .. math.random(1000000)
end

-- Every raw item of a partition (for "nothing of it is left" checks).
function M.raw_partition(pk)
    local c = M.client()
    local out = {}
    for page in c:paginate("Query", { TableName = M.table_name(), KeyConditionExpression = "PK = :p",
        ExpressionAttributeValues = { [":p"] = pk }, ConsistentRead = true }) do
        for _, it in ipairs(page.Items) do out[#out + 1] = it end
    end
    return out
end

-- Raises unless f raises an error object with that status (and code, if given); returns it.
function M.raises(status, code, f, ...)
    local ok, err = pcall(f, ...)
    assert(not ok, "expected an error " .. tostring(status))
    assert(aws.errors.is(err), "not an error object: " .. tostring(err))
    assert(err.status == status, "expected status " .. status .. ", got " .. tostring(err))
    if code then assert(err.code == code, "expected code " .. code .. ", got " .. tostring(err)) end
    return err
end

return M
