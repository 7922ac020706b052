-- `authhero-dynamo stats [--tenant ID]`: item counts per entity type. The whole table is one Scan
-- (projection entityType and ttl only); one tenant is everything the registry says it owns, found
-- the way tenants.remove finds it (its partitions, records found through indexes, its helper items
-- and its items in global partitions), with no Scan. Items whose ttl has passed (awaiting
-- DynamoDB's TTL deletion) are counted apart.
local core = require "authhero.aws.core"
local progress = require "authhero.aws.cli.progress"
local schema = require "authhero.aws.schema"

local _M = {}

_M.spec = {
    usage = "stats [--tenant ID] [--json]",
    description = "Counts items per entity type, in the whole table (a Scan) or in one tenant.",
    options = {
        { "--tenant", "ID", "count one tenant's items (its partitions, no Scan)" },
        { "--json", nil, "print the counts as one JSON object" },
        { "--quiet", nil, "no progress output" },
    },
    max = 0,
}

-- entityType -> what it is, in AuthHero's terms (from the registry), in the registry's order
local HELPER_LABEL = { guard = "guard items", pointer = "pointer items", index = "index items",
    version = "version items" }
_M.KINDS = {}
do
    local seen = {}
    for _, E in ipairs(schema.entities) do
        _M.KINDS[#_M.KINDS + 1] = { E.entity_type, E.name }
        for _, h in ipairs(E.helpers) do
            if not seen[h.entity_type] then
                seen[h.entity_type] = true
                _M.KINDS[#_M.KINDS + 1] = { h.entity_type, E.name .. ": " .. HELPER_LABEL[h.kind] }
            end
        end
    end
end

local NAMES = { ["#e"] = "entityType", ["#ttl"] = "ttl" }

function _M.run(cli, opts)
    local client = cli.client(opts)
    local tbl = cli.table_name(opts)
    local now_s = math.floor(core.now())
    local counts, expired, total = {}, {}, 0
    local bar = progress.new({ label = "stats", unit = "items", quiet = opts.quiet or opts.json })
    local function count(it)
        local et = it.entityType or "(no entityType)"
        counts[et] = (counts[et] or 0) + 1
        if type(it.ttl) == "number" and it.ttl <= now_s then expired[et] = (expired[et] or 0) + 1 end
        total = total + 1
        bar:update(total)
    end
    local t = opts.tenant
    if t then
        local ctx = require("authhero.aws.store").new(client, { tableName = tbl })
        local k = schema.keys.tenant(t)
        local root = client:call("GetItem", { TableName = tbl, Key = k, ConsistentRead = true }).Item
        local items = ctx:removal_items(schema.entity("tenants"), root or { PK = k.PK, SK = k.SK, id = t },
            { without_self = root == nil, read_helpers = true })
        local found = #items > 0
        for _, it in ipairs(items) do count(it) end
        if not found then cli.fail("tenant %q has no items in %s", t, cli.target(opts, client)) end
    else
        for page in client:paginate("Scan", { TableName = tbl, ProjectionExpression = "#e, #ttl",
            ExpressionAttributeNames = NAMES }) do
            for _, it in ipairs(page.Items or {}) do count(it) end
        end
    end
    bar:finish(total)

    local rows, seen = {}, {}
    for _, k in ipairs(_M.KINDS) do
        if counts[k[1]] then
            rows[#rows + 1] = { k[1], k[2], counts[k[1]], expired[k[1]] or 0 }
            seen[k[1]] = true
        end
    end
    local others = {}
    for et in pairs(counts) do
        if not seen[et] then others[#others + 1] = et end
    end
    table.sort(others)
    for _, et in ipairs(others) do rows[#rows + 1] = { et, "", counts[et], expired[et] or 0 } end

    if opts.json then
        local parts = {}
        for _, r in ipairs(rows) do
            parts[#parts + 1] = core.json_encode(r[1]) .. ":" .. r[3]
        end
        local ex = {}
        for _, r in ipairs(rows) do
            if r[4] > 0 then ex[#ex + 1] = core.json_encode(r[1]) .. ":" .. r[4] end
        end
        io.stdout:write(string.format('{"table":%s,"tenant":%s,"total":%d,"counts":{%s},"expired":{%s}}\n',
            core.json_encode(tbl), t and core.json_encode(t) or "null", total, table.concat(parts, ","),
            table.concat(ex, ",")))
        return 0
    end
    local out = { string.format("%s%s: %s items", cli.target(opts, client), t and (", tenant " .. t) or "",
        progress.thousands(total)) }
    out[#out + 1] = string.format("  %-26s %-34s %10s", "entityType", "entity", "items")
    for _, r in ipairs(rows) do
        out[#out + 1] = string.format("  %-26s %-34s %10s%s", r[1], r[2], progress.thousands(r[3]),
            r[4] > 0 and string.format("  (%d expired, awaiting TTL deletion)", r[4]) or "")
    end
    io.stdout:write(table.concat(out, "\n"), "\n")
    return 0
end

return _M
