-- The table: names, key attributes and indexes of AuthHero's single-table design, the entity
-- registry compiled (key builders, prefixes, cascade edges; the data itself is registry.lua), and
-- create_table, which makes exactly that table (or accepts a compatible existing one).
local errors = require "authhero.aws.errors"
local core = require "authhero.aws.core"
local util = require "authhero.aws.util"

local _M = {}

_M.DEFAULT_TABLE_NAME = "authhero"
_M.TTL_ATTRIBUTE = "ttl"
-- index name -> { partition key attribute, sort key attribute }
_M.INDEXES = {
    GSI1 = { "GSI1PK", "GSI1SK" }, -- user by email
    GSI2 = { "GSI2PK", "GSI2SK" }, -- tenant by custom domain
}

-- The entity registry (registry.lua), compiled: key builders, sort-key prefixes, entries by name
-- and by entityType, cascade edges, index and TTL attributes of a record. Checked once at load; a
-- mistake in the registry is a programming error raised here.
local registry = require "authhero.aws.registry"
local null = core.null

local MODS = {
    -- Unicode lower-casing with JavaScript's toLowerCase result (contract §2.4); 400 on bad UTF-8
    lower = function(v, field) return core.lower(v, field) end,
    pad5 = function(v)
        if type(v) ~= "number" or v ~= math.floor(v) or v < 0 or v > 99999 then
            errors.validation("order must be an integer from 0 to 99999")
        end
        return string.format("%05d", v)
    end,
    day = function(v) return v:sub(1, 10) end,
}

