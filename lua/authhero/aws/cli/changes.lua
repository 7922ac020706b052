-- `authhero-dynamo changes`: the table's DynamoDB stream (client:changes) as entity-level change
-- events, one JSON line each:
--   {"event":"INSERT"|"MODIFY"|"REMOVE","entity":"users","tenant":"acme","id":"auth2|1",
--    "old":{...}|null,"new":{...}|null}
-- entity is the registry's name for the item's entityType, id the record's field the registry's
-- cli.id names (absent for entities without one, e.g. role_permissions: then "key" holds the
-- fields of the item's key, or its PK and SK when the key has optional parts), old/new the
-- records as the adapters read them (store.to_record: keys, entityType, index keys, ttl and hidden
-- fields removed). Helper items (uniqueness guards,
-- pointers, index and version items) are bookkeeping of their entity's record, whose own event
-- says what changed: they are skipped, or with --helpers printed as {"event", "entity", "helper":
-- kind, "tenant", "key": {PK, SK}}. Items of no registered entity are skipped.
-- --checkpoint FILE: read at the start (a missing file is an empty checkpoint) and rewritten,
-- atomically (a temporary file renamed over it), after every printed line; a restart with the same
-- FILE prints exactly the lines not printed before (a crash between the print and the rewrite
-- prints that one line again).
local core = require "authhero.aws.core"
local schema = require "authhero.aws.schema"
local store = require "authhero.aws.store"
local export = require "authhero.aws.cli.export"

local _M = {}

_M.spec = {
    usage = "changes [--from trim_horizon|latest] [--checkpoint FILE] [--follow] [--poll SECONDS] [--limit N]"
        .. " [--helpers]",
    description = "Prints the table's stream as entity-level change events, one JSON line each\n"
        .. "(the table needs a stream: create-table --streams). Stops when the stream has nothing\n"
        .. "more, unless --follow.",
    options = {
        { "--from", "WHERE", "trim_horizon (default: all the stream holds, 24 hours) or latest" },
        { "--checkpoint", "FILE", "resume from FILE and keep it up to date (JSON: shard -> sequence)" },
        { "--follow", nil, "keep polling for new changes (stop with Ctrl-C)" },
        { "--poll", "SECONDS", "wait between empty polls with --follow (default 1)" },
        { "--limit", "N", "records per GetRecords call (1-1000; default the service's)" },
        { "--helpers", nil, "also print helper items (guards, pointers, index items), labelled" },
    },
    max = 0,
}

local null = core.null

-- event -> the line's table, or nil when the item is skipped
function _M.entity_event(ev, helpers)
    local item = ev.new or ev.old or ev.keys or {}
    local bt = schema.by_type[item.entityType]
    if not bt then return nil end
    local E = bt.entity
    if item.entityType ~= E.entity_type then
        if not helpers then return nil end
        local h = bt.helper or {}
        local fields = h.pk and schema.fields_of_key(h, item) or {}
        return { event = ev.event, entity = E.name, helper = h.kind or "helper",
            tenant = (fields and fields.tenant_id) or item.tenant_id or null,
            key = { PK = ev.keys and ev.keys.PK or item.PK, SK = ev.keys and ev.keys.SK or item.SK } }
    end
    local old, new = store.to_record(E, ev.old), store.to_record(E, ev.new)
    local fields = schema.fields_of_key(E.item, item) or {}
    local rec = new or old or {}
    local out = { event = ev.event, entity = E.name, old = old or null, new = new or null }
    local idf = E.cli and E.cli.id
    if idf then
        out.id = rec[idf] or fields[idf] or null
    elseif next(fields) then
        out.key = fields
    else -- a key with optional parts (user roles with or without an organization): the item's key
        out.key = { PK = item.PK, SK = item.SK }
    end
    local tenant = fields.tenant_id or item.tenant_id
    if E.name == "tenants" then tenant = rec.id or fields.id end
    out.tenant = tenant or null
    return out
end

local function read_checkpoint(cli, path)
    local f = io.open(path)
    if not f then return {} end
    local text = f:read("a")
    f:close()
    if text:match("^%s*$") then return {} end
    local ok, cp = pcall(core.json_decode, text)
    if not ok or type(cp) ~= "table" or core.is_array(cp) and #cp > 0 then
        cli.fail("checkpoint %s is not a JSON object of shard id -> sequence number", path)
    end
    if core.is_array(cp) then cp = {} end
    for k, v in pairs(cp) do
        if type(k) ~= "string" or type(v) ~= "string" then
            cli.fail("checkpoint %s is not a JSON object of shard id -> sequence number", path)
        end
    end
    return cp
end

local function write_checkpoint(cli, path, cp)
    local tmp = path .. ".tmp"
    local f, err = io.open(tmp, "w")
    if not f then cli.fail("cannot write the checkpoint: %s", tostring(err)) end
    f:write(export.encode(cp), "\n")
    f:close()
    local ok, rerr = os.rename(tmp, path)
    if not ok then cli.fail("cannot write the checkpoint %s: %s", path, tostring(rerr)) end
end

function _M.run(cli, opts)
    local args = require "authhero.aws.cli.args"
    local from = opts.from or "trim_horizon"
    if from ~= "trim_horizon" and from ~= "latest" then
        args.usage_error("--from must be trim_horizon or latest, got %s", from)
    end
    local poll = opts.poll and tonumber(opts.poll)
    if opts.poll and not (poll and poll >= 0) then args.usage_error("--poll must be a number of seconds") end
    if opts.poll and not opts.follow then args.usage_error("--poll needs --follow") end
    local limit = args.integer(opts, "limit", 1, 1000)
    local client = cli.client(opts)
    local name = cli.table_name(opts)
    local cp = opts.checkpoint and read_checkpoint(cli, opts.checkpoint) or nil
    local next_change, feed = client:changes(name, { from = from, checkpoint = cp, follow = opts.follow == true,
        poll = poll, limit = limit })
    local out = io.stdout
    for ev in next_change do
        local line = _M.entity_event(ev, opts.helpers)
        if line then
            out:write(export.encode(line), "\n")
            out:flush()
        end
        if opts.checkpoint then write_checkpoint(cli, opts.checkpoint, feed.checkpoint) end
    end
    if opts.checkpoint then write_checkpoint(cli, opts.checkpoint, feed.checkpoint) end
    return 0
end

return _M
