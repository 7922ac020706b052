-- docs/data-model.md, generated from the entity registry (lua/authhero/aws/registry.lua through
-- schema.lua): `lua5.4 scripts/data_model.lua` writes it (make docs), `--check` exits 1 when the
-- file is stale; loaded with dofile, it returns render() for spec/unit/data_model_spec.lua. The prose is
-- here; every fact comes from the registry, so the page cannot drift from the code.
local schema = require "authhero.aws.schema"
local registry = require "authhero.aws.registry"
local sorted_keys = require("authhero.aws.util").sorted_keys

local function code(s) return "`" .. s .. "`" end

local function key_text(t)
    if t.text_sk then return code(t.text_pk) .. " / " .. code(t.text_sk) end
    return code(t.text_pk)
end

local function list_text(names)
    local out = {}
    for i, n in ipairs(names) do out[i] = code(n) end
    return table.concat(out, ", ")
end

local function q_text(q)
    local out = {}
    for _, f in ipairs(sorted_keys(q.fields)) do
        local d = q.fields[f]
        local notes = {}
        if d.type and d.type ~= "string" then notes[#notes + 1] = d.type end
        if d.ci then notes[#notes + 1] = "case-insensitive" end
        if d.substring then notes[#notes + 1] = "substring" end
        if d.default ~= nil then notes[#notes + 1] = "absent = " .. tostring(d.default) end
        out[#out + 1] = code(f) .. (#notes > 0 and " (" .. table.concat(notes, ", ") .. ")" or "")
    end
    return table.concat(out, ", ")
end

local function cli_text(E)
    local c = E.cli
    if not c then return "not imported or exported" end
    local imp = c.import or {}
    local exp = c.export or {}
    local parts = {}
    local how = (imp.method or "create") .. "(" .. table.concat(imp.args or { "tenant", "record", "options" }, ", ")
        .. ")"
    parts[#parts + 1] = "import calls " .. code(how) .. (c.id and (", the record must carry " .. code(c.id)) or "")
        .. (imp.clock and "; created_at stands in for now" or "")
    if exp.mode == "none" then
        parts[#parts + 1] = "not exported"
    elseif exp.mode == "self" then
        parts[#parts + 1] = "exported first, as the tenant record"
    else
        parts[#parts + 1] = "exported with " .. code((exp.call or "list")) .. " (" .. (exp.mode or "walk") .. ")"
            .. (exp.under and (" after each of its " .. exp.under) or "")
    end
    return table.concat(parts, "; ")
end

local function render()
    local o = {}
    local function w(...) o[#o + 1] = table.concat({ ... }) end

    w("# The data model")
    w("")
    w("Generated from `lua/authhero/aws/registry.lua` by `make docs`; do not edit by hand (a unit spec fails")
    w("when this page and the registry disagree).")
    w("")
    w("All of AuthHero's data lives in one DynamoDB table. Every item has a string partition key `PK` and")
    w("sort key `SK`; two global secondary indexes, `GSI1` (`GSI1PK` / `GSI1SK`) and `GSI2` (`GSI2PK` /")
    w("`GSI2SK`), project every attribute; the `ttl` attribute (epoch seconds) lets DynamoDB delete")
    w("expired items, and every read treats an item whose `ttl` has passed as absent. `entityType` says")
    w("what an item is. A record (what an adapter returns) is an item without these bookkeeping")
    w("attributes; structured fields are stored as JSON text.")
    w("")
    w("## Keys")
    w("")
    w("A key is written as segments joined by `#`: literals, and placeholders `{field}` filled from the")
    w("record. Every placeholder value is escaped first (`%` becomes `%25`, `#` becomes `%23`), so no id")
    w("can forge a separator or reach into another tenant's keys. `{field:lower}` lower-cases the value,")
    w("`{field:pad5}` writes an integer as five digits, `{field:day}` keeps the date of a timestamp,")
    w("`{field?}` accepts an empty value, and `[#LITERAL#{field}]` is a part present only when the field")
    w("is not empty. An index key is written only when every one of its fields has a value.")
    w("")
    w("Items that are not records keep the data true: **guards** hold a unique value (an email per")
    w("provider, a role name, a custom domain) and are written in the same transaction as their record;")
    w("**pointers** find a record by another id; **index items** list records under a shared key so a")
    w("whole group can be read or revoked without reading the tenant; **version items** hold a number")
    w("that concurrent writers of a group condition their writes on. Removing a record removes what it")
    w("owns: the records that name it as their parent, their helper items, and its own helper items")
    w("when they are still its own.")
    w("")
    w("## Entities")
    w("")
    w("| adapter | entityType | item key | adapter module |")
    w("| --- | --- | --- | --- |")
    for _, E in ipairs(schema.entities) do
        w("| ", code(E.name), " | ", code(E.entity_type), " | ", key_text(E.item), " | ",
            E.module and code("adapters/" .. E.module .. ".lua") or "not written yet", " |")
    end
    w("")
    w("Partitions several entities share:")
    for _, name in ipairs(sorted_keys(registry.partitions)) do
        w("- ", code(name), ": ", code(registry.partitions[name]))
    end

    for _, E in ipairs(schema.entities) do
        w("")
        w("### ", E.name)
        w("")
        w(E.summary or "")
        w("")
        w("- Item: ", key_text(E.item), ", entityType ", code(E.entity_type),
            E.scope == "global" and " (not inside a tenant's partition)" or "", ".")
        for _, t in ipairs(E.indexes) do
            w("- ", t.index, ": ", key_text(t), t.use and (" — " .. t.use) or "", ".")
        end
        for _, h in ipairs(E.helpers) do
            w("- ", h.kind, " item ", code(h.entity_type), ": ", key_text(h), h.use and (" — " .. h.use) or "",
                h.owner and (" (owner: " .. list_text(h.owner) .. ")") or "", ".")
        end
        if E.ttl then
            w("- TTL from ", list_text(E.ttl.from), E.ttl.retention and " plus the log retention period" or
                (#E.ttl.from > 1 and " (the first present)" or ""), ".")
        end
        local json = sorted_keys(E.json)
        if #json > 0 then
            local parts = {}
            for i, f in ipairs(json) do parts[i] = code(f) .. " (" .. E.json[f] .. ")" end
            w("- Stored as JSON text: ", table.concat(parts, ", "), ".")
        end
        if E.hidden and next(E.hidden) then w("- Stored but not part of the record: ", list_text(sorted_keys(E.hidden)), ".") end
        if E.drop and next(E.drop) then w("- Never stored: ", list_text(sorted_keys(E.drop)), ".") end
        if E.q then
            w("- `q` fields: ", q_text(E.q), ".")
            if E.q.search and #E.q.search > 0 then
                local parts = {}
                for i, s in ipairs(E.q.search) do parts[i] = code(s.field) .. " (" .. s.mode .. ")" end
                w("- Free text matches: ", table.concat(parts, ", "), ".")
            end
        end
        local sortable = sorted_keys(E.sortable)
        if #sortable > 0 then w("- Sortable by: ", list_text(sortable), ".") end
        if E.parents and #E.parents > 0 then
            local parts = {}
            for i, p in ipairs(E.parents) do
                local via = p.via and p.via ~= "item" and (" (found through " .. p.via .. ")") or ""
                parts[i] = code(p[1]) .. via
            end
            w("- Removed with: ", table.concat(parts, ", "), ".")
        end
        w("- Command line: ", cli_text(E), ".")
    end
    w("")
    return table.concat(o, "\n")
end

if arg and arg[0] and arg[0]:match("data_model%.lua$") then
    local path = "docs/data-model.md"
    local text = render()
    if arg[1] == "--check" then
        local f = io.open(path, "r")
        local have = f and f:read("*a")
        if f then f:close() end
        if have ~= text then
            io.stderr:write(path, " is stale: run make docs\n")
            os.exit(1)
        end
        return
    end
    os.execute("mkdir -p docs")
    local f = assert(io.open(path, "w"))
    f:write(text)
    f:close()
    print("wrote " .. path)
end

return { render = render }
