-- `authhero-dynamo stats [--tenant ID]`: item counts per entity type. The whole table is one Scan
-- (projection entityType and ttl only); one tenant is its partition TENANT#{t}, the partitions of
-- its users, roles and organizations, and its global items (client-id pointers, domain claims).
-- Items whose ttl has passed (awaiting DynamoDB's TTL deletion) are counted apart.
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

-- entityType -> what it is, in AuthHero's terms
_M.KINDS = {
    { "TENANT", "tenants" },
    { "USER", "users" },
    { "USER_GUARD", "users: email/username guards" },
    { "PASSWORD", "passwords" },
    { "SESSION", "sessions" },
    { "CLIENT", "clients" },
    { "CLIENT_ID_POINTER", "clients: client-id pointers" },
    { "CONNECTION", "connections" },
    { "CODE", "codes" },
    { "ORGANIZATION", "organizations" },
    { "ORGANIZATION_NAME", "organizations: name guards" },
    { "USER_ORGANIZATION", "userOrganizations (members)" },
    { "USER_ORGANIZATION_ID", "userOrganizations: id pointers" },
    { "ROLE", "roles" },
    { "ROLE_NAME", "roles: name guards" },
    { "ROLE_PERMISSION", "rolePermissions" },
    { "CUSTOM_DOMAIN", "customDomains" },
    { "CUSTOM_DOMAIN_CLAIM", "customDomains: domain claims" },
}

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
    local function query(pk, extra_names, projection)
        local names = { ["#pk"] = "PK", ["#e"] = "entityType", ["#ttl"] = "ttl" }
        for k, v in pairs(extra_names or {}) do names[k] = v end
        local out = {}
        for page in client:paginate("Query", { TableName = tbl, KeyConditionExpression = "#pk = :pk",
            ExpressionAttributeNames = names, ExpressionAttributeValues = { [":pk"] = pk },
            ProjectionExpression = projection or "#e, #ttl" }) do
            for _, it in ipairs(page.Items or {}) do out[#out + 1] = it end
        end
        return out
    end

    local t = opts.tenant
    if t then
        local items = query(schema.keys.tenant_partition(t), { ["#u"] = "user_id", ["#id"] = "id", ["#c"] = "client_id",
            ["#d"] = "domain" }, "#e, #ttl, #u, #id, #c, #d")
        local found = false
        local globals = {}
        for _, it in ipairs(items) do
            count(it)
            local et = it.entityType
            local sub
            if et == "TENANT" then found = true
            elseif et == "USER" and it.user_id then sub = schema.keys.user_partition(t, it.user_id)
            elseif et == "ROLE" and it.id then sub = schema.keys.role_partition(t, it.id)
            elseif et == "ORGANIZATION" and it.id then sub = schema.keys.organization_partition(t, it.id)
            elseif et == "CLIENT" and it.client_id then globals[#globals + 1] = schema.keys.client_id_pointer(it.client_id)
            elseif et == "CUSTOM_DOMAIN" and it.domain then globals[#globals + 1] = schema.keys.domain_claim(it.domain)
            end
            if sub then
                for _, s in ipairs(query(sub)) do count(s) end
            end
        end
        if not found and total == 0 then cli.fail("tenant %q has no items in %s", t, cli.target(opts, client)) end
        if #globals > 0 then
            local got = client:batch_get(tbl, globals, { ProjectionExpression = "#e, #ttl, #t",
                ExpressionAttributeNames = { ["#e"] = "entityType", ["#ttl"] = "ttl", ["#t"] = "tenant_id" } })
            for _, it in ipairs(got) do
                if it.tenant_id == t then count(it) end
            end
        end
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
    out[#out + 1] = string.format("  %-22s %-34s %10s", "entityType", "entity", "items")
    for _, r in ipairs(rows) do
        out[#out + 1] = string.format("  %-22s %-34s %10s%s", r[1], r[2], progress.thousands(r[3]),
            r[4] > 0 and string.format("  (%d expired, awaiting TTL deletion)", r[4]) or "")
    end
    io.stdout:write(table.concat(out, "\n"), "\n")
    return 0
end

return _M
