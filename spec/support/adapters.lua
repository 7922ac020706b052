-- Adapters over DynamoDB Local for the adapter specs: one client and one table per process
-- (created on first use), an injectable clock, and a fresh tenant id per describe.
--   local fx = require "support.adapters"
--   local adapters, t = fx.adapters(), fx.tenant()
--   fx.set_now(ms) / fx.advance(seconds) / fx.reset_clock()   -- the adapters' "now"
-- and the checks the specs share:
--   fx.requests()                      -- requests the shared client has sent so far
--   fx.ops(fn[, label])                -- fn()'s result and the operations it sent, in order
--   fx.count(list, value)              -- how many elements of list equal value
--   fx.rejects(f, ...)                 -- f(...) raises 400 ValidationError and sends nothing
--   fx.raw_get(key) / fx.raw_put(item) / fx.raw_delete(key) / fx.raw_partition(pk)
--   fx.ids(list[, field])              -- the records' ids (field defaults to "id")
--   fx.keyset_walk(list_fn, items_key, id_field, take[, check])   -- every record once, by cursor
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

-- Requests the shared client has sent so far.
function M.requests() return M.client().stats.requests end

-- ops(fn[, label]) -> fn()'s result, and the DynamoDB operations the shared client sent meanwhile,
-- in order, each named label(op, params) (default: the operation's name). fn's error is re-raised.
function M.ops(fn, label)
    local c = M.client()
    local own = rawget(c, "call")
    local orig = c.call
    local ops = {}
    c.call = function(self, op, p)
        ops[#ops + 1] = label and label(op, p) or op
        return orig(self, op, p)
    end
    local ok, res = pcall(fn)
    rawset(c, "call", own)
    if not ok then error(res, 0) end
    return res, ops
end

-- How many elements of list equal value (e.g. the outcomes of fx.race).
function M.count(list, value)
    local n = 0
    for _, v in ipairs(list) do
        if v == value then n = n + 1 end
    end
    return n
end

-- Raises unless f(...) raises a 400 ValidationError without sending a single request; returns it.
function M.rejects(f, ...)
    local before = M.requests()
    local err = M.raises(400, "ValidationError", f, ...)
    local after = M.requests()
    assert(before == after, "expected no request, " .. (after - before) .. " sent")
    return err
end

-- The raw item at key (its PK and SK), read consistently; nil when there is none.
function M.raw_get(key)
    return M.client():call("GetItem", { TableName = M.table_name(), Key = { PK = key.PK, SK = key.SK },
        ConsistentRead = true }).Item
end

-- Writes a raw item as it is, past the adapters.
function M.raw_put(item)
    M.client():call("PutItem", { TableName = M.table_name(), Item = item })
end

-- Deletes the raw item at key (its PK and SK), past the adapters.
function M.raw_delete(key)
    M.client():call("DeleteItem", { TableName = M.table_name(), Key = { PK = key.PK, SK = key.SK } })
end

-- race(n, body) -> outputs: runs `body`, the Lua source of a function(adapters, i) -> string, in n
-- separate lua5.4 processes that start together (they wait on a barrier file) against the shared
-- table, and returns each process's result in process order; a process that raised returns
-- "error: <code or message>". For guards and conditional writes under real concurrency.
function M.race(n, body)
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. ddb.shell_quote(dir)))
    local script = dir .. "/racer.lua"
    local f = assert(io.open(script, "w"))
    f:write(string.format([[
package.path = "lua/?.lua;lua/?/init.lua;spec/?.lua;" .. package.path
package.cpath = "build/5.4/?.so;" .. package.cpath
local aws = require "authhero.aws"
local i = tonumber(arg[1])
local client = aws.client.new({ region = "us-east-1", endpoint = %q,
    credentials = { accessKeyId = "fakeMyKeyId", secretAccessKey = "fakeSecretAccessKey" } })
local adapters = aws.create_adapters(client, { tableName = %q })
local body = assert(load(%q))()
local go = %q
while not io.open(go, "r") do os.execute("sleep 0.01") end
local ok, res = pcall(body, adapters, i)
if ok then io.write(tostring(res)) else
    io.write("error: ", type(res) == "table" and tostring(res.code) or tostring(res)) end
]], ddb.endpoint(), M.table_name(), "return " .. body, dir .. "/go"))
    f:close()
    local procs = {}
    for i = 1, n do procs[i] = assert(io.popen("lua5.4 " .. ddb.shell_quote(script) .. " " .. i .. " 2>&1", "r")) end
    os.execute("sleep 0.3")
    assert(io.open(dir .. "/go", "w")):close()
    local out = {}
    for i, p in ipairs(procs) do
        out[i] = p:read("*a")
        p:close()
    end
    os.execute("rm -rf " .. ddb.shell_quote(dir))
    return out
end

-- ids(list[, field]) -> each record's field (default "id"), in order.
function M.ids(list, field)
    field = field or "id"
    local out = {}
    for i, r in ipairs(list) do out[i] = r[field] end
    return out
end

-- keyset_walk(list_fn, items_key, id_field, take[, check]) -> ids, pages
-- Calls list_fn({ take = take, from = cursor }) from no cursor until the page's cursor is nil: page.next,
-- or page.totals.next for the lists that report it there (clients, tenants). Fails on an id returned
-- twice and after 1000 pages. check(page), when given, runs on every page. Returns the ids in the
-- order they came and how many pages it took.
function M.keyset_walk(list_fn, items_key, id_field, take, check)
    local seen, out, from, pages = {}, {}, nil, 0
    repeat
        local page = list_fn({ take = take, from = from })
        pages = pages + 1
        assert(pages <= 1000, "keyset walk: no end after 1000 pages")
        if check then check(page) end
        for _, r in ipairs(page[items_key]) do
            local id = r[id_field]
            assert(not seen[id], "returned twice: " .. tostring(id))
            seen[id] = true
            out[#out + 1] = id
        end
        if page.totals ~= nil then from = page.totals.next else from = page.next end
    until from == nil
    return out, pages
end

return M
