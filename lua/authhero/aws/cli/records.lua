-- The import line format and how one line becomes table items. A line is a JSON object
--   {"entity": "users", "tenant_id": "acme", "record": { ...AuthHero record... }}
-- Items come from the adapters' own create/assign, run against a client that captures the writes
-- instead of sending them, so an imported record is stored exactly as create stores it (keys,
-- guards, pointers, index attributes, defaults); ids and timestamps come from the record. Also
-- here: the within-file uniqueness ledger and the ownership rules of guard/pointer items.
-- Nothing here talks to DynamoDB.
local aws = require "authhero.aws"
local cli_args = require "authhero.aws.cli.args"
local core = require "authhero.aws.core"
local errors = require "authhero.aws.errors"
local util = require "authhero.aws.util"

local schema = require "authhero.aws.schema"

local unpack = table.unpack or _G.unpack -- luacheck: ignore 143 (5.1 and LuaJIT have only unpack)

local _M = {}

-- AuthHero adapter names the CLI imports and exports, in the registry's order (the order export
-- writes and a sensible import order); each entry's `cli` field says how.
_M.ENTITIES = {}
local KNOWN, BY_NAME = {}, {}
for _, E in ipairs(schema.entities) do
    if E.module and E.cli then
        _M.ENTITIES[#_M.ENTITIES + 1] = E.name
        KNOWN[E.name], BY_NAME[E.name] = E.name, E
        KNOWN[E.module] = E.name -- snake_case spellings (SQL table names) are accepted too
    end
end

-- Guard / pointer items: another record may not take them over. entityType -> the attributes that
-- say whom the item belongs to (an existing item with other values there is a conflict), and
-- entityType -> how to name its owner.
_M.OWNERS, _M.WHOSE = {}, {}
for _, E in ipairs(schema.entities) do
    for _, h in ipairs(E.helpers) do
        if h.owner then _M.OWNERS[h.entity_type], _M.WHOSE[h.entity_type] = h.owner, h.whose end
    end
    if E.owner then _M.OWNERS[E.entity_type], _M.WHOSE[E.entity_type] = E.owner, E.whose end
end

local null = core.null

local present = util.present

local function is_object(v)
    return type(v) == "table" and v ~= null and not core.is_array(v)
end

-- The JSON type of a decoded value, for "expected X, got Y" messages.
local function json_type(v)
    if v == nil then return "nothing" end
    if v == null then return "null" end
    if type(v) == "table" then return core.is_array(v) and "array" or "object" end
    if type(v) == "number" then return "number (" .. tostring(v) .. ")" end
    if type(v) == "boolean" then return "boolean (" .. tostring(v) .. ")" end
    if type(v) == "string" and #v <= 40 then return string.format("string %q", v) end
    return type(v)
end
_M.json_type = json_type

-- parse(text) -> { entity, tenant_id, record } or { skip = reason }
function _M.parse(text)
    if text:byte(-1) == 13 then text = text:sub(1, -2) end -- CRLF files
    local ok, v = pcall(core.json_decode, text)
    if not ok then
        if cli_args.is_interrupt(v) then error(v, 0) end -- Ctrl-C during the decode: not a bad line
        local msg = errors.is(v) and v.message or tostring(v)
        return { skip = "bad JSON: " .. tostring(msg):gsub("^malformed JSON: ", "") }
    end
    if not is_object(v) then return { skip = "not a JSON object" } end
    local entity = v.entity
    if entity == nil or entity == null or entity == "" then return { skip = "missing \"entity\"" } end
    if type(entity) ~= "string" then return { skip = "\"entity\" must be a string, got " .. json_type(entity) } end
    local name = KNOWN[entity]
    if not name then return { skip = string.format("unknown entity %q", entity) } end
    local record = v.record
    if record == nil or record == null then return { skip = name .. ": missing \"record\" (a JSON object)" } end
    if not is_object(record) then
        return { skip = name .. ": \"record\" must be a JSON object, got " .. json_type(record) }
    end
    local t = v.tenant_id
    if t == null then t = nil end
    if t ~= nil and type(t) ~= "string" then
        return { skip = name .. ": tenant_id must be a string, got " .. json_type(t) }
    end
    if t == "" then return { skip = name .. ": tenant_id must not be empty" } end
    local rt = record.tenant_id
    if name == "tenants" then
        if present(record.id) and t and record.id ~= t then
            return { skip = string.format("tenants: tenant_id %q differs from record.id %q", t, tostring(record.id)) }
        end
        t = t or (type(record.id) == "string" and record.id or nil)
    elseif present(rt) then
        if type(rt) ~= "string" then
            return { skip = name .. ": record.tenant_id must be a string, got " .. json_type(rt) }
        end
        if t and rt ~= t then
            return { skip = string.format("%s: tenant_id %q differs from record.tenant_id %q", name, t, tostring(rt)) }
        end
        t = t or rt
    end
    -- global entities (tenants, signing keys) may belong to no tenant
    if BY_NAME[name].scope ~= "global" and (type(t) ~= "string" or t == "") then
        return { skip = name .. ": missing required field: tenant_id" }
    end
    return { entity = name, tenant_id = t, record = record }
end

-- a 21-character id (nanoid alphabet) derived from text: the same input, the same id
local ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
local function derived_id(text)
    local hex = core.sha256_hex(text)
    local out = {}
    for i = 1, 21 do
        local b = tonumber(hex:sub(2 * i - 1, 2 * i), 16) % 64 + 1
        out[i] = ALPHABET:sub(b, b)
    end
    return table.concat(out)
end
_M.derived_id = derived_id

local function skip(fmt, ...)
    error({ skip = string.format(fmt, ...) }, 0)
end

-- A required string field: missing, of another JSON type and empty are three different messages.
local function need(v, entity, name)
    if v == nil or v == null then skip("%s: missing required field: %s", entity, name) end
    if type(v) ~= "string" then skip("%s: %s must be a string, got %s", entity, name, json_type(v)) end
    if v == "" then skip("%s: %s must not be empty", entity, name) end
    return v
end

-- "2024-01-01T00:00:00Z" -> epoch ms, or a skip when malformed
local function time_ms(v, entity, name)
    if not present(v) then return nil end
    if type(v) ~= "string" then skip("%s: %s must be an ISO-8601 timestamp string, got %s", entity, name, json_type(v)) end
    local ms = util.parse_iso(v)
    if not ms then skip("%s: %s must be an ISO-8601 timestamp, got %q", entity, name, v) end
    return ms
end

local function shallow(t)
    local c = {}
    for k, v in pairs(t) do c[k] = v end
    return c
end

-- The call an import spec (registry cli.import) makes: args name what goes where: "tenant",
-- "record", "[record]" (a list of the one record), "options" ({ importMetadata }), "@field" (that
-- field of the record). Default: create(tenant, record, options).
local DEFAULT_IMPORT = { method = "create", args = { "tenant", "record", "options" } }

-- builder({ table, now_ms }) -> builder with :items(entity, tenant_id, record) -> items, info
-- (raises { skip = reason } for a record create would refuse). now_ms stands in for "now" where a
-- record has no timestamp, so one run stamps all such records alike.
function _M.builder(opts)
    local sink = {}
    local cap = {}
    -- The item a blind UpdateItem from the adapters (an upsert: plain `SET #n = :v` assignments,
    -- possibly `#n = if_not_exists(#n, :v)`, and REMOVE) makes where there is none yet.
    local function updated_item(p)
        local item = {}
        for k, v in pairs(p.Key) do item[k] = v end
        local names, values = p.ExpressionAttributeNames or {}, p.ExpressionAttributeValues or {}
        local expr = p.UpdateExpression or ""
        local set = expr:match("^SET (.-) REMOVE ") or expr:match("^SET (.*)$") or ""
        -- split on the commas between assignments, not those inside if_not_exists( , )
        local parts, depth, start = {}, 0, 1
        for i = 1, #set do
            local c = set:sub(i, i)
            if c == "(" then depth = depth + 1 elseif c == ")" then depth = depth - 1
            elseif c == "," and depth == 0 then
                parts[#parts + 1] = set:sub(start, i - 1)
                start = i + 1
            end
        end
        parts[#parts + 1] = set:sub(start)
        for _, assignment in ipairs(parts) do
            if assignment:find("%S") then
                local n, v = assignment:match("^%s*(#[%w_]+)%s*=%s*(:[%w_]+)%s*$")
                if not n then
                    n, v = assignment:match("^%s*(#[%w_]+)%s*=%s*if_not_exists%(%s*#[%w_]+%s*,%s*(:[%w_]+)%s*%)%s*$")
                end
                if not n then error("import cannot replay the update " .. expr, 0) end
                item[names[n]] = values[v]
            end
        end
        return item
    end
    function cap.call(_, op, p)
        if op == "PutItem" then
            sink[#sink + 1] = p.Item
        elseif op == "UpdateItem" then
            -- a conditional update changes a record that exists (a login session a session
            -- extends, ...), never the one being imported: only blind upserts make items
            if p.ConditionExpression == nil then sink[#sink + 1] = updated_item(p) end
        elseif op == "TransactWriteItems" then
            -- Update/Delete/ConditionCheck touch other records (e.g. the primary a linked user
            -- points at); the importer handles those itself.
            for _, ti in ipairs(p.TransactItems) do
                if ti.Put then sink[#sink + 1] = ti.Put.Item end
            end
        elseif op == "Query" or op == "Scan" then
            return { Items = {} }
        end
        return {}
    end
    function cap.batch_write(_, _, reqs)
        for _, r in ipairs(reqs) do
            if r.PutRequest then sink[#sink + 1] = r.PutRequest.Item end
        end
        return {}
    end
    function cap.batch_get()
        return core.array({}), {}
    end

    local clock = opts.now_ms
    local seed, n = "", 0
    local function new_id()
        n = n + 1
        return derived_id(seed .. "\0" .. n)
    end
    local A = aws.create_adapters(cap, { tableName = opts.table or "authhero", now = function() return clock end,
        new_id = new_id })

    -- importMetadata from the record's timestamps (create validates and normalizes them)
    local function stamps(r)
        return { created_at = present(r.created_at) and r.created_at or nil,
            updated_at = present(r.updated_at) and r.updated_at or nil }
    end

    -- entities without importMetadata take "now" from the record's created_at
    local function now_from(r, entity)
        local ms = time_ms(r.created_at, entity, "created_at")
        if present(r.updated_at) then time_ms(r.updated_at, entity, "updated_at") end
        clock = ms or opts.now_ms
    end

    -- Entity-specific steps around the generic call: before(t, r, im) may return a changed record
    -- and importMetadata (derived ids, seeds for ids create makes up); after(t, r, items) fixes items.
    local QUIRKS = { users = {}, passwords = {}, userOrganizations = {}, rolePermissions = {}, clients = {} }

    local function import(E, t, r, items)
        local spec = E.cli.import or DEFAULT_IMPORT
        if E.cli.id then need(r[E.cli.id], E.name, E.cli.id) end
        local im = stamps(r)
        local q = QUIRKS[E.name]
        if q and q.before then r, im = q.before(t, r, im, E) end
        if spec.clock then now_from(r, E.name) end
        local args, nargs = {}, 0
        for i, a in ipairs(spec.args or DEFAULT_IMPORT.args) do
            nargs = i
            if a == "tenant" then args[i] = t
            elseif a == "record" then args[i] = r
            elseif a == "[record]" then args[i] = { r }
            elseif a == "options" then args[i] = { importMetadata = im }
            else
                local v = r[a:match("^@(.+)$")]
                if v ~= null then args[i] = v end
            end
        end
        local fn = A[E.name][spec.method or "create"]
        fn(unpack(args, 1, nargs))
        if spec.clock and present(r.updated_at) and items[1] then
            items[1].updated_at = util.normalize_time(r.updated_at) -- create stamps "now"; keep the record's
        end
        if q and q.after then q.after(t, r, items) end
    end

    function QUIRKS.users.before(t, r, im)
        seed = "users\0" .. t .. "\0" .. r.user_id -- the id of an embedded password
        return r, im
    end
    function QUIRKS.passwords.before(t, r, im)
        need(r.user_id, "passwords", "user_id")
        need(r.password, "passwords", "password")
        im.id = present(r.id) and r.id or derived_id("passwords\0" .. t .. "\0" .. r.user_id .. "\0" .. r.password)
        return r, im
    end
    function QUIRKS.userOrganizations.before(t, r, im)
        need(r.user_id, "userOrganizations", "user_id")
        need(r.organization_id, "userOrganizations", "organization_id")
        im.id = present(r.id) and r.id or derived_id("userOrganizations\0" .. t .. "\0" .. r.organization_id .. "\0"
            .. r.user_id)
        need(im.id, "userOrganizations", "id")
        return r, im
    end
    function QUIRKS.rolePermissions.before(_, r, im)
        need(r.role_id, "rolePermissions", "role_id")
        local p = shallow(r)
        -- reads default the name to the identifier: store it only when it says something else
        if p.resource_server_name == p.resource_server_identifier then p.resource_server_name = nil end
        p.created_at, p.updated_at = nil, nil
        return p, im
    end
    -- create makes up a secret when none is given; an import stores what the source had
    function QUIRKS.clients.after(_, r, items)
        if not present(r.client_secret) then
            for _, it in ipairs(items) do
                if it.entityType == "CLIENT" then it.client_secret = nil end
            end
        end
    end

    local self = {}

    -- items(entity, t, record) -> items (the entity's own item first), linked_to (users only)
    function self.items(_, entity, t, record)
        sink = {}
        seed, n = entity .. "\0" .. tostring(t), 0
        clock = opts.now_ms
        local ok, err = pcall(import, BY_NAME[entity], t, record, sink)
        if not ok then
            if (type(err) == "table" and err.skip) or cli_args.is_interrupt(err) then error(err, 0) end
            local msg = errors.is(err) and err.message or tostring(err)
            skip("%s: %s", entity, _M.explain(msg, record))
        end
        if #sink == 0 then skip("%s: nothing to write", entity) end
        local linked
        if entity == "users" and type(record.linked_to) == "string" and record.linked_to ~= "" then
            linked = record.linked_to
        end
        return sink, linked
    end

    return self
end

-- explain(message, record) -> message naming what the record holds when create refused a field:
-- the store says "name is required" also for a name that is there but a number, and "email must
-- be a string" without saying what it got.
function _M.explain(msg, record)
    local field = msg:match("^([%w_]+) is required$")
    if field and type(record) == "table" then
        local v = record[field]
        if v ~= nil and v ~= null and type(v) ~= "string" then
            return string.format("%s must be a string, got %s", field, json_type(v))
        end
        return msg
    end
    field = msg:match("^([%w_]+) must be an? [%w%- ]+$")
    if field and type(record) == "table" and record[field] ~= nil then
        return string.format("%s, got %s", msg, json_type(record[field]))
    end
    return msg
end

-- key of an item, as one string
function _M.key(item)
    return item.PK .. "\0" .. item.SK
end

-- entityTypes of items kept outside every tenant's partitions (client-id pointers, domain claims,
-- signing keys): they can collide with another tenant's, so they are always checked on import.
_M.GLOBAL = {}
for _, E in ipairs(schema.entities) do
    if E.name ~= "tenants" then
        local templates = { E.item }
        for _, h in ipairs(E.helpers) do templates[#templates + 1] = h end
        for _, t in ipairs(templates) do
            local tenant_keyed = false
            for _, f in ipairs(t.pk_fields) do
                if f == "tenant_id" then tenant_keyed = true end
            end
            if not tenant_keyed then _M.GLOBAL[t.entity_type or E.entity_type] = true end
        end
    end
end

-- fill(format, item, fields) -> the registry's describe/whose format with {field} replaced by the
-- quoted value of the item's attribute or of its key's placeholder ({field:raw}: unquoted).
local function fill(format, item, fields)
    return (format:gsub("{([%w_]+)(:?r?a?w?)}", function(f, raw)
        local v = item[f]
        if v == nil and fields then v = fields[f] end
        if raw == ":raw" then return tostring(v) end
        return string.format("%q", tostring(v))
    end))
end

-- The registry template an item was built from (its entity's key or one of its helpers'), and the
-- key's placeholder values.
local function template_of(it)
    local bt = schema.by_type[it.entityType]
    if not bt then return nil end
    local E = bt.entity
    local candidates = { E.item }
    for _, h in ipairs(E.helpers) do
        if h.entity_type == it.entityType then candidates[#candidates + 1] = h end
    end
    for _, t in ipairs(candidates) do
        local fields = schema.fields_of_key(t, it)
        if fields then return t, fields, E end
    end
    return nil, nil, E
end

-- A readable name for an item, for duplicate and conflict messages (the registry's describe).
function _M.describe(it)
    local t, fields, E = template_of(it)
    local format
    if t and t ~= E.item then format = t.describe elseif E then format = E.describe end
    if format then return fill(format, it, fields) end
    local parts = core.key_parts(it.SK)
    return string.format("%s %q", tostring(it.entityType):lower(), tostring(it.id or parts[#parts]))
end

-- Ledger of what a file has claimed so far: item keys, and the one current password per user.
-- ledger:claim(items, line) -> nil when the record is new, else the reason to skip it.
function _M.ledger()
    local seen, current = {}, {}
    local L = {}
    function L.claim(_, items, line)
        for _, it in ipairs(items) do
            local first = seen[_M.key(it)]
            if first then
                return string.format("duplicate %s (first seen at line %d)", _M.describe(it), first)
            end
            if it.entityType == "PASSWORD" and it.is_current == true then
                local c = current[it.PK]
                if c then
                    return string.format("a second current password for user %q (the first one is at line %d)",
                        tostring(it.user_id), c)
                end
            end
        end
        for _, it in ipairs(items) do
            seen[_M.key(it)] = line
            if it.entityType == "PASSWORD" and it.is_current == true then current[it.PK] = line end
        end
        return nil
    end
    function L.line_of(_, key)
        return seen[key]
    end
    return L
end

-- conflict(new_item, stored_item) -> reason, or nil when the stored guard/pointer is this record's
function _M.conflict(new, stored)
    local owners = _M.OWNERS[new.entityType]
    if not owners or stored == nil then return nil end
    for _, f in ipairs(owners) do
        if stored[f] ~= new[f] then
            return string.format("%s already belongs to %s in the table", _M.describe(new),
                fill(_M.WHOSE[new.entityType], stored))
        end
    end
    return nil
end

-- true when an item with a ttl is already expired at now_s (sessions, codes)
function _M.expired(items, now_s)
    local ttl = items[1] and items[1].ttl
    return type(ttl) == "number" and ttl <= now_s
end

return _M