local function fields_of(parts, out, seen)
    out, seen = out or {}, seen or {}
    for _, p in ipairs(parts) do
        if p.field and not seen[p.field] then
            seen[p.field] = true
            out[#out + 1] = p.field
        elseif p.group then
            fields_of(p.group, out, seen)
        end
    end
    return out, seen
end

-- "A#{x:lower}[#B#{y}]" -> parts: { lit = "A" }, { field = "x", mod = "lower" }, { group = {...} }
local function parse_template(s, where)
    local root = {}
    local stack, cur = { root }, ""
    local function flush()
        if cur == "" then return end
        local parts = stack[#stack]
        local f, mod, maybe = cur:match("^{([%w_]+):?(%w*)(%??)}$")
        if f then
            if mod ~= "" and not MODS[mod] then error(where .. ": unknown modifier " .. mod, 0) end
            parts[#parts + 1] = { field = f, mod = mod ~= "" and mod or nil, empty_ok = maybe == "?" }
        elseif cur:find("[{}%[%]]") then
            error(where .. ": bad template segment " .. cur, 0)
        else
            parts[#parts + 1] = { lit = cur }
        end
        cur = ""
    end
    local i, n = 1, #s
    while i <= n do
        local c = s:sub(i, i)
        if c == "#" then
            flush()
        elseif c == "[" then
            flush()
            if s:sub(i + 1, i + 1) ~= "#" then error(where .. ": an optional group starts with '#'", 0) end
            local g = {}
            local parts = stack[#stack]
            parts[#parts + 1] = { group = g }
            stack[#stack + 1] = g
            i = i + 1
        elseif c == "]" then
            flush()
            if #stack == 1 then error(where .. ": unbalanced ']'", 0) end
            local parent = stack[#stack - 1]
            parent[#parent].fields = fields_of(stack[#stack]) -- the group's fields, for render
            stack[#stack] = nil
        else
            cur = cur .. c
        end
        i = i + 1
    end
    flush()
    if #stack ~= 1 then error(where .. ": unbalanced '['", 0) end
    return root
end

-- Values of the parts (appended to out), or nil when a field has no usable value: nil, null, or ""
-- unless the placeholder allows it (strict: "" is always allowed, and a missing value raises).
local function render(parts, get, strict, out)
    for _, p in ipairs(parts) do
        if p.lit then
            out[#out + 1] = p.lit
        elseif p.field then
            local v = get(p.field)
            if v == nil or v == null then
                if strict then error("key field " .. p.field .. " is missing", 4) end
                return nil
            end
            if v == "" and not (p.empty_ok or strict) then return nil end
            if p.mod then v = MODS[p.mod](v, p.field) end
            out[#out + 1] = v
        else
            local sub = render(p.group, get, false, {})
            local full = sub ~= nil
            for _, f in ipairs(p.fields) do
                if get(f) == "" then full = false end
            end
            if full then
                for _, v in ipairs(sub) do out[#out + 1] = v end
            end
        end
    end
    return out
end

local function build(parts, get, strict)
    local vals = render(parts, get, strict, {})
    if vals == nil then return nil end
    for i, v in ipairs(vals) do vals[i] = core.key_escape(v) end
    return table.concat(vals, "#")
end

-- The literal start of a sort key: "USER#{user_id}" -> "USER#", "TENANT" -> "TENANT".
local function static_prefix(parts)
    local lits = {}
    for _, p in ipairs(parts) do
        if not p.lit then return table.concat(lits, "#") .. "#" end
        lits[#lits + 1] = p.lit
    end
    return table.concat(lits, "#")
end

-- A compiled template: t.pk / t.sk parts, t.fields (placeholder order: pk first, then sk).
local function compile_template(def, where)
    local t = { name = def.name, index = def.index, text_pk = def.pk, text_sk = def.sk }
    t.pk = parse_template(def.pk, where .. " pk")
    t.sk = def.sk and parse_template(def.sk, where .. " sk") or nil
    local fields, seen = fields_of(t.pk)
    if t.sk then fields_of(t.sk, fields, seen) end
    t.fields = fields
    t.pk_fields = fields_of(t.pk)
    t.prefix = t.sk and static_prefix(t.sk) or nil
    local pk_attr, sk_attr = "PK", "SK"
    if def.index then pk_attr, sk_attr = def.index .. "PK", def.index .. "SK" end
    t.pk_attr, t.sk_attr = pk_attr, sk_attr
    return t
end

-- Key attributes of template t from a getter; nil when sparse and a field has no value.
local function key_values(t, get, strict)
    local pk = build(t.pk, get, strict)
    if pk == nil then return nil end
    if not t.sk then return pk end
    local sk = build(t.sk, get, strict)
    if sk == nil then return nil end
    return { [t.pk_attr] = pk, [t.sk_attr] = sk }
end
-- key_attrs(t, record) -> the key attributes of template t for a record, or nil when a field has
-- no value (the sparse rule: an index key is written only when all of its fields have one).
function _M.key_attrs(t, record)
    return key_values(t, function(f) return record[f] end, false)
end

-- fields_of_key(t, key) -> the placeholder values a key of template t was built from (unescaped;
-- modifiers are not undone), or nil when the key does not have the template's shape. The inverse of
-- the builders, for naming items in messages and checking keys.
-- parts_match(parts, got[, out]) -> do a key's split parts (core.key_parts) have the shape of a
-- template's parts (as many, literals equal)? Fills out[field] with the values when given.
local function parts_match(parts, got, out)
    if #got ~= #parts then return false end
    for i, p in ipairs(parts) do
        if p.group then return false end -- optional groups: not reversible by position
        if p.lit then
            if got[i] ~= p.lit then return false end
        elseif out then
            out[p.field] = got[i]
        end
    end
    return true
end
_M.parts_match = parts_match

local function match_parts(parts, key, out)
    if #parts == 0 and key == nil then return true end
    if type(key) ~= "string" then return false end
    return parts_match(parts, core.key_parts(key), out)
end

function _M.fields_of_key(t, key)
    local out = {}
    if not match_parts(t.pk, key[t.pk_attr], out) then return nil end
    if t.sk and not match_parts(t.sk, key[t.sk_attr], out) then return nil end
    return out
end

-- partition_of(t, get[, strict]) -> the partition key value of template t, fields from get(field),
-- or nil when a field has no value (nil, null, or ""). strict: as the keys.<name> builders, "" is a
-- value and a missing one is a programming error (raises).
function _M.partition_of(t, get, strict)
    return build(t.pk, get, strict or false)
end

-- keys.<name>(v1, v2, ...) in placeholder order, or keys.<name>{ field = v, ... }; a missing value
-- is a programming error, "" is allowed (e.g. to name a partition).
local function builder(t)
    local pos = {} -- placeholder -> argument position, once per template
    for i, f in ipairs(t.fields) do pos[f] = i end
    return function(first, ...)
        local get
        if type(first) == "table" then
            get = function(f) return first[f] end
        else
            local args = { first, ... }
            get = function(f) return args[pos[f]] end
        end
        return key_values(t, get, true)
    end
end

local function set_of(list)
    local s = {}
    for _, v in ipairs(list or {}) do s[v] = true end
    return s
end

local RESERVED = set_of({ "PK", "SK", "GSI1PK", "GSI1SK", "GSI2PK", "GSI2SK", "entityType", "ttl" })

-- Sort-key prefixes that a prefix query could confuse: in one key space and partition template, a
-- prefix ending in '#' that starts another kind's prefix (`ROLE#` would also read `ROLE#X#...`).
local function lint_prefixes(templates)
    local groups = {}
    for _, t in pairs(templates) do
        if t.prefix then
            local g = (t.index or "") .. "\0" .. t.text_pk
            groups[g] = groups[g] or {}
            table.insert(groups[g], t)
        end
    end
    for _, list in pairs(groups) do
        for _, a in ipairs(list) do
            for _, b in ipairs(list) do
                if a ~= b and a.entity_type ~= b.entity_type and a.prefix:sub(-1) == "#"
                    and b.prefix:sub(1, #a.prefix) == a.prefix then
                    error("registry: sort-key prefix " .. a.prefix .. " (" .. a.name .. ") also matches "
                        .. b.prefix .. " (" .. b.name .. ") under " .. a.text_pk, 0)
                end
            end
        end
    end
end

-- compile(reg) -> the compiled view of a registry (reg: { partitions, entities }, as registry.lua):
-- { keys, prefix, templates, entities, by_name, by_type }. A mistake raises, naming the entry.
function _M.compile(reg)
    local V = { keys = {}, prefix = {}, templates = {}, entities = {}, by_name = {}, by_type = {} }
    local by_name, by_type = V.by_name, V.by_type

    local function add_template(def, where, entity_type)
        if V.keys[def.name] then error(where .. ": template name " .. def.name .. " used twice", 0) end
        local t = compile_template(def, where)
        for k, v in pairs(def) do
            if t[k] == nil then t[k] = v end -- use, owner, describe, ...: kept for the tools
        end
        t.entity_type = t.entity_type or entity_type
        V.templates[def.name] = t
        V.keys[def.name] = builder(t)
        if t.prefix then V.prefix[def.name] = t.prefix end
        return t
    end

    for name, pk in pairs(reg.partitions or {}) do add_template({ name = name, pk = pk }, "partition " .. name) end

    for _, def in ipairs(reg.entities) do
        local where = "registry: " .. tostring(def.name)
        if by_name[def.name] then error(where .. ": entity listed twice", 0) end
        if by_type[def.entity_type] then error(where .. ": entityType " .. tostring(def.entity_type) .. " used twice", 0) end
        local E = {}
        for k, v in pairs(def) do E[k] = v end
        E.tenant_field = def.tenant_field or (def.name == "tenants" and "id" or "tenant_id")
        E.item = add_template(def.key, where .. " key", def.entity_type)
        if def.scope == "tenant" and def.key.pk:sub(1, #"TENANT#{tenant_id}") ~= "TENANT#{tenant_id}" then
            error(where .. ": a tenant-scoped key starts with TENANT#{tenant_id}", 0)
        end
        E.indexes = {}
        for _, ix in ipairs(def.indexes or {}) do
            E.indexes[#E.indexes + 1] = add_template(ix, where .. " " .. ix.name, def.entity_type)
        end
        E.helpers = {}
        for _, h in ipairs(def.helpers or {}) do
            local t = add_template(h, where .. " " .. h.name)
            E.helpers[#E.helpers + 1] = t
            if by_type[h.entity_type] and by_type[h.entity_type].entity ~= E then
                error(where .. ": entityType " .. h.entity_type .. " used twice", 0)
            end
            by_type[h.entity_type] = by_type[h.entity_type] or { entity = E, helper = t }
        end
        for f in pairs(def.json or {}) do
            if RESERVED[f] then error(where .. ": " .. f .. " is a reserved attribute", 0) end
        end
        local keyed = { E.item }
        for _, t in ipairs(E.indexes) do keyed[#keyed + 1] = t end
        for _, t in ipairs(E.helpers) do keyed[#keyed + 1] = t end
        for _, t in ipairs(keyed) do
            for _, f in ipairs(t.fields) do
                if def.json and def.json[f] then error(where .. ": key field " .. f .. " is stored as JSON", 0) end
            end
        end
        if def.sortable == "q" then
            E.sortable = {}
            for f in pairs(def.q.fields) do E.sortable[f] = true end
        else
            E.sortable = set_of(def.sortable)
        end
        E.children = {}
        E.prefix = E.item.prefix
        by_name[def.name] = E
        by_type[def.entity_type] = { entity = E }
        V.entities[#V.entities + 1] = E
    end

    -- cascade edges: parent -> { child, template (whose pk the parent's fields fill), map }
    for _, C in ipairs(V.entities) do
        for _, p in ipairs(C.parents or {}) do
            local P = by_name[p[1]]
            if not P then error("registry: " .. C.name .. ": unknown parent " .. tostring(p[1]), 0) end
            local via, t = p.via or "item", nil
            if via == "item" then
                t = C.item
            else
                for _, ix in ipairs(C.indexes) do
                    if ix.index == via then t = ix end
                end
            end
            if not t then error("registry: " .. C.name .. ": no " .. via .. " key to find it from " .. P.name, 0) end
            P.children[#P.children + 1] = { child = C, template = t, map = p.map or {}, via = via }
        end
    end
    lint_prefixes(V.templates)
    return V
end

do
    local V = _M.compile(registry)
    _M.keys, _M.prefix, _M.templates, _M.entities, _M.by_type = V.keys, V.prefix, V.templates, V.entities, V.by_type
    _M._by_name = V.by_name
end

-- entity(name) -> the compiled entry of an AuthHero adapter name
function _M.entity(name)
    local E = _M._by_name[name]
    if not E then error("unknown entity " .. tostring(name), 2) end
    return E
end

-- index_attrs(E, record) -> set (index key attributes for every index whose fields all have a
-- value), absent (names of the index attributes of the others, for REMOVE on update)
function _M.index_attrs(E, record)
    local set, absent = {}, {}
    for _, t in ipairs(E.indexes) do
        local a = _M.key_attrs(t, record)
        if a then
            for k, v in pairs(a) do set[k] = v end
        else
            absent[#absent + 1] = t.pk_attr
            absent[#absent + 1] = t.sk_attr
        end
    end
    return set, absent
end

-- DynamoDB's key limits (contract §2.4): bytes of a partition-key and of a sort-key value.
_M.KEY_LIMITS = { PK = 2048, SK = 1024, GSI1PK = 2048, GSI1SK = 1024, GSI2PK = 2048, GSI2SK = 1024 }
local KEY_ATTRS = { "PK", "SK", "GSI1PK", "GSI1SK", "GSI2PK", "GSI2SK" }

-- oversized(key) -> the first key attribute longer than DynamoDB allows, its size and its limit;
-- nil when every key attribute fits.
function _M.oversized(key)
    for _, a in ipairs(KEY_ATTRS) do
        local v = key[a]
        if type(v) == "string" and #v > _M.KEY_LIMITS[a] then return a, #v, _M.KEY_LIMITS[a] end
    end
    return nil
end

-- ttl(E, record, retention_days) -> epoch seconds, or nil when the entity has none or no source
-- field has a value. A source value that is not a timestamp gives nil (callers validate first).
function _M.ttl(E, record, retention_days)
    local def = E.ttl
    if not def then return nil end
    for _, f in ipairs(def.from) do
        local v = record[f]
        if v ~= nil and v ~= null then
            local ms = util.parse_iso(v)
            if ms then
                local s = math.floor(ms / 1000)
                if def.retention then s = s + (retention_days or 30) * 86400 end
                return s
            end
        end
    end
    return nil
end

-- table_name([name]) -> name, else DYNAMODB_TABLE_NAME, else "authhero".
function _M.table_name(name)
    if name ~= nil and type(name) ~= "string" then errors.validation("tableName must be a string") end
    local env = os.getenv("DYNAMODB_TABLE_NAME")
    return name or (env ~= "" and env) or _M.DEFAULT_TABLE_NAME
end

local function key_schema(pk, sk)
    return { { AttributeName = pk, KeyType = "HASH" }, { AttributeName = sk, KeyType = "RANGE" } }
end

-- The CreateTable request for the documented table; streams: with a NEW_AND_OLD_IMAGES stream.
function _M.definition(table_name, billing_mode, rcu, wcu, streams)
    local provisioned = billing_mode == "PROVISIONED"
    local throughput = provisioned and { ReadCapacityUnits = rcu or 5, WriteCapacityUnits = wcu or 5 } or nil
    local attrs = { { AttributeName = "PK", AttributeType = "S" }, { AttributeName = "SK", AttributeType = "S" } }
    local gsis = {}
    for _, name in ipairs({ "GSI1", "GSI2" }) do
        local pk, sk = _M.INDEXES[name][1], _M.INDEXES[name][2]
        attrs[#attrs + 1] = { AttributeName = pk, AttributeType = "S" }
        attrs[#attrs + 1] = { AttributeName = sk, AttributeType = "S" }
        gsis[#gsis + 1] = {
            IndexName = name,
            KeySchema = key_schema(pk, sk),
            Projection = { ProjectionType = "ALL" },
            ProvisionedThroughput = throughput,
        }
    end
    return {
        TableName = table_name,
        AttributeDefinitions = attrs,
        KeySchema = key_schema("PK", "SK"),
        GlobalSecondaryIndexes = gsis,
        BillingMode = provisioned and "PROVISIONED" or "PAY_PER_REQUEST",
        ProvisionedThroughput = throughput,
        StreamSpecification = streams and { StreamEnabled = true, StreamViewType = "NEW_AND_OLD_IMAGES" } or nil,
    }
end

local function same_keys(ks, pk, sk)
    if type(ks) ~= "table" or #ks ~= 2 then return false end
    local h, r
    for _, k in ipairs(ks) do
        if k.KeyType == "HASH" then h = k.AttributeName elseif k.KeyType == "RANGE" then r = k.AttributeName end
    end
    return h == pk and r == sk
end

-- Problems that make an existing table unusable, as a list of strings (empty when compatible);
-- want.streams: a NEW_AND_OLD_IMAGES stream is required too.
function _M.incompatibilities(desc, want)
    local problems = {}
    if want and want.streams then
        local ss = desc.StreamSpecification
        if not (ss and ss.StreamEnabled) then
            problems[#problems + 1] = "no stream (StreamSpecification NEW_AND_OLD_IMAGES is missing; add it with"
                .. " UpdateTable)"
        elseif ss.StreamViewType ~= "NEW_AND_OLD_IMAGES" then
            problems[#problems + 1] = "the stream's view type is " .. tostring(ss.StreamViewType)
                .. ", not NEW_AND_OLD_IMAGES"
        end
    end
    if not same_keys(desc.KeySchema, "PK", "SK") then
        problems[#problems + 1] = "key schema is not PK (HASH) / SK (RANGE)"
    end
    local types = {}
    for _, a in ipairs(desc.AttributeDefinitions or {}) do types[a.AttributeName] = a.AttributeType end
    for _, name in ipairs({ "GSI1", "GSI2" }) do
        local found
        for _, g in ipairs(desc.GlobalSecondaryIndexes or {}) do
            if g.IndexName == name then found = g end
        end
        local pk, sk = _M.INDEXES[name][1], _M.INDEXES[name][2]
        if not found then
            problems[#problems + 1] = "index " .. name .. " is missing"
        else
            if not same_keys(found.KeySchema, pk, sk) then
                problems[#problems + 1] = "index " .. name .. " is not keyed on " .. pk .. "/" .. sk
            end
            if not (found.Projection and found.Projection.ProjectionType == "ALL") then
                problems[#problems + 1] = "index " .. name .. " does not project ALL attributes"
            end
        end
    end
    for _, a in ipairs({ "PK", "SK", "GSI1PK", "GSI1SK", "GSI2PK", "GSI2SK" }) do
        if types[a] and types[a] ~= "S" then problems[#problems + 1] = "attribute " .. a .. " is not a string (S)" end
    end
    return problems
end

local function wait_active(client, table_name, timeout, sleep, now)
    local deadline = now() + timeout
    while true do
        local t = client:call("DescribeTable", { TableName = table_name }).Table
        local ready = t.TableStatus == "ACTIVE"
        for _, g in ipairs(t.GlobalSecondaryIndexes or {}) do
            if g.IndexStatus and g.IndexStatus ~= "ACTIVE" then ready = false end
        end
        if ready then return t end
        if now() > deadline then
            errors.raise(0, "TimeoutError", "table " .. table_name .. " did not become ACTIVE in " .. timeout .. " s")
        end
        sleep(0.5)
    end
end

-- Adds a replica per Region of `regions` the table lacks (a version 2019.11.21 global table), one
-- UpdateTable at a time, waiting for the table and the new replica to be ACTIVE after each (AWS
-- takes one replica change at a time). -> the last description.
local function add_replicas(client, name, desc, regions, timeout, sleep, now, log)
    for _, region in ipairs(regions) do
        local have = region == client.region
        for _, r in ipairs(desc.Replicas or {}) do
            if r.RegionName == region then have = true end
        end
        if not have then
            if log then log("adding a replica of " .. name .. " in " .. region .. " (this takes minutes)") end
            client:call("UpdateTable", { TableName = name, ReplicaUpdates = { { Create = { RegionName = region } } } })
            local deadline = now() + timeout
            while true do
                sleep(5)
                desc = client:call("DescribeTable", { TableName = name }).Table
                local status
                for _, r in ipairs(desc.Replicas or {}) do
                    if r.RegionName == region then status = r.ReplicaStatus end
                end
                if desc.TableStatus == "ACTIVE" and status == "ACTIVE" then break end
                if status == "CREATION_FAILED" or status == "INACCESSIBLE_ENCRYPTION_CREDENTIALS" then
                    errors.raise(0, "ReplicaError", "replica of " .. name .. " in " .. region .. ": " .. status)
                end
                if now() > deadline then
                    errors.raise(0, "TimeoutError", "replica of " .. name .. " in " .. region
                        .. " did not become ACTIVE in " .. timeout .. " s")
                end
            end
        end
    end
    return desc
end

-- create_table(client, { tableName, billing_mode, read_capacity, write_capacity, timeout, streams,
-- replicas }) -> the table description. Creates the documented table, waits until it and its
-- indexes are ACTIVE and enables TTL on `ttl`. An existing compatible table is fine; an
-- incompatible one raises a ValidationError listing why. streams = true: with a NEW_AND_OLD_IMAGES
-- stream (an existing table without one is incompatible). replicas = { "eu-west-1", ... }: a
-- global table (version 2019.11.21; implies streams): each Region not yet a replica is added,
-- one at a time (real AWS only: DynamoDB Local has no replicas); opts.log(message), when given,
-- hears of each replica as it starts.
function _M.create_table(client, opts)
    opts = opts or {}
    local replicas = opts.replicas
    if replicas ~= nil then
        if type(replicas) ~= "table" then errors.validation("replicas must be a list of Region names") end
        for _, r in ipairs(replicas) do
            if type(r) ~= "string" or not r:match("^[a-z][a-z0-9-]*%d$") then
                errors.validation("replicas: invalid Region name %s", tostring(r))
            end
        end
    end
    local streams = opts.streams == true or replicas ~= nil
    local name = _M.table_name(opts.tableName or opts.table_name)
    local billing = opts.billing_mode or "PAY_PER_REQUEST"
    if billing ~= "PAY_PER_REQUEST" and billing ~= "PROVISIONED" then
        errors.validation("billing_mode must be PAY_PER_REQUEST or PROVISIONED, got %s", tostring(billing))
    end
    local sleep, now = opts.sleep or core.sleep, opts.now or core.now
    local ok, err = pcall(client.call, client, "CreateTable",
        _M.definition(name, billing, opts.read_capacity, opts.write_capacity, streams))
    if not ok and not errors.is(err, "ResourceInUseException") then error(err, 0) end
    local desc = wait_active(client, name, opts.timeout or 120, sleep, now)
    local problems = _M.incompatibilities(desc, { streams = streams })
    if #problems > 0 then
        errors.raise(400, "ValidationError",
            "table " .. name .. " exists but is not compatible: " .. table.concat(problems, "; "))
    end
    local ttl = client:call("DescribeTimeToLive", { TableName = name }).TimeToLiveDescription or {}
    local status = ttl.TimeToLiveStatus
    if status == "ENABLED" or status == "ENABLING" then
        if ttl.AttributeName ~= _M.TTL_ATTRIBUTE then
            errors.raise(400, "ValidationError", "table " .. name .. " has TTL on " .. tostring(ttl.AttributeName)
                .. ", not on " .. _M.TTL_ATTRIBUTE)
        end
    else
        client:call("UpdateTimeToLive", {
            TableName = name,
            TimeToLiveSpecification = { Enabled = true, AttributeName = _M.TTL_ATTRIBUTE },
        })
    end
    if replicas and #replicas > 0 then
        desc = add_replicas(client, name, desc, replicas, opts.replica_timeout or 1800, sleep, now,
            opts.log)
    end
    return desc
end

return _M
