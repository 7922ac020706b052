-- `authhero-dynamo verify FILE`: does the table hold what the file says? Every line is turned into
-- items exactly as import would (records.lua), the items are read back (BatchGetItem, consistent)
-- and compared attribute by attribute (JSON-string attributes by value, not by text). Then, for
-- each tenant in the file, items in the table that the file does not account for are listed
-- (everything the tenant owns per the registry, as tenants.remove finds it; --no-extra skips
-- this). Attributes derived from "now" for a record without timestamps are not compared.
local core = require "authhero.aws.core"
local progress = require "authhero.aws.cli.progress"
local records = require "authhero.aws.cli.records"
local schema = require "authhero.aws.schema"

local _M = {}

_M.spec = {
    usage = "verify FILE [--no-extra] [--keep-expired] [--json]",
    description = "Compares a JSON-lines file (import's format) with what the table holds and lists\n"
        .. "the differences. Exit status 0 when there are none, 1 otherwise.",
    options = {
        { "--no-extra", nil, "do not look for table items the file does not account for" },
        { "--keep-expired", nil, "also check sessions and codes whose expiry has passed" },
        { "--max", "N", "list at most N differences (default 100)" },
        { "--json", nil, "print the result as one JSON object" },
        { "--quiet", nil, "no progress output" },
    },
    positional = { "FILE" },
    min = 1,
    max = 1,
}

local null = core.null
local IGNORED = { hasLinked = true } -- a read optimisation marker, not data

local function deep_equal(a, b)
    if a == b then return true end
    if type(a) ~= "table" or type(b) ~= "table" then return false end
    if core.is_array(a) ~= core.is_array(b) and (next(a) ~= nil or next(b) ~= nil) then return false end
    for k, v in pairs(a) do
        if not deep_equal(v, b[k]) then return false end
    end
    for k in pairs(b) do
        if a[k] == nil then return false end
    end
    return true
end

-- JSON-string attributes are equal when they decode to the same value
local function same(a, b)
    if a == b then return true end
    if type(a) == "string" and type(b) == "string" then
        local c1, c2 = a:sub(1, 1), b:sub(1, 1)
        if (c1 == "{" or c1 == "[") and (c2 == "{" or c2 == "[") then
            local ok1, x = pcall(core.json_decode, a)
            local ok2, y = pcall(core.json_decode, b)
            return ok1 and ok2 and deep_equal(x, y)
        end
        return false
    end
    return deep_equal(a, b)
end

local function show(v)
    if v == nil then return "(absent)" end
    if v == null then return "null" end
    local s = type(v) == "table" and core.json_encode(v) or (type(v) == "string" and string.format("%q", v) or tostring(v))
    if #s > 80 then s = s:sub(1, 77) .. "..." end
    return s
end

-- attribute names whose value depends on "now" (the record has no timestamp for them)
local function now_dependent(b1, b2, entity, t, record)
    local ok1, a = pcall(b1.items, b1, entity, t, record)
    local ok2, b = pcall(b2.items, b2, entity, t, record)
    local out = {}
    if not (ok1 and ok2) then return out end
    for i, it in ipairs(a) do
        local other = b[i] or {}
        for k, v in pairs(it) do
            if not same(v, other[k]) then out[k] = true end
        end
    end
    return out
end

