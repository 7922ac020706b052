-- The Lua end of the conformance bridge: this library's adapters over DynamoDB Local, answering
-- JSON-line calls from spec/conformance/bridge.mjs on stdin/stdout (one message per line; stdout
-- carries nothing else, diagnostics go to stderr). It owns no policy: every call reaches the real
-- adapters, and a missing adapter or method is answered as missing, never stood in for.
--
--   lua5.4 spec/conformance/worker.lua [--table NAME]      (after `make build`)
--
-- Requests (JS -> Lua), each with a numeric `id` the reply repeats:
--   { op = "describe" }                      -> { adapters = { users = { "get", ... }, ... }, transaction = bool }
--   { op = "stats" }                         -> { stats = client.stats }
--   { op = "use", set = "plain" | "cached" }  -> { set, previous }: which of the two adapter sets
--        (below) serves the calls from now on; switching to "cached" from "plain" flushes the cache
--        (writes through the plain set do not invalidate it)
--   { op = "cache_stats" }                   -> { set, ttl, reads, hits, misses, loads, ... }: the cache's
--        counters; reads: the cached reads ("adapter.method")
--   { op = "call", adapter, method, args, n, undef, scope? }
--        args: the JS argument list (length n); undef: 0-based positions that were `undefined`
--        (they arrive as nil; JSON null arrives as core.null); scope: a transaction's id, whose
--        adapters (the table Lua's transaction handed to its callback) then serve the call
--        -> { ok = true, result?, cost } | { ok = false, error = { status, code, message }, cost }
--         | { ok = false, bug = "...", cost } (a plain-string raise) | { missing = true }
--        cost = { requests, rcu, wcu }: what DynamoDB the call cost (cost_since below)
--   { op = "transaction", scope? }           -> calls adapters.transaction(fn); fn sends
--        { event = "callback", id, trx } and waits (its coroutine parked) for
--   { op = "callback_done", trx, ok, result | error }   (no reply of its own)
-- Every call runs in its own coroutine, so calls arriving while a transaction callback runs in JS
-- are served, and transactions may overlap. Stdin's end stops the worker and DynamoDB Local.
--
-- Two adapter sets over the same client and table: "plain" (create_adapters without a cache) and
-- "cached" (with the configuration read cache, authhero.aws.cache, ttl 300 s). "plain" serves until a
-- `use` says otherwise; a call or transaction keeps the set that was current when it arrived.
local root = (arg and arg[0] or ""):match("^(.-)/?spec/conformance/worker%.lua$")
if not root or root == "" then root = "." end
package.path = table.concat({ root .. "/lua/?.lua", root .. "/lua/?/init.lua", root .. "/spec/?.lua",
    package.path }, ";")
package.cpath = root .. "/build/5.4/?.so;" .. package.cpath

local core = require "authhero.aws.core"
local aws = require "authhero.aws"
local errors = require "authhero.aws.errors"
local ddb = require "support.ddb_local"

-- The contract's adapter names (adapter-contract.md §1), the ones `describe` reports on.
local ADAPTERS = {
    "tenants", "users", "sessions", "clients", "connections", "codes", "passwords", "organizations",
    "userOrganizations", "roles", "rolePermissions", "customDomains", "loginSessions", "refreshTokens",
    "keys", "clientGrants", "resourceServers", "userRoles", "userPermissions", "branding", "themes",
    "hooks", "logs", "promptSettings", "customText", "universalLoginTemplates", "emailProviders",
    "emailTemplates", "authenticationMethods", "clientConnections", "organizationConnections",
    "invites", "forms", "flows", "hookCode", "clientRegistrationTokens", "proxyRoutes", "actions",
    "actionVersions", "actionExecutions",
}

local function log(fmt, ...)
    io.stderr:write("worker: ", string.format(fmt, ...), "\n")
end
print = function(...) -- luacheck: ignore 121 (stdout is the protocol's; stray prints go to stderr)
    local parts = table.pack(...)
    for i = 1, parts.n do parts[i] = tostring(parts[i]) end
    io.stderr:write(table.concat(parts, "\t", 1, parts.n), "\n")
end

local function send(msg)
    local ok, line = pcall(core.json_encode, msg)
    if not ok then -- the result is not JSON (mixed keys, a function, ...): the adapter's fault
        line = core.json_encode({ id = msg.id, ok = false,
            bug = "result cannot be encoded as JSON: " .. tostring(line) })
    end
    io.stdout:write(line, "\n")
    io.stdout:flush()
end

local table_name = "conformance_" .. os.time() .. "_" .. math.random(1000000)
do
    local i = 1
    while arg and arg[i] do
        if arg[i] == "--table" and arg[i + 1] then table_name, i = arg[i + 1], i + 1 end
        i = i + 1
    end
end

local endpoint = ddb.endpoint() -- $DYNAMODB_ENDPOINT, else a DynamoDB Local of this process
local external = os.getenv("DYNAMODB_ENDPOINT") and os.getenv("DYNAMODB_ENDPOINT") ~= ""
local client = aws.client.new({
    region = "us-east-1",
    endpoint = endpoint,
    credentials = { accessKeyId = "fakeMyKeyId", secretAccessKey = "fakeSecretAccessKey" },
    return_consumed_capacity = "TOTAL",
})
aws.schema.create_table(client, { tableName = table_name })
local cache = aws.cache.new({ ttl = 300 })
local sets = {
    plain = aws.create_adapters(client, { tableName = table_name }),
    cached = aws.create_adapters(client, { tableName = table_name, cache = cache }),
}
local current = "plain"
local adapters = sets.plain

local scopes = {}  -- transaction id -> the adapters table Lua's transaction gave its callback
local parked = {}  -- transaction id -> coroutine waiting for the JS callback's end
local next_trx = 0

-- An error value -> the reply's fields: error objects keep status/code/message; anything else is a
-- bug (a plain string per STYLE.md) and carries its traceback.
local function failure(err, trace)
    if errors.is(err) or (type(err) == "table" and type(err.status) == "number" and err.message ~= nil) then
        return { ok = false, error = { status = err.status, code = tostring(err.code),
            message = tostring(err.message) } }
    end
    return { ok = false, bug = tostring(err) .. (trace and ("\n" .. trace) or "") }
end

local function describe()
    local out = {}
    for _, name in ipairs(ADAPTERS) do
        local a = adapters[name]
        if type(a) == "table" then
            local methods = {}
            for k, v in pairs(a) do
                if type(k) == "string" and type(v) == "function" and k:sub(1, 1) ~= "_" then
                    methods[#methods + 1] = k
                end
            end
            table.sort(methods)
            out[name] = core.array(methods)
        end
    end
    return { adapters = out, transaction = type(adapters.transaction) == "function" }
end

local function use(req)
    local set = req.set
    if sets[set] == nil then return { ok = false, bug = "unknown adapter set " .. tostring(set) } end
    local previous = current
    if set == "cached" and previous ~= "cached" then cache:flush() end
    current, adapters = set, sets[set]
    return { ok = true, result = { set = set, previous = previous } }
end

-- The cached reads ("adapter.method", cache.lua's CACHED), so the suite can tell a cached read that
-- missed from a read that is never cached.
local cached_reads = {}
for name, reads in pairs(aws.cache.CACHED) do
    for method in pairs(reads) do cached_reads[#cached_reads + 1] = name .. "." .. method end
end
table.sort(cached_reads)
cached_reads = core.array(cached_reads)

local function cache_stats()
    local s = { set = current, ttl = cache.ttl, reads = cached_reads }
    for k, v in pairs(cache.stats) do s[k] = v end
    return s
end

local function stats()
    local s = {}
    for k, v in pairs(client.stats) do s[k] = v end
    return s
end

-- The argument list as the JS caller passed it: undefined -> nil, null -> core.null.
local function unpack_args(req)
    local args, n = {}, tonumber(req.n) or 0
    if type(req.args) == "table" then
        for i = 1, n do args[i] = req.args[i] end
    end
    if type(req.undef) == "table" then
        for _, pos in ipairs(req.undef) do args[pos + 1] = nil end
    end
    return args, n
end

-- What DynamoDB a call cost: the client's counters before and after it. A call's coroutine runs
-- to its end without yielding (the transport blocks), so the difference is that call's own; a
-- transaction's is that of every call made while its JS callback ran (the transaction itself
-- sends nothing of its own, contract §7), so those are counted twice in a sum over methods.
local function cost_since(before)
    local s = client.stats
    return { requests = s.requests - before.requests, rcu = s.read_capacity - before.read_capacity,
        wcu = s.write_capacity - before.write_capacity }
end

local function snapshot()
    local s = client.stats
    return { requests = s.requests, read_capacity = s.read_capacity, write_capacity = s.write_capacity }
end

local function traced(f, ...)
    local trace
    local res = table.pack(xpcall(f, function(e)
        if not errors.is(e) then trace = debug.traceback("", 2) end
        return e
    end, ...))
    return res, trace
end

-- Runs inside the call's coroutine; returns the reply.
local function handle_call(req)
    local target = adapters
    if req.scope ~= nil then
        target = scopes[req.scope]
        if target == nil then return { ok = false, bug = "unknown transaction scope " .. tostring(req.scope) } end
    end
    local a = type(target) == "table" and target[req.adapter] or nil
    local f = type(a) == "table" and a[req.method] or nil
    if type(f) ~= "function" then return { missing = true } end
    local args, n = unpack_args(req)
    local before = snapshot()
    local res, trace = traced(f, table.unpack(args, 1, n))
    local reply = res[1] and { ok = true, result = res[2] } or failure(res[2], trace)
    reply.cost = cost_since(before)
    return reply
end

local function handle_transaction(req)
    local target = adapters
    if req.scope ~= nil then target = scopes[req.scope] or adapters end
    local t = type(target) == "table" and target.transaction or nil
    if type(t) ~= "function" then return { missing = true } end
    local before = snapshot()
    local res, trace = traced(t, function(trx)
        next_trx = next_trx + 1
        local id = next_trx
        scopes[id] = trx
        local ok, value = coroutine.yield({ event = "callback", id = req.id, trx = id })
        scopes[id] = nil
        if not ok then error(value, 0) end
        return value
    end)
    local reply = res[1] and { ok = true, result = res[2] } or failure(res[2], trace)
    reply.cost = cost_since(before)
    return reply
end

-- Resumes a call's coroutine until it ends (reply sent) or parks on a JS callback.
local function step(co, id, ...)
    local ok, out = coroutine.resume(co, ...)
    if not ok then
        local reply = { ok = false, bug = "worker: " .. tostring(out) }
        reply.id = id
        return send(reply)
    end
    if coroutine.status(co) == "dead" then
        out.id = id
        return send(out)
    end
    if type(out) ~= "table" or out.event ~= "callback" then
        return send({ id = id, ok = false, bug = "an adapter yielded from the worker's coroutine" })
    end
    -- parked inside a transaction: JS runs the callback, then sends callback_done
    parked[out.trx] = { co = co, id = id }
    send(out)
end

local function dispatch(req)
    local op, id = req.op, req.id
    if op == "describe" then
        send({ id = id, ok = true, result = describe() })
    elseif op == "stats" then
        send({ id = id, ok = true, result = stats() })
    elseif op == "use" then
        local reply = use(req)
        reply.id = id
        send(reply)
    elseif op == "cache_stats" then
        send({ id = id, ok = true, result = cache_stats() })
    elseif op == "call" then
        step(coroutine.create(handle_call), id, req)
    elseif op == "transaction" then
        step(coroutine.create(handle_transaction), id, req)
    elseif op == "callback_done" then
        local p = parked[req.trx]
        if not p then
            log("callback_done for unknown transaction %s", tostring(req.trx))
            return
        end
        parked[req.trx] = nil
        if req.ok then
            step(p.co, p.id, true, req.result)
        else
            local e = type(req.error) == "table" and req.error or {}
            step(p.co, p.id, false, errors.new(tonumber(e.status) or 500, tostring(e.code or "JsCallbackError"),
                tostring(e.message or "the transaction callback failed"), { js_trx = req.trx }))
        end
    else
        send({ id = id, ok = false, bug = "unknown op " .. tostring(op) })
    end
end

log("DynamoDB at %s, table %s", endpoint, table_name)
-- state: DynamoDB Local's state folder when this worker started it (for `scripts/dynamodb-local
-- stop --state` should the worker be killed; its watchdog would stop it too, a little later)
send({ event = "ready", endpoint = endpoint, table = table_name, state = ddb.state_dir() })

for line in io.stdin:lines() do
    if line ~= "" then
        local ok, req = pcall(core.json_decode, line)
        if ok and type(req) == "table" then
            dispatch(req)
        else
            log("bad request line: %s", tostring(req))
        end
    end
end

-- stdin closed: the run is over
if external then
    pcall(client.call, client, "DeleteTable", { TableName = table_name })
end
ddb.stop()
