-- aws.global: a multi-Region router that stands in for the client (store.new, create_adapters, the
-- CLI take it unchanged), for DynamoDB global tables. MREC ("write to your Region"): a tenant's
-- security-state writes go to its home Region only; other writes and eventually consistent reads
-- stay in the local Region; reads that feed a security decision read the home Region. A circuit
-- breaker per Region, evacuation (freeze, set_home). MRSC is refused (no transactions, no TTL).
-- It leaves out: moving data, replication itself (DynamoDB's), and sharing state between routers.
--
-- global.new{ mode, local_region, regions, home, foreign_security_write, breaker, frozen, log,
--             local_entities, tableName, check_table, now, sleep, random } -> router
--   mode                   "mrec" (default) or "mrsc" (always refused today, see below).
--   local_region           the Region this process runs in; a key of regions.
--   regions                { [name] = client options (aws.client.new's; region defaults to name)
--                            or a client (anything with :call) }; at least the local Region.
--   home                   { default = name, tenants = { [tenant_id] = name } }, a Region name (every
--                          tenant), or function(tenant_id) -> name (tenant_id is nil when a request
--                          names no tenant; an unknown Region it returns raises a ValidationError
--                          for that request). router:set_home overrides both.
--   foreign_security_write "refuse" (default): a security-state write of a tenant whose home is
--                          another Region raises WrongRegion before anything is sent. "forward":
--                          it is sent to the home Region's client (a cross-Region call; logged).
--                          "warn": written in the local Region and logged (migrations only: this
--                          is what lets the MREC hazards happen).
--   breaker                { threshold = 5, window_ms = 10000, cooldown_ms = 5000 }: a Region opens
--                          after `threshold` failed calls within window_ms; after cooldown_ms it is
--                          half-open and lets one call through (the probe): success closes it,
--                          failure opens it again. A failed call: one that raised a TransportError
--                          (the client's own retries already spent) or an error with status >= 500.
--                          Condition failures, throttling and other 4xx are answers, not failures.
--   frozen                 { [tenant_id] = true } or { tenant_id, ... }: their security writes raise
--                          RegionFrozen (see freeze).
--   log                    function(event, info): "forward" and "warn" ({ op, table, tenant, from,
--                          to, home }), "failover" (a read that failed in Region `from` is tried in
--                          `to`: { op, table, tenant, from, to, reason }) and "breaker" ({ region,
--                          from, to }: a state change). Errors it raises are dropped.
--   local_entities         registry entity names whose conditional writes stay local (default
--                          { "logs" }: a log's only condition is "no log with this fresh id").
--   tableName              the table mode = "mrsc" and check_table describe (schema.table_name()).
--   check_table            true: new() runs router:check_table() (mode = "mrsc" always does).
--   now, sleep, random     the breaker's clock (seconds, default core.now) and the batch helpers'
--                          backoff, for specs.
--
-- Which requests are security-state writes (router:classify(op, params) says what it decided):
-- every TransactWriteItems (atomic only in the Region that ran it), every conditional write
-- (ConditionExpression or Expected: MREC evaluates conditions on the local replica only) except
-- those of local_entities, PartiQL writes, and unconditional writes (PutItem, UpdateItem,
-- DeleteItem, BatchWriteItem entries) of security entities: the items and helper items of
-- passwords, sessions, loginSessions, codes and refreshTokens, the client-id pointers (clients'
-- pointer helpers) and every guard helper of the registry (users' email and username guards, domain
-- claims, ...), recognised by entityType or by the shape of the key. Security reads: ConsistentRead,
-- TransactGetItems, and reads of those entities (GetItem by key shape, Query by partition and
-- sort-key prefix, BatchGetItem per key).
-- The tenant of a request: the TENANT#{t} partition of its keys (escapes undone), else the item's
-- tenant_id (client-id pointers, domain claims, signing keys), else the value its condition compares
-- tenant_id with; none: home.default. A transaction whose tenants have different homes is a
-- ValidationError.
--
-- Where requests go (MREC):
--   security write   the tenant's home Region (after foreign_security_write, above). A frozen tenant:
--                    RegionFrozen (503). Home (or, with "warn", local) Region open: RegionUnavailable
--                    (503), never another Region. Never re-sent elsewhere after a failure.
--   security read    the home Region first, then the local Region, then the others by name.
--   other read       the local Region first, then the home Region, then the others by name.
--   other write      the local Region first, then the home Region, then the others by name (LWW
--                    makes such writes safe anywhere; the condition-free ones are idempotent).
--   control plane    (DescribeTable, CreateTable, the Streams operations, ...) the local Region only.
-- Open Regions are skipped (a half-open one takes its one probe); none left: RegionUnavailable.
-- A read that fails (a breaker failure, above) is tried in the next Region of its list; a write
-- is not. BatchWriteItem and BatchGetItem are split by destination (neither is atomic) and their
-- replies merged; every destination is decided before the first request is sent.
--
-- Errors (errors.lua objects; the router's carry op, table, tenant, home_region, local_region, and
-- region = the Region the error is about):
--   WrongRegion (421 Misdirected Request): region = this (the wrong) Region: send the user to
--     home_region.
--   RegionFrozen (503): evacuation in progress, try again shortly (region = this Region).
--   RegionUnavailable (503): a security write's Region is open (region = that Region), or every
--     Region a request could use is (regions = their names, region = the first).
--   MRSCUnsupported (501): new{ mode = "mrsc" } on an MRSC table; ValidationError when the table is
--     not one. Why: MRSC has no TransactWriteItems and no TTL; this library's uniqueness guards and
--     expiry need both, and nothing here falls back silently.
--   An error a Region's client raised gets err.region = that Region (keeping its own fields).
--
-- The router: call, paginate, batch_write, batch_get (client.lua's own helpers, run with the router
-- as self, so every request is routed), changes (the local Region's), close (every Region's
-- client), stats ({ requests, retries, read_capacity, write_capacity }: summed over the Regions,
-- plus the batch helpers' retries),
-- region (= local_region), clients ({ [name] = client }), classify, target, set_home, home_of,
-- freeze, unfreeze, is_frozen, breaker(name) -> state, failures; status() -> snapshot; trip(name) and
-- reset(name) force a breaker open or closed (operations, specs), check_table().
-- State (homes set by set_home, frozen tenants, breakers) lives in this router only: every process
-- in every Region has its own, so an evacuation changes all of them (the README runbook).
local core = require "authhero.aws.core"
local errors = require "authhero.aws.errors"
local schema = require "authhero.aws.schema"
local client_mod = require "authhero.aws.client"

local _M = {}
local mt = { __index = _M }

-- The security entities (every template: item and helpers), and the entities whose pointer
-- helpers are security state; every guard helper of the registry is added to these.
local SECURITY_ENTITIES = { passwords = true, sessions = true, loginSessions = true, codes = true,
    refreshTokens = true }
local POINTER_ENTITIES = { clients = true }
local DEFAULT_LOCAL_ENTITIES = { "logs" }
local BREAKER_DEFAULTS = { threshold = 5, window_ms = 10000, cooldown_ms = 5000 }
local MODES = { mrec = true, mrsc = true }
local FOREIGN = { refuse = true, forward = true, warn = true }

-- Security templates (base table items, and index keys for queries) and entity types, from the
-- registry.
local SEC_TEMPLATES, SEC_TYPES = {}, {}
do
    local function add(t, entity_type)
        SEC_TEMPLATES[#SEC_TEMPLATES + 1] = t
        SEC_TYPES[entity_type or t.entity_type] = true
    end
    for _, E in ipairs(schema.entities) do
        if SECURITY_ENTITIES[E.name] then
            add(E.item, E.entity_type)
            for _, t in ipairs(E.indexes) do add(t, E.entity_type) end
        end
        for _, h in ipairs(E.helpers) do
            if SECURITY_ENTITIES[E.name] or h.kind == "guard" or (h.kind == "pointer" and POINTER_ENTITIES[E.name]) then
                add(h)
            end
        end
    end
end
_M.SECURITY_TYPES = SEC_TYPES

-- Do a key's parts (core.key_parts) have the shape of template parts (literals equal)?
local function shaped(parts, got)
    return got ~= nil and schema.parts_match(parts, got)
end

local function split(v)
    if type(v) ~= "string" then return nil end
    return core.key_parts(v)
end

-- Is the item key { PK, SK } one of a security template's (base table)?
local function security_key(key)
    if type(key) ~= "table" then return false end
    local pk, sk = split(key.PK), split(key.SK)
    if not pk or not sk then return false end
    for _, t in ipairs(SEC_TEMPLATES) do
        if t.index == nil and t.sk and shaped(t.pk, pk) and shaped(t.sk, sk) then return true end
    end
    return false
end

local function tenant_of_pk(pk)
    if type(pk) ~= "string" or pk:sub(1, 7) ~= "TENANT#" then return nil end
    local parts = core.key_parts(pk)
    return parts[2]
end

-- The value a condition compares tenant_id with ("#n = :v" or "tenant_id = :v"), or nil.
local function condition_tenant(expr, names, values)
    if type(expr) ~= "string" or type(values) ~= "table" then return nil end
    for n, v in expr:gmatch("([#%w_]+)%s*=%s*(:[%w_]+)") do
        local attr = n
        if n:sub(1, 1) == "#" then attr = type(names) == "table" and names[n] or nil end
        if attr == "tenant_id" and type(values[v]) == "string" then return values[v] end
    end
    return nil
end

-- The tenant of one item operation (its Key or Item, and its condition), or nil.
local function tenant_of(op)
    local item = op.Item or op.Key
    if type(item) ~= "table" then return nil end
    local t = tenant_of_pk(item.PK)
    if t then return t end
    if op.Item and type(op.Item.tenant_id) == "string" and op.Item.tenant_id ~= "" then return op.Item.tenant_id end
    return condition_tenant(op.ConditionExpression, op.ExpressionAttributeNames, op.ExpressionAttributeValues)
end

local function conditional(op)
    return op.ConditionExpression ~= nil or op.Expected ~= nil
end

-- The entityType of a write's item: the Item's own, else that of the registry template whose shape
-- its key has (nil when none).
local function entity_type_of(op)
    local item = op.Item
    if type(item) == "table" and type(item.entityType) == "string" then return item.entityType end
    local key = op.Key or item
    if type(key) ~= "table" then return nil end
    local pk, sk = split(key.PK), split(key.SK)
    if not pk or not sk then return nil end
    for _, t in pairs(schema.templates) do
        if t.index == nil and t.sk and t.entity_type and shaped(t.pk, pk) and shaped(t.sk, sk) then
            return t.entity_type
        end
    end
    return nil
end

-- One write (PutItem, UpdateItem, DeleteItem or a batch entry) -> security?, why.
function _M._write_kind(self, op, batch_entry)
    if not batch_entry and conditional(op) then
        local et = entity_type_of(op)
        if not (et and self._local_types[et]) then return true, "conditional" end
    end
    local item = op.Item
    if type(item) == "table" and SEC_TYPES[item.entityType] then return true, "security entity" end
    if security_key(op.Key or item) then return true, "security entity" end
    return false, nil
end

-- The partition value and sort-key prefix a Query's KeyConditionExpression asks for.
local function query_range(params)
    local expr, names, values = params.KeyConditionExpression, params.ExpressionAttributeNames or {},
        params.ExpressionAttributeValues or {}
    if type(expr) ~= "string" then return nil end
    local ix = params.IndexName
    local pk_attr, sk_attr = "PK", "SK"
    if ix then pk_attr, sk_attr = ix .. "PK", ix .. "SK" end
    local function attr(n) return n:sub(1, 1) == "#" and names[n] or n end
    local partition, prefix
    for n, v in expr:gmatch("([#%w_]+)%s*=%s*(:[%w_]+)") do
        local a = attr(n)
        if a == pk_attr then partition = values[v] elseif a == sk_attr then prefix = values[v] end
    end
    local n, v = expr:match("begins_with%s*%(%s*([#%w_]+)%s*,%s*(:[%w_]+)%s*%)")
    if n and attr(n) == sk_attr then prefix = values[v] end
    return partition, prefix, ix
end

-- Does a Query range hold items of a security template?
local function security_range(partition, prefix, index)
    local pk = split(partition)
    if not pk then return false end
    for _, t in ipairs(SEC_TEMPLATES) do
        if t.index == index and t.sk and shaped(t.pk, pk) then
            if type(prefix) ~= "string" or prefix == "" then return true end
            local tp = t.prefix or ""
            if prefix:sub(1, #tp) == tp or tp:sub(1, #prefix) == prefix then return true end
        end
    end
    return false
end

-- classify(op, params) -> { kind = "security_write" | "write" | "security_read" | "read" |
-- "control", tenant = id or nil, why = text }. A batch is "write" or "read" as a whole; call
-- classifies its entries one by one. Raises a ValidationError for a transaction whose tenants'
-- homes differ. Sends nothing.
function _M.classify(self, op, params)
    params = params or {}
    if op == "TransactWriteItems" then
        local tenant, home
        for _, t in ipairs(params.TransactItems or {}) do
            for _, o in pairs(type(t) == "table" and t or {}) do
                local tt = type(o) == "table" and tenant_of(o) or nil
                if tt and tenant == nil then
                    tenant, home = tt, self:home_of(tt)
                elseif tt and tt ~= tenant and self:home_of(tt) ~= home then
                    errors.validation("a transaction writes tenants %s and %s, whose home Regions differ (%s, %s)",
                        tenant, tt, home, self:home_of(tt))
                end
            end
        end
        return { kind = "security_write", tenant = tenant, why = "transaction" }
    end
    if op == "PutItem" or op == "UpdateItem" or op == "DeleteItem" then
        local sec, why = self:_write_kind(params, false)
        return { kind = sec and "security_write" or "write", tenant = tenant_of(params), why = why or "ordinary write" }
    end
    if op == "GetItem" then
        local t = tenant_of(params)
        if params.ConsistentRead then return { kind = "security_read", tenant = t, why = "ConsistentRead" } end
        if security_key(params.Key) then return { kind = "security_read", tenant = t, why = "security entity" } end
        return { kind = "read", tenant = t, why = "eventually consistent" }
    end
    if op == "Query" or op == "Scan" then
        local partition, prefix, index = nil, nil, params.IndexName
        if op == "Query" then partition, prefix, index = query_range(params) end
        local t = tenant_of_pk(partition)
        if params.ConsistentRead then return { kind = "security_read", tenant = t, why = "ConsistentRead" } end
        if op == "Query" and security_range(partition, prefix, index) then
            return { kind = "security_read", tenant = t, why = "security entity" }
        end
        return { kind = "read", tenant = t, why = "eventually consistent" }
    end
    if op == "TransactGetItems" then
        local t
        for _, g in ipairs(params.TransactItems or {}) do
            t = t or (type(g) == "table" and type(g.Get) == "table" and tenant_of(g.Get)) or nil
        end
        return { kind = "security_read", tenant = t, why = "transaction" }
    end
    if op == "BatchWriteItem" or op == "BatchGetItem" then
        return { kind = op == "BatchWriteItem" and "write" or "read", why = "batch (split per entry)" }
    end
    if op == "ExecuteStatement" or op == "BatchExecuteStatement" or op == "ExecuteTransaction" then
        local st = op == "ExecuteStatement" and { { Statement = params.Statement } } or params.Statements
            or params.TransactStatements or {}
        local select = op ~= "ExecuteTransaction"
        for _, s in ipairs(st) do
            local text = type(s) == "table" and s.Statement
            if type(text) ~= "string" or not text:match("^%s*[Ss][Ee][Ll][Ee][Cc][Tt]%f[%W]") then select = false end
        end
        if select then
            return { kind = params.ConsistentRead and "security_read" or "read", why = "PartiQL select" }
        end
        return { kind = "security_write", why = "PartiQL write" }
    end
    return { kind = "control", why = "control plane" }
end

-- breakers ------------------------------------------------------------------------------------------

local function log(self, event, info)
    if self._log then pcall(self._log, event, info) end
end

local function set_state(self, name, b, to)
    if b.state == to then return end
    local from = b.state
    b.state = to
    log(self, "breaker", { region = name, from = from, to = to })
end

-- May a call go to Region name now? -> ok, probe (this call is the half-open probe)
local function admit(self, name)
    local b = self._breakers[name]
    if b.state == "closed" then return true, false end
    if b.state == "open" then
        if self._now() - b.opened_at < self._cooldown then return false end
        set_state(self, name, b, "half_open")
        b.probing = false
    end
    if b.probing then return false end
    b.probing = true
    return true, true
end

local function open(self, name, b)
    b.opened_at = self._now()
    b.failures = {}
    set_state(self, name, b, "open")
end

-- The outcome of a call to Region name: "ok", "fail" (a breaker failure) or "neutral" (a bug).
local function record(self, name, outcome, probe)
    local b = self._breakers[name]
    if probe then b.probing = false end
    if outcome == "neutral" then return end
    if probe then
        if outcome == "ok" then
            b.failures = {}
            set_state(self, name, b, "closed")
        else
            open(self, name, b)
        end
        return
    end
    if outcome == "ok" or b.state ~= "closed" then return end
    local now, f = self._now(), b.failures
    f[#f + 1] = now
    local keep, n = {}, 0
    for _, t in ipairs(f) do
        if now - t <= self._window then
            n = n + 1
            keep[n] = t
        end
    end
    b.failures = keep
    if n >= self._threshold then open(self, name, b) end
end

local function breaker_failure(err)
    return errors.is(err) and (err.code == "TransportError" or (type(err.status) == "number" and err.status >= 500))
end

-- routing ---------------------------------------------------------------------------------------------

local function fail(status, code, message, fields)
    errors.raise(status, code, message, fields)
end

-- Candidate Regions: first, second, then the rest by name (no repeats).
local function order(self, first, second)
    local list, seen = {}, {}
    for _, n in ipairs({ first, second }) do
        if n and not seen[n] then
            seen[n] = true
            list[#list + 1] = n
        end
    end
    for _, n in ipairs(self.regions) do
        if not seen[n] then list[#list + 1] = n end
    end
    return list
end

-- target(op, params [, class]) -> a plan { kind, tenant, why, home, region (a security write's one
-- Region) or candidates (the Regions to try, in order), forwarded, warned }; raises WrongRegion or
-- RegionFrozen. Sends nothing and does not look at the breakers (call does, when it sends).
function _M.target(self, op, params, class)
    class = class or self:classify(op, params)
    local t = class.tenant
    local home = self:home_of(t)
    local plan = { kind = class.kind, tenant = t, why = class.why, home = home }
    -- the fields of a refusal (built only for one: no work on the way through)
    local function ctx()
        return { op = op, table = client_mod._tables_of(params or {}), tenant = t, home_region = home,
            region = self.local_region, local_region = self.local_region }
    end
    if class.kind == "security_write" then
        if t ~= nil and self._frozen[t] then
            fail(503, "RegionFrozen", string.format("tenant %s is frozen (being moved between Regions): "
                .. "its security-state writes are refused until it is unfrozen", t), ctx())
        end
        local region = home
        if home ~= self.local_region then
            if self._foreign == "refuse" then
                fail(421, "WrongRegion", string.format("%s home Region is %s, not %s: its security-state writes (%s) "
                    .. "are made there only", t and ("tenant " .. t .. "'s") or "the default (no tenant named)", home,
                    self.local_region, class.why), ctx())
            elseif self._foreign == "warn" then
                region, plan.warned = self.local_region, true
            else
                plan.forwarded = true
            end
        end
        plan.region = region
    elseif class.kind == "security_read" then
        plan.candidates = order(self, home, self.local_region)
    elseif class.kind == "control" then
        plan.candidates = { self.local_region } -- a table's description, its stream: this Region's
    else
        plan.candidates = order(self, self.local_region, home)
    end
    return plan
end

-- Sends to Region name through its breaker; err.region names the Region of an error it raised.
local function send(self, name, probe, op, params, opts)
    local ok, res = pcall(self.clients[name].call, self.clients[name], op, params, opts)
    if ok then
        record(self, name, "ok", probe)
        return res
    end
    if errors.is(res) then
        record(self, name, breaker_failure(res) and "fail" or "ok", probe)
        if res.region == nil then res.region = name end
    else
        record(self, name, "neutral", probe)
    end
    error(res, 0)
end

local function unavailable(self, op, params, plan, names)
    fail(503, "RegionUnavailable", string.format("no Region can take %s now: %s open", op,
        table.concat(names, ", ")), { op = op, table = client_mod._tables_of(params or {}), tenant = plan.tenant,
        home_region = plan.home, region = names[1], local_region = self.local_region, regions = names })
end

-- A security write's Region, admitted by its breaker (fail closed) -> probe flag.
local function admit_write(self, op, params, plan)
    local ok, probe = admit(self, plan.region)
    if not ok then
        fail(503, "RegionUnavailable", string.format("Region %s is unavailable (circuit open): tenant %s's "
            .. "security-state writes are refused, never made in another Region", plan.region, tostring(plan.tenant)),
            { op = op, table = client_mod._tables_of(params or {}), tenant = plan.tenant, home_region = plan.home,
                region = plan.region, local_region = self.local_region })
    end
    return probe
end

-- Runs a planned request.
local function run(self, op, params, opts, plan)
    if plan.region then
        local probe = admit_write(self, op, params, plan)
        if plan.forwarded or plan.warned then
            log(self, plan.forwarded and "forward" or "warn", { op = op, table = client_mod._tables_of(params),
                tenant = plan.tenant, from = self.local_region, to = plan.region, home = plan.home })
        end
        return send(self, plan.region, probe, op, params, opts)
    end
    local is_read = plan.kind == "read" or plan.kind == "security_read"
    local skipped, last = {}, nil
    for _, name in ipairs(plan.candidates) do
        local ok, probe = admit(self, name)
        if not ok then
            skipped[#skipped + 1] = name
        else
            if last then -- not for Regions skipped as open: their breaker logged that once
                log(self, "failover", { op = op, table = client_mod._tables_of(params), tenant = plan.tenant,
                    from = last.region, to = name, reason = tostring(last) })
            end
            if not is_read then return send(self, name, probe, op, params, opts) end
            local okc, res = pcall(send, self, name, probe, op, params, opts)
            if okc then return res end
            if not breaker_failure(res) then error(res, 0) end
            last = res
        end
    end
    if last then error(last, 0) end
    unavailable(self, op, params, plan, skipped)
end

-- BatchWriteItem / BatchGetItem: every entry planned (raising before anything is sent), grouped by
-- destination, sent, replies merged.
local function entry_plan(self, op, table_name, entry, consistent)
    local class
    if op == "BatchWriteItem" then
        local o = entry.PutRequest and { Item = entry.PutRequest.Item }
            or { Key = type(entry.DeleteRequest) == "table" and entry.DeleteRequest.Key or nil }
        local sec, why = self:_write_kind(o, true)
        class = { kind = sec and "security_write" or "write", tenant = tenant_of(o), why = why or "ordinary write" }
    else
        local t = tenant_of({ Key = entry })
        local sec = consistent or security_key(entry)
        class = { kind = sec and "security_read" or "read", tenant = t,
            why = consistent and "ConsistentRead" or (sec and "security entity" or "eventually consistent") }
    end
    return self:target(op, { TableName = table_name }, class)
end

local function plan_key(plan)
    if plan.region then return "1" .. plan.region end
    return "2" .. table.concat(plan.candidates, ",")
end

local function batch(self, op, params, opts)
    local groups, order_of = {}, {}
    for table_name, v in pairs(params.RequestItems or {}) do
        local entries = op == "BatchWriteItem" and v or (type(v) == "table" and v.Keys) or {}
        for _, entry in ipairs(entries) do
            local plan = entry_plan(self, op, table_name, entry, op == "BatchGetItem" and v.ConsistentRead)
            local k = plan_key(plan)
            local g = groups[k]
            if not g then
                g = { plan = plan, items = {} }
                groups[k] = g
                order_of[#order_of + 1] = k
            end
            local list = g.items[table_name]
            if not list then
                list = {}
                g.items[table_name] = list
            end
            list[#list + 1] = entry
        end
    end
    if #order_of <= 1 then
        local g = groups[order_of[1]]
        if not g then return self.clients[self.local_region]:call(op, params, opts) end
        return run(self, op, params, opts, g.plan)
    end
    local merged = { Responses = {}, UnprocessedItems = {}, UnprocessedKeys = {} }
    local cc = {}
    for _, k in ipairs(order_of) do
        local g = groups[k]
        local p = {}
        for f, x in pairs(params) do p[f] = x end
        local ri = {}
        for table_name, list in pairs(g.items) do
            if op == "BatchWriteItem" then
                ri[table_name] = list
            else
                local spec = {}
                for f, x in pairs(params.RequestItems[table_name]) do spec[f] = x end
                spec.Keys = list
                ri[table_name] = spec
            end
        end
        p.RequestItems = ri
        local reply = run(self, op, p, opts, g.plan)
        for _, field in ipairs({ "Responses", "UnprocessedItems", "UnprocessedKeys" }) do
            for table_name, x in pairs(type(reply[field]) == "table" and reply[field] or {}) do
                if field == "UnprocessedKeys" then
                    local m = merged[field][table_name]
                    if not m then
                        m = {}
                        for f, y in pairs(x) do m[f] = y end
                        m.Keys = {}
                        merged[field][table_name] = m
                    end
                    for _, key in ipairs(x.Keys or {}) do m.Keys[#m.Keys + 1] = key end
                else
                    local m = merged[field][table_name] or {}
                    merged[field][table_name] = m
                    for _, it in ipairs(x) do m[#m + 1] = it end
                end
            end
        end
        if type(reply.ConsumedCapacity) == "table" then
            for _, c in ipairs(reply.ConsumedCapacity) do cc[#cc + 1] = c end
        end
    end
    if #cc > 0 then merged.ConsumedCapacity = cc end
    return merged
end

-- call(op, params [, opts]) -> the reply of the Region the request was routed to (see the header).
function _M.call(self, op, params, opts)
    client_mod._check_call(op, params)
    params = params or {}
    if op == "BatchWriteItem" or op == "BatchGetItem" then return batch(self, op, params, opts) end
    return run(self, op, params, opts, self:target(op, params))
end

_M.paginate = client_mod.paginate
_M.batch_write = client_mod.batch_write
_M.batch_get = client_mod.batch_get

-- changes(table_name [, opts]): the local Region's stream (client:changes on its client); every
-- replica has its own stream, which also carries what replication applied there.
function _M.changes(self, table_name, opts)
    return self.clients[self.local_region]:changes(table_name, opts)
end

function _M.close(self)
    for _, name in ipairs(self.regions) do
        local c = self.clients[name]
        if c.close then c:close() end
    end
end
mt.__close = _M.close

-- homes, evacuation ------------------------------------------------------------------------------------

local function check_region(self, name, what)
    if type(name) ~= "string" or not self.clients[name] then
        errors.validation("%s must be one of the router's Regions (%s), got %s", what, table.concat(self.regions, ", "),
            tostring(name))
    end
    return name
end

-- home_of(tenant_id) -> the tenant's home Region (set_home, then home's configuration).
function _M.home_of(self, tenant)
    local h = tenant ~= nil and self._homes[tenant] or nil
    if h then return h end
    local cfg = self._home
    if type(cfg) == "function" then
        h = cfg(tenant)
        return check_region(self, h, "home(" .. tostring(tenant) .. ")")
    end
    return tenant ~= nil and cfg.tenants[tenant] or cfg.default
end

local function need_tenant(t, fn)
    if type(t) ~= "string" or t == "" then error("bad argument #1 to '" .. fn .. "' (tenant id expected)", 3) end
end

-- set_home(tenant_id, region): the tenant's home from now on (in this router).
function _M.set_home(self, tenant, region)
    need_tenant(tenant, "set_home")
    self._homes[tenant] = check_region(self, region, "region")
end

-- freeze(tenant_id) / unfreeze(tenant_id) / is_frozen(tenant_id) (in this router).
function _M.freeze(self, tenant)
    need_tenant(tenant, "freeze")
    self._frozen[tenant] = true
end

function _M.unfreeze(self, tenant)
    need_tenant(tenant, "unfreeze")
    self._frozen[tenant] = nil
end

function _M.is_frozen(self, tenant)
    return self._frozen[tenant] == true
end

-- breaker(name) -> "closed" | "open" | "half_open", failures counted in the current window.
function _M.breaker(self, name)
    check_region(self, name, "region")
    local b = self._breakers[name]
    if b.state == "open" and self._now() - b.opened_at >= self._cooldown then return "half_open", 0 end
    local n = 0
    for _, t in ipairs(b.failures) do
        if self._now() - t <= self._window then n = n + 1 end
    end
    return b.state, n
end

-- trip(name): open a Region's breaker now; reset(name): close it.
function _M.trip(self, name)
    check_region(self, name, "region")
    open(self, name, self._breakers[name])
end

function _M.reset(self, name)
    check_region(self, name, "region")
    local b = self._breakers[name]
    b.failures, b.probing = {}, false
    set_state(self, name, b, "closed")
end

-- status() -> { mode, local_region, foreign_security_write, regions = { [name] = { state,
-- failures } }, homes = { [tenant] = region } (set_home's), frozen = { tenant, ... } (sorted) }
function _M.status(self)
    local s = { mode = self.mode, local_region = self.local_region, foreign_security_write = self._foreign,
        regions = {}, homes = {}, frozen = {} }
    for _, name in ipairs(self.regions) do
        local state, n = self:breaker(name)
        s.regions[name] = { state = state, failures = n }
    end
    for t, r in pairs(self._homes) do s.homes[t] = r end
    for t in pairs(self._frozen) do s.frozen[#s.frozen + 1] = t end
    table.sort(s.frozen)
    return s
end

-- check_table() -> the local Region's table description. Raises MRSCUnsupported (501) for an MRSC
-- table (MultiRegionConsistency = STRONG), and for mode = "mrsc" a ValidationError when the table
-- is not one.
function _M.check_table(self)
    local name = self._table
    local desc = self.clients[self.local_region]:call("DescribeTable", { TableName = name }).Table or {}
    local mrc = desc.MultiRegionConsistency
    if mrc == "STRONG" then
        fail(501, "MRSCUnsupported", "table " .. name .. " is an MRSC global table (MultiRegionConsistency STRONG): "
            .. "MRSC has no TransactWriteItems and no TTL, and this library's uniqueness guards (users, "
            .. "client ids, domains, ...) are transactions and its codes, sessions and tokens expire by TTL; "
            .. "there is no guard path without transactions yet, so it refuses rather than run unguarded. "
            .. "Use an MREC global table with home Regions (mode = \"mrec\")",
            { table = name, region = self.local_region })
    end
    if self.mode == "mrsc" then
        errors.validation("mode = \"mrsc\" but table %s is not an MRSC global table (MultiRegionConsistency %s)",
            name, tostring(mrc or "absent"))
    end
    return desc
end

-- construction -----------------------------------------------------------------------------------------

local function set_of_tenants(v, what)
    local s = {}
    if v == nil then return s end
    if type(v) ~= "table" then errors.validation("%s must be a table of tenant ids", what) end
    for k, x in pairs(v) do
        if type(k) == "number" and type(x) == "string" then
            s[x] = true
        elseif type(k) == "string" and x == true then
            s[k] = true
        elseif not (type(k) == "string" and x == false) then
            errors.validation("%s must be { tenant_id, ... } or { [tenant_id] = true }", what)
        end
    end
    return s
end

local function positive(v, name)
    if v ~= nil and not (type(v) == "number" and v > 0 and v < math.huge) then
        errors.validation("breaker.%s must be a positive number, got %s", name, tostring(v))
    end
    return v
end

-- The live sum of the Regions' stats plus the router's own (the batch helpers count their retries
-- by adding to router.stats.retries, which lands in `own`).
local function stats_view(self)
    local own = { requests = 0, retries = 0, read_capacity = 0, write_capacity = 0 }
    local function sum(k)
        local n = own[k] or 0
        for _, name in ipairs(self.regions) do
            local st = self.clients[name].stats
            n = n + (type(st) == "table" and tonumber(st[k]) or 0)
        end
        return n
    end
    return setmetatable({}, {
        __index = function(_, k) if own[k] ~= nil then return sum(k) end end,
        __newindex = function(_, k, v)
            if own[k] == nil then error("router stats has no field " .. tostring(k), 2) end
            own[k] = own[k] + (v - sum(k))
        end,
    })
end

-- new(config) -> router (see the header). Bad configuration: ValidationError; mode = "mrsc":
-- MRSCUnsupported or ValidationError (check_table).
function _M.new(config)
    if type(config) ~= "table" then error("bad argument #1 to 'new' (table expected)", 2) end
    local mode = config.mode or "mrec"
    if not MODES[mode] then errors.validation("mode must be \"mrec\" or \"mrsc\", got %s", tostring(mode)) end
    local foreign = config.foreign_security_write or "refuse"
    if not FOREIGN[foreign] then
        errors.validation("foreign_security_write must be \"refuse\", \"forward\" or \"warn\", got %s", tostring(foreign))
    end
    if type(config.regions) ~= "table" or next(config.regions) == nil then
        errors.validation("regions must be a table { [name] = client options or client }")
    end
    local self = setmetatable({ mode = mode, local_region = config.local_region, clients = {}, regions = {},
        _foreign = foreign, _homes = {}, _breakers = {}, _log = config.log,
        _now = config.now or core.now, _sleep = config.sleep or core.sleep, _random = config.random or math.random,
        _table = schema.table_name(config.tableName or config.table_name) }, mt)
    if config.log ~= nil and type(config.log) ~= "function" then errors.validation("log must be a function") end
    for name, c in pairs(config.regions) do
        if type(name) ~= "string" or not name:match("^[a-z0-9-]+$") then
            errors.validation("region names are AWS Region names, got %s", tostring(name))
        end
        if type(c) ~= "table" then errors.validation("regions[%q] must be client options or a client", name) end
        if type(c.call) ~= "function" then
            local o = {}
            for k, v in pairs(c) do o[k] = v end
            o.region = o.region or name
            c = client_mod.new(o)
        end
        self.clients[name] = c
        self.regions[#self.regions + 1] = name
        self._breakers[name] = { state = "closed", failures = {}, opened_at = 0, probing = false }
    end
    table.sort(self.regions)
    self.region = check_region(self, config.local_region, "local_region")
    local home = config.home
    if type(home) == "string" then home = { default = home } end
    if type(home) == "table" then
        check_region(self, home.default, "home.default")
        local tenants = {}
        if home.tenants ~= nil and type(home.tenants) ~= "table" then errors.validation("home.tenants must be a table") end
        for t, r in pairs(home.tenants or {}) do
            if type(t) ~= "string" then errors.validation("home.tenants keys are tenant ids") end
            tenants[t] = check_region(self, r, "home.tenants[" .. t .. "]")
        end
        home = { default = home.default, tenants = tenants }
    elseif type(home) ~= "function" then
        errors.validation("home must be { default = region, tenants = { ... } }, a region or function(tenant_id)")
    end
    self._home = home
    self._frozen = set_of_tenants(config.frozen, "frozen")
    local b = config.breaker or {}
    if type(b) ~= "table" then errors.validation("breaker must be a table") end
    self._threshold = positive(b.threshold, "threshold") or BREAKER_DEFAULTS.threshold
    self._window = (positive(b.window_ms, "window_ms") or BREAKER_DEFAULTS.window_ms) / 1000
    self._cooldown = (positive(b.cooldown_ms, "cooldown_ms") or BREAKER_DEFAULTS.cooldown_ms) / 1000
    local local_types = {}
    local locals = config.local_entities
    if locals == nil then locals = DEFAULT_LOCAL_ENTITIES end
    if type(locals) ~= "table" then errors.validation("local_entities must be a list of entity names") end
    for _, n in ipairs(locals) do
        local E = schema._by_name[n]
        if not E then errors.validation("local_entities: unknown entity %s", tostring(n)) end
        if SEC_TYPES[E.entity_type] then errors.validation("local_entities: %s is a security entity", n) end
        local_types[E.entity_type] = true
    end
    self._local_types = local_types
    self.stats = stats_view(self)
    if mode == "mrsc" or config.check_table then self:check_table() end
    return self
end

return _M
