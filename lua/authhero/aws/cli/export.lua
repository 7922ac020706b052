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
local unpack = table.unpack or _G.unpack -- luacheck: ignore 143 (5.1 and LuaJIT have only unpack)

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
    local tbl = cli.table_name(opts)
    local adapters = aws.create_adapters(client, { tableName = tbl })
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

    -- The registry says how each entity is read (cli.export): mode "walk" (a keyset walk of
    -- list(t, { take, from }), the default), "pages" (offset pages of 1000), "all" (one call returns
    -- them all), "single" (one record or nil), "none" (not exported), "users" (users with their
    -- linked users, below); `under` nests an entity under each exported record of another (a role's
    -- permissions follow the role), `call`/`args`/`items` name the method, its arguments ("tenant",
    -- "@field" of the parent record, strings with ${take}, ${from}, ${page}, ${tenant} filled in)
    -- and the result's list; `collect` folds the results into one record (a client's connections).
    local records = require "authhero.aws.cli.records"
    local schema = require "authhero.aws.schema"
    local under = {}
    for _, name in ipairs(records.ENTITIES) do
        local x = schema.entity(name).cli.export
        if x and x.under then
            under[x.under] = under[x.under] or {}
            table.insert(under[x.under], name)
        end
    end

    local function fill(v, parent, vars)
        if type(v) == "table" then
            local c = {}
            for k, x in pairs(v) do c[k] = fill(x, parent, vars) end
            return c
        elseif v == "tenant" then
            return t
        elseif type(v) == "string" and v:sub(1, 1) == "@" then
            return parent[v:sub(2)]
        elseif type(v) == "string" then
            local whole = v:match("^%${(%w+)}$")
            if whole then return vars[whole] end
            return (v:gsub("%${(%w+)}", function(k) return tostring(vars[k]) end))
        end
        return v
    end
    local DEFAULT_ARGS = { "tenant", { take = "${take}", from = "${from}" } }

    -- primary users by keyset; each primary's linked users follow it (from the linked_to index)
    local function each_user(fn)
        local from
        repeat
            local page = adapters.users.list(t, { take = 1000, from = from })
            for _, u in ipairs(page.users) do
                fn(u)
                if u.identities and #u.identities > 1 then
                    local p = 0
                    while true do
                        local res = adapters.users.list(t, { q = "linked_to:" .. quoted(u.user_id), page = p,
                            per_page = 1000 })
                        for _, l in ipairs(res.users) do fn(l) end
                        if #res.users < 1000 then break end
                        p = p + 1
                    end
                end
            end
            from = page.next
        until from == nil
    end

    local each -- each(name, fn[, parent]): calls fn(record) for every record of entity name
    local function emit_tree(name, r)
        emit(name, r)
        for _, child in ipairs(under[name] or {}) do
            each(child, function(c) emit_tree(child, c) end, r)
        end
    end

    function each(name, fn, parent)
        local E = schema.entity(name)
        local x = E.cli.export or {}
        local mode = x.mode or "walk"
        if mode == "none" or mode == "self" then return end
        local method = adapters[name][x.call or "list"]
        local argspec = x.args or DEFAULT_ARGS
        local function call(vars)
            local a = fill(argspec, parent or {}, vars)
            return method(unpack(a, 1, #argspec))
        end
        local function rows(res)
            if x.items then return res[x.items] end
            if res[E.module] then return res[E.module] end
            if res[name] then return res[name] end
            return res
        end
        if x.collect then
            local c = x.collect
            local ids = {}
            for _, r in ipairs(rows(call({}))) do ids[#ids + 1] = r[c.from] end
            if #ids > 0 then
                local rec = fill(c.base, parent or {}, {})
                rec[c.field] = ids
                fn(rec)
            end
        elseif mode == "walk" then
            local from
            repeat
                local page = call({ take = 1000, from = from })
                for _, r in ipairs(rows(page)) do fn(r) end
                from = page.next or (page.totals and page.totals.next)
            until from == nil
        elseif mode == "pages" then
            local p = 0
            while true do
                local list = rows(call({ page = p, tenant = quoted(t) }))
                for _, r in ipairs(list) do fn(r) end
                if #list < 1000 then break end
                p = p + 1
            end
        elseif mode == "all" then
            for _, r in ipairs(rows(call({}))) do fn(r) end
        elseif mode == "single" then
            -- one item per tenant; only when it is stored (a get may answer defaults for none)
            local k = schema.keys[E.item.name]({ tenant_id = t })
            local stored = client:call("GetItem", { TableName = tbl, Key = k, ProjectionExpression = "#pk",
                ExpressionAttributeNames = { ["#pk"] = "PK" } }).Item
            local r = stored and call({}) or nil
            if r ~= nil then fn(r) end
        elseif mode == "users" then
            -- keyset mode lists primary users; each primary's linked users come from the linked_to index
            each_user(fn)
        end
    end

    emit_tree("tenants", tenant)
    for _, name in ipairs(records.ENTITIES) do
        local x = schema.entity(name).cli.export
        if name ~= "tenants" and not (x and x.under) then
            each(name, function(r) emit_tree(name, r) end)
        end
    end

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
