-- `authhero-dynamo export --tenant ID`: every record of one tenant as JSON lines
--   {"entity":"users","tenant_id":"acme","record":{...}}
-- read through the adapters' get/list methods (so exactly what AuthHero would see), in the order
-- of records.ENTITIES; the output is the import's input format. Keys are written sorted, so two
-- exports of the same data are byte-identical. Expired sessions and codes are not exported (the
-- adapters treat them as absent).
local aws = require "authhero.aws"
local core = require "authhero.aws.core"
local progress = require "authhero.aws.cli.progress"

local _M = {}

_M.spec = {
    usage = "export --tenant ID [--out FILE]",
    description = "Writes every entity of one tenant as JSON lines (the format import reads).",
    options = {
        { "--tenant", "ID", "the tenant to export (required)" },
        { "--out", "FILE", "write to FILE instead of standard output" },
        { "--quiet", nil, "no progress output" },
    },
    max = 0,
}

local null = core.null

local function is_sequence(t)
    local n = #t
    if n == 0 then return false end
    local count = 0
    for k in pairs(t) do
        if type(k) ~= "number" then return false end
        count = count + 1
    end
    return count == n
end

-- JSON with object keys sorted (core.json_encode does the scalars and the escaping)
local function encode(v, out)
    if type(v) == "table" and v ~= null then
        if core.is_array(v) or is_sequence(v) then
            out[#out + 1] = "["
            for i = 1, #v do
                if i > 1 then out[#out + 1] = "," end
                encode(v[i], out)
            end
            out[#out + 1] = "]"
        else
            local keys = {}
            for k in pairs(v) do keys[#keys + 1] = tostring(k) end
            table.sort(keys)
            out[#out + 1] = "{"
            for i, k in ipairs(keys) do
                if i > 1 then out[#out + 1] = "," end
                out[#out + 1] = core.json_encode(k)
                out[#out + 1] = ":"
                encode(v[k], out)
            end
            out[#out + 1] = "}"
        end
    else
        out[#out + 1] = core.json_encode(v)
    end
    return out
end
_M.encode = function(v) return table.concat(encode(v, {})) end

-- a q value that matches exactly this string
local function quoted(s)
    return '"' .. s:gsub('[\\"]', "\\%0") .. '"'
end

function _M.run(cli, opts)
    local t = opts.tenant
    if type(t) ~= "string" or t == "" then
        require("authhero.aws.cli.args").usage_error("--tenant ID is required")
    end
    local client = cli.client(opts)
    local adapters = aws.create_adapters(client, { tableName = cli.table_name(opts) })
    local tenant = adapters.tenants.get(t)
    if not tenant then cli.fail("tenant %q not found in %s", t, cli.target(opts, client)) end

    local out = io.stdout
    if opts.out then
        local f, err = io.open(opts.out, "w")
        if not f then cli.fail("cannot write %s", tostring(err)) end
        out = f
    end
    local bar = progress.new({ label = "export", unit = "records", quiet = opts.quiet })
    local counts, n = {}, 0
    local prefix = '{"entity":'
    local tenant_json = ',"tenant_id":' .. core.json_encode(t) .. ',"record":'
    local function emit(entity, record)
        out:write(prefix, core.json_encode(entity), tenant_json, _M.encode(record), "}\n")
        counts[entity] = (counts[entity] or 0) + 1
        n = n + 1
        bar:update(n)
    end

    -- keyset walk of a list() that returns { <key> = records, next = cursor } (or totals.next)
    local function walk(list, key, fn)
        local from
        repeat
            local page = list(t, { take = 1000, from = from })
            for _, r in ipairs(page[key]) do fn(r) end
            from = page.next or (page.totals and page.totals.next)
        until from == nil
    end
    -- offset walk, for lists without keyset mode
    local function pages(list, fn)
        local page = 0
        while true do
            local rows = list(page)
            for _, r in ipairs(rows) do fn(r) end
            if #rows < 1000 then break end
            page = page + 1
        end
    end

    emit("tenants", tenant)
    walk(adapters.connections.list, "connections", function(r) emit("connections", r) end)
    walk(adapters.clients.list, "clients", function(r) emit("clients", r) end)
    walk(adapters.roles.list, "roles", function(r)
        emit("roles", r)
        pages(function(p) return adapters.rolePermissions.list(t, r.id, { page = p, per_page = 1000 }) end,
            function(perm) emit("rolePermissions", perm) end)
    end)
    walk(adapters.organizations.list, "organizations", function(r) emit("organizations", r) end)
    for _, d in ipairs(adapters.customDomains.list(t)) do emit("customDomains", d) end

    local function user_and_passwords(u)
        emit("users", u)
        for _, p in ipairs(adapters.passwords.list(t, u.user_id)) do emit("passwords", p) end
    end
    -- keyset mode lists primary users; each primary's linked users come from the linked_to index
    walk(adapters.users.list, "users", function(u)
        user_and_passwords(u)
        if u.identities and #u.identities > 1 then
            local page = 0
            while true do
                local res = adapters.users.list(t, { q = "linked_to:" .. quoted(u.user_id), page = page, per_page = 1000 })
                for _, l in ipairs(res.users) do user_and_passwords(l) end
                if #res.users < 1000 then break end
                page = page + 1
            end
        end
    end)
    walk(adapters.userOrganizations.list, "userOrganizations", function(r) emit("userOrganizations", r) end)
    walk(adapters.sessions.list, "sessions", function(r) emit("sessions", r) end)
    walk(adapters.codes.list, "codes", function(r) emit("codes", r) end)

    if out ~= io.stdout then out:close() else out:flush() end
    bar:finish(n)
    local parts = {}
    for _, e in ipairs(require("authhero.aws.cli.records").ENTITIES) do
        if counts[e] then parts[#parts + 1] = e .. " " .. counts[e] end
    end
    local summary = string.format("exported tenant %s: %d records (%s)%s", t, n, table.concat(parts, ", "),
        opts.out and (" to " .. opts.out) or "")
    -- the records go to stdout when there is no --out: the summary must not mix with them
    if opts.out then io.stdout:write(summary, "\n") else io.stderr:write(summary, "\n") end
    return 0
end

return _M