function _M.run(cli, opts, pos)
    local path = pos[1]
    local max = require("authhero.aws.cli.args").integer(opts, "max", 0) or 100
    local f, err = io.open(path, "rb")
    if not f then cli.fail("cannot open %s", tostring(err)) end
    local client = cli.client(opts)
    local tbl = cli.table_name(opts)
    client:call("DescribeTable", { TableName = tbl })
    local now_ms = math.floor(core.now() * 1000)
    local b1 = records.builder({ table = tbl, now_ms = now_ms })
    local b2 = records.builder({ table = tbl, now_ms = now_ms + 86400000 * 400 + 12345 })
    local ledger = records.ledger()
    local now_s = math.floor(now_ms / 1000)

    local diffs, ndiffs = {}, 0
    local function diff(line, what)
        ndiffs = ndiffs + 1
        if #diffs < max then diffs[#diffs + 1] = { line = line, what = what } end
    end
    local skipped = {}
    local expected = {}  -- key -> { line, item, loose = set of attributes not compared, label }
    local order = {}
    local tenants, tenant_list = {}, {}
    local bar = progress.new({ label = "verify", unit = "lines", quiet = opts.quiet or opts.json })
    local n, nrec = 0, 0
    for text in f:lines() do
        n = n + 1
        if n == 1 and text:sub(1, 3) == "\239\187\191" then text = text:sub(4) end
        if text:find("%S") then
            local p = records.parse(text)
            local ok, items
            if not p.skip then ok, items = pcall(b1.items, b1, p.entity, p.tenant_id, p.record) end
            local why = p.skip or (not ok and (type(items) == "table" and items.skip or tostring(items))) or nil
            if not why and not opts.keep_expired and records.expired(items, now_s) then why = "expired" end
            if not why then why = ledger:claim(items, n) end
            if why then
                skipped[#skipped + 1] = { line = n, reason = why }
            else
                nrec = nrec + 1
                local loose = now_dependent(b1, b2, p.entity, p.tenant_id, p.record)
                for _, it in ipairs(items) do
                    local k = records.key(it)
                    expected[k] = { line = n, item = it, loose = loose, label = p.entity .. " " .. records.describe(it) }
                    order[#order + 1] = k
                end
                if p.tenant_id and not tenants[p.tenant_id] then
                    tenants[p.tenant_id] = true
                    tenant_list[#tenant_list + 1] = p.tenant_id
                end
            end
        end
        bar:update(n)
    end
    f:close()

    -- read back what the file expects, 100 keys per BatchGetItem
    local checked = 0
    for i = 1, #order, 100 do
        local ks = {}
        for j = i, math.min(i + 99, #order) do
            local it = expected[order[j]].item
            ks[#ks + 1] = { PK = it.PK, SK = it.SK }
        end
        local got, left = client:batch_get(tbl, ks, { ConsistentRead = true })
        if #left > 0 then cli.fail("%d items could not be read (throttled); run verify again", #left) end
        local stored = {}
        for _, it in ipairs(got) do stored[records.key(it)] = it end
        for j = i, math.min(i + 99, #order) do
            local e = expected[order[j]]
            local s = stored[order[j]]
            if not s then
                diff(e.line, e.label .. ": not in the table")
            else
                for k, v in pairs(e.item) do
                    if not IGNORED[k] and not e.loose[k] and not same(v, s[k]) then
                        diff(e.line, string.format("%s: %s is %s in the file, %s in the table", e.label, k, show(v), show(s[k])))
                    end
                end
                for k, v in pairs(s) do
                    if e.item[k] == nil and not IGNORED[k] and not e.loose[k] then
                        diff(e.line, string.format("%s: the table also has %s = %s", e.label, k, show(v)))
                    end
                end
            end
            checked = checked + 1
        end
        bar:update(n, string.format("%d items checked", checked))
    end

    -- what the table holds for these tenants that the file does not account for
    local extra = 0
    if not opts.no_extra then
        -- everything each tenant owns, found as tenants.remove would find it (store.removal_items)
        local ctx = require("authhero.aws.store").new(client, { tableName = tbl })
        local tenants_entity = schema.entity("tenants")
        for _, t in ipairs(tenant_list) do
            local k = schema.keys.tenant(t)
            local root = { PK = k.PK, SK = k.SK, id = t, entityType = tenants_entity.entity_type }
            for _, it in ipairs(ctx:removal_items(tenants_entity, root, { without_self = true, read_helpers = true })) do
                local live = type(it.ttl) ~= "number" or it.ttl > now_s
                if live and not expected[records.key(it)] then
                    extra = extra + 1
                    diff(0, string.format("the table has %s %s / %s that the file does not", tostring(it.entityType),
                        it.PK, it.SK))
                end
            end
        end
    end
    bar:finish(n)

    table.sort(diffs, function(a, b) return a.line < b.line end)
    if opts.json then
        local items = {}
        for i, d in ipairs(diffs) do items[i] = core.json_encode({ line = d.line, difference = d.what }) end
        local sk = {}
        for i, s in ipairs(skipped) do sk[i] = core.json_encode({ line = s.line, reason = s.reason }) end
        io.stdout:write(string.format('{"file":%s,"table":%s,"records":%d,"items":%d,"differences":%d,"extra":%d,'
            .. '"skipped":%d,"list":[%s],"skipped_lines":[%s]}\n', core.json_encode(path), core.json_encode(tbl), nrec,
            checked, ndiffs, extra, #skipped, table.concat(items, ","), table.concat(sk, ",")))
    else
        local out = { string.format("verify %s against %s: %d records, %d items checked", path,
            cli.target(opts, client), nrec, checked) }
        if ndiffs == 0 then
            out[#out + 1] = "  no differences"
        else
            out[#out + 1] = string.format("  %d difference%s:", ndiffs, ndiffs == 1 and "" or "s")
            for _, d in ipairs(diffs) do
                out[#out + 1] = d.line > 0 and string.format("  line %d: %s", d.line, d.what) or ("  " .. d.what)
            end
            if ndiffs > #diffs then out[#out + 1] = string.format("  ... and %d more (--max N)", ndiffs - #diffs) end
        end
        if #skipped > 0 then
            out[#out + 1] = string.format("  %d line%s not checked (import skips them too):", #skipped,
                #skipped == 1 and "" or "s")
            for i, s in ipairs(skipped) do
                if i > 20 then
                    out[#out + 1] = string.format("  ... and %d more", #skipped - 20)
                    break
                end
                out[#out + 1] = string.format("  line %d: %s", s.line, s.reason)
            end
        end
        io.stdout:write(table.concat(out, "\n"), "\n")
    end
    return ndiffs == 0 and 0 or 1
end

_M._same = function(a, b) return same(a, b) end

return _M
