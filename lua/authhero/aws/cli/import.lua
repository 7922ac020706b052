-- `authhero-dynamo import FILE`: JSON lines of AuthHero records -> the table, through the adapters'
-- key layout (records.lua), in BatchWriteItem calls of 25 (writer.lua). This process reads, checks
-- and de-duplicates the file (first occurrence of a key or unique value wins); N writer processes
-- (`--parallel`, default 4) each keep one connection busy, fed through pipes. Items are put
-- whole, so running the same import again writes the same items: no duplicates.
-- Linked users are written last, once their primary is known, and the primary is then marked
-- (hasLinked) as users.create does. Not done: deleting what an earlier import wrote for values
-- that have since changed (e.g. the guard of an old email); remove such users before re-importing.
local core = require "authhero.aws.core"
local errors = require "authhero.aws.errors"
local args = require "authhero.aws.cli.args"
local progress = require "authhero.aws.cli.progress"
local records = require "authhero.aws.cli.records"
local writer = require "authhero.aws.cli.writer"
local schema = require "authhero.aws.schema"
local util = require "authhero.aws.util"

local _M = {}

-- Writer processes by default: each keeps one connection busy while this process reads and checks
-- the file (bench/import.lua measures 1, 2, 4 and 8 against DynamoDB Local).
local DEFAULT_PARALLEL = 4
local RECORDS_PER_SEND = 64 -- records handed to one writer process at a time
local LINES_PER_WRITER = 500 -- a smaller file gets fewer writer processes than --parallel asks

_M.FORMAT = [[
line format (one JSON object per line; blank lines are ignored):
  {"entity": "users", "tenant_id": "acme", "record": { ...the AuthHero record... }}
  entity: tenants, users, passwords, sessions, clients, connections, codes, organizations,
          userOrganizations, roles, rolePermissions, customDomains (snake_case accepted too)
  tenant_id: required except on tenants lines (their tenant is record.id); may instead be
          given as record.tenant_id
  ids are required (tenants.id, users.user_id, clients.client_id, connections.id, sessions.id,
  codes.code_id, organizations.id, roles.id, customDomains.custom_domain_id); passwords.id and
  userOrganizations.id are derived from the record when absent. created_at/updated_at are kept;
  when absent the import's start time is used. A users record may carry
  "password": {"hash": "...", "algorithm": "bcrypt"}; rolePermissions lines hold one
  {role_id, resource_server_identifier, permission_name} each. Users with linked_to are written
  after their primary, which must be in the file or already in the table.
skipped (reported with the line number, never written): bad JSON, unknown entity, a missing
  required field, a value create refuses, a duplicate key or unique value within the file (the
  first occurrence wins), a unique value that belongs to another record in the table, a second
  current password of a user, sessions and codes that have already expired (--keep-expired).
  Unique values (email/username guards, role and organization names, memberships) are read back
  before writing only for tenants that already had items when the import started (so are stored
  users, whose linked-accounts marker is kept); client ids and custom domains (unique across
  tenants) always. Do not write to a tenant while importing it.
exit status: 0 all written, 3 finished with skipped lines, 1 error or failed records, 2 usage.]]

_M.spec = {
    usage = "import FILE [--parallel N] [--no-check] [--dry-run] [--report FILE] [--json]",
    description = "Imports JSON lines of AuthHero records (e.g. an export, or rows exported from SQL\n"
        .. "and transformed) with batched writes. Re-running the same import is safe.",
    options = {
        { "--parallel", "N", "writer processes, 1-32 (default " .. DEFAULT_PARALLEL .. "; 1 writes from this process)" },
        { "--no-check", nil, "never read guard items back first (only for data not yet in the table)" },
        { "--keep-expired", nil, "also write sessions and codes whose expiry has passed" },
        { "--dry-run", nil, "read and check the file, report, write nothing (no DynamoDB calls)" },
        { "--report", "FILE", "write every skipped or failed line to FILE (JSON lines)" },
        { "--json", nil, "print the summary as one JSON object" },
        { "--quiet", nil, "no progress output" },
    },
    positional = { "FILE" },
    min = 1,
    max = 1,
    epilog = _M.FORMAT,
}

-- The id a line's record goes by (the registry's cli.id, else id), for messages.
local function record_id(entity, record)
    local E = schema.entity(entity)
    return record[E.cli and E.cli.id or "id"] or record.id
end

local function count_lines(path)
    local f = io.open(path, "rb")
    if not f then return nil end
    local n, last = 0, nil
    while true do
        local block = f:read(1048576)
        if not block then break end
        local _, c = block:gsub("\n", "")
        n = n + c
        last = block:sub(-1)
    end
    f:close()
    if last and last ~= "\n" then n = n + 1 end
    return n
end

local function shell_quote(s)
    return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function pid_alive(pid)
    if not pid or pid == 0 then return true end
    local f = io.open("/proc/" .. pid .. "/stat", "r")
    if not f then return false end
    local s = f:read("l") or ""
    f:close()
    local state = s:match("^%d+ %b() (%a)")
    return state ~= "Z" and state ~= "X"
end

local function read_all(path)
    local f = io.open(path, "r")
    if not f then return "" end
    local s = f:read("a") or ""
    f:close()
    return s
end

-- sinks: where accepted records go. sink:send(line, items), sink:poll() -> {records, items,
-- skipped, failed}, sink:finish() -> totals with cpu/requests/retries; problems via on_problem.

local function local_sink(cli, opts, on_problem)
    local client = cli.client(opts)
    local w = writer.new(client, cli.table_name(opts), {
        check = not opts.no_check,
        on_skip = function(line, reason) on_problem(line, "skipped", reason) end,
        on_fail = function(line, reason) on_problem(line, "failed", reason) end,
    })
    local S = {}
    function S.send(_, line, items, check) w:add(line, items, check) end
    function S.poll() return w.stats end
    function S.finish()
        w:flush()
        local s = w.stats
        return { records = s.records, items = s.items, skipped = s.skipped, failed = s.failed, cpu = 0,
            requests = client.stats.requests, retries = client.stats.retries, processes = 1 }
    end
    S.client = client
    return S
end

local function mktemp_dir()
    local f = io.popen("mktemp -d \"${TMPDIR:-/tmp}/authhero-import.XXXXXX\" 2>/dev/null")
    local dir = f and f:read("l")
    if f then f:close() end
    if not dir or dir == "" then errors.raise(1, "CliError", "cannot create a temporary folder (mktemp -d)") end
    return dir
end

local function write_file(path, text)
    local f = io.open(path, "w")
    if not f then errors.raise(1, "CliError", "cannot write " .. path) end
    f:write(text)
    f:close()
end

local function parallel_sink(cli, opts, n, on_problem)
    local dir = mktemp_dir()
    local stop = dir .. "/stop" -- exists once the import is interrupted: writers send nothing more
    local endpoint_file
    if opts.endpoint then
        -- not on the writers' command lines, where `ps` would show a user:password@ in it
        endpoint_file = dir .. "/endpoint"
        write_file(endpoint_file, opts.endpoint)
    end
    local workers = {}
    for i = 1, n do
        local w = { status = dir .. "/w" .. i .. ".status", results = dir .. "/w" .. i .. ".results",
            log = dir .. "/w" .. i .. ".log", buf = {}, nbuf = 0 }
        local cmd = {}
        local interp = type(cli.interpreter) == "table" and cli.interpreter or { cli.interpreter }
        for _, a in ipairs(interp) do cmd[#cmd + 1] = shell_quote(a) end
        for _, a in ipairs({ shell_quote(cli.script), "_import-worker",
            "--table", shell_quote(cli.table_name(opts)), "--status", shell_quote(w.status),
            "--results", shell_quote(w.results), "--stop", shell_quote(stop) }) do
            cmd[#cmd + 1] = a
        end
        if endpoint_file then cmd[#cmd + 1] = "--endpoint-file " .. shell_quote(endpoint_file) end
        for _, f in ipairs({ "region", "profile" }) do
            if opts[f] then cmd[#cmd + 1] = "--" .. f .. " " .. shell_quote(opts[f]) end
        end
        if opts.no_check then cmd[#cmd + 1] = "--no-check" end
        -- The shell hands its stdin (our pipe) to the worker in the background and exits, so
        -- closing the pipe later does not wait for the worker; it sees EOF and finishes. Should
        -- the worker die, `cat` drains the pipe, so this process gets no SIGPIPE and can report it.
        local line = "exec 3<&0; { " .. table.concat(cmd, " ") .. "; cat >/dev/null; } 0<&3 3<&- >/dev/null 2>"
            .. shell_quote(w.log) .. " &"
        w.pipe = assert(io.popen(line, "w"))
        w.pipe:setvbuf("full", 65536)
        workers[i] = w
    end
    local cur = 1
    local S = { dir = dir, workers = workers }
    local function describe_death(w)
        return cli.redact(read_all(w.log):match("[^\n]+") or "(empty)")
    end

    local function check_alive(w)
        local st = writer.read_status(w.status)
        if st and not st.done and not pid_alive(st.pid) then
            errors.raise(1, "CliError", "a writer process died; its log: " .. describe_death(w)
                .. " -- the import is idempotent: run it again")
        end
    end

    local function push(w)
        if w.nbuf == 0 then return end
        check_alive(w)
        w.pipe:write(table.concat(w.buf))
        w.buf, w.nbuf = {}, 0
    end

    function S.send(_, line, items, check)
        local w = workers[cur]
        w.nbuf = w.nbuf + 1
        w.buf[w.nbuf] = writer.encode_record(line, items, check)
        if w.nbuf >= RECORDS_PER_SEND then
            push(w)
            cur = cur % n + 1
        end
    end

    function S.poll()
        local t = { records = 0, items = 0, skipped = 0, failed = 0, cpu = 0, requests = 0, retries = 0 }
        local all_done = true
        for _, w in ipairs(workers) do
            local st = writer.read_status(w.status) or w.last
            if st then
                w.last = st
                for k in pairs(t) do t[k] = t[k] + (st[k] or 0) end
                if not st.done then all_done = false end
                w.dead = not st.done and not pid_alive(st.pid)
            else
                all_done = false
            end
        end
        return t, all_done
    end

    function S.finish(_, on_wait)
        for _, w in ipairs(workers) do
            push(w)
            w.pipe:close()
        end
        local t, done
        local waited = 0
        while true do
            t, done = S.poll()
            if done then break end
            for _, w in ipairs(workers) do
                if w.dead then
                    errors.raise(1, "CliError", "a writer process died; its log: " .. describe_death(w)
                        .. " -- the import is idempotent: run it again")
                end
                if not w.last then
                    waited = waited + 1
                    if waited > 600 then -- 60 s without a status file: it never started
                        errors.raise(1, "CliError", "a writer process did not start: " .. describe_death(w))
                    end
                end
            end
            if on_wait then on_wait(t) end
            core.sleep(0.1)
        end
        S.results()
        t.processes = n
        return t
    end

    -- the skipped and failed lines the writers reported
    function S.results()
        for _, w in ipairs(workers) do
            local f = io.open(w.results, "r")
            if f then
                for l in f:lines() do
                    local kind, line, reason = l:match("^(%a+)\t(%d+)\t(.*)$")
                    if kind then on_problem(tonumber(line), kind == "skip" and "skipped" or "failed", reason) end
                end
                f:close()
            end
        end
    end

    -- abort(): the import was interrupted. Every writer stops before its next request (the stop
    -- file) and at once if busy (SIGINT, which the interpreter turns into an error after the
    -- current C call); each then writes its final status. Waits for them (5 s at most), then
    -- returns the totals of what they confirmed, as finish does; `stopped` is false when a writer
    -- did not confirm in time.
    function S.abort()
        write_file(stop, "")
        local pids = {}
        for _, w in ipairs(workers) do
            local st = writer.read_status(w.status)
            if st and not st.done and st.pid and st.pid > 0 then pids[#pids + 1] = tostring(math.floor(st.pid)) end
        end
        if #pids > 0 then os.execute("kill -INT " .. table.concat(pids, " ") .. " 2>/dev/null") end
        for _, w in ipairs(workers) do pcall(w.pipe.close, w.pipe) end -- EOF for the idle ones
        local t, done, all_stopped
        local deadline = core.now() + 5
        repeat
            t, done = S.poll()
            all_stopped = done
            if not done then
                all_stopped = true
                for _, w in ipairs(workers) do
                    if not (w.last and (w.last.done or w.dead)) then all_stopped = false end
                end
            end
            if all_stopped then break end
            core.sleep(0.05)
        until core.now() > deadline
        S.stopped = all_stopped
        S.results()
        t.processes = n
        return t
    end

    function S.cleanup()
        for _, w in ipairs(workers) do
            os.remove(w.status)
            os.remove(w.results)
            os.remove(w.log)
        end
        if endpoint_file then os.remove(endpoint_file) end
        -- a writer that never reported may still start: it must find the stop file
        if S.stopped ~= false then
            os.remove(stop)
            os.remove(dir)
        end
    end
    return S
end

-- import: the subcommand ------------------------------------------------------------------------

local function json_summary(s)
    local keys = {}
    for k in pairs(s) do keys[#keys + 1] = k end
    table.sort(keys)
    local parts = {}
    for _, k in ipairs(keys) do
        local v = s[k]
        if type(v) ~= "table" then parts[#parts + 1] = core.json_encode(k) .. ":" .. core.json_encode(v) end
    end
    local probs = {}
    for i, p in ipairs(s.problems or {}) do
        probs[i] = core.json_encode({ line = p.line, status = p.status, reason = p.reason })
    end
    parts[#parts + 1] = "\"problems\":[" .. table.concat(probs, ",") .. "]"
    return "{" .. table.concat(parts, ",") .. "}"
end

function _M.run(cli, opts, pos)
    local path = pos[1]
    local parallel = args.integer(opts, "parallel", 1, 32)
    local input
    if path == "-" then
        input = io.stdin
    else
        local f, err = io.open(path, "rb")
        if not f then cli.fail("cannot open %s", tostring(err)) end
        input = f
    end
    local total = path ~= "-" and count_lines(path) or nil
    local tbl = cli.table_name(opts)
    parallel = parallel or DEFAULT_PARALLEL
    local client
    if not opts.dry_run then
        client = cli.client(opts)
        client:call("DescribeTable", { TableName = tbl }) -- a missing table or endpoint fails here, once
    end

    local t0, c0 = core.now(), os.clock()
    local now_ms = math.floor(t0 * 1000)
    local builder = records.builder({ table = tbl, now_ms = now_ms })
    local ledger = records.ledger()
    local problems = {}
    local local_skips = 0
    local function on_problem(line, status, reason)
        problems[#problems + 1] = { line = line, status = status, reason = cli.redact(reason) }
    end
    local function skip(line, reason)
        local_skips = local_skips + 1
        on_problem(line, "skipped", reason)
    end

    local sink
    local lines_hint = total or math.huge
    if parallel > 1 and not opts.dry_run then
        local wanted = parallel
        parallel = math.max(1, math.min(parallel, math.ceil(lines_hint / LINES_PER_WRITER)))
        if opts.parallel and parallel < wanted and not opts.quiet then
            io.stderr:write(string.format("import: --parallel %d: %s for %d line%s (one per %d lines; starting a "
                .. "writer costs more than a small file gains)\n", wanted,
                parallel == 1 and "writing from this process" or (parallel .. " writer processes"), total,
                total == 1 and "" or "s", LINES_PER_WRITER))
        end
    end
    if opts.dry_run then
        local n, items = 0, 0
        sink = {
            send = function(_, _, its)
                n = n + 1
                items = items + #its
            end,
            poll = function() return { records = n, items = items, skipped = 0, failed = 0 } end,
            finish = function() return { records = n, items = items, skipped = 0, failed = 0, cpu = 0, requests = 0,
                retries = 0, processes = 1 } end,
        }
    elseif parallel == 1 then
        sink = local_sink(cli, opts, on_problem)
    else
        sink = parallel_sink(cli, opts, parallel, on_problem)
    end

    -- tenants without any item when the import starts: their guards cannot belong to anyone else
    local fresh = {}
    local function is_fresh(t)
        local f = fresh[t]
        if f == nil then
            f = false
            if client and not opts.no_check then
                local r = client:call("Query", { TableName = tbl, KeyConditionExpression = "#pk = :pk",
                    ExpressionAttributeNames = { ["#pk"] = "PK" },
                    ExpressionAttributeValues = { [":pk"] = schema.keys.tenant_partition(t) },
                    ConsistentRead = true, Limit = 1, ProjectionExpression = "#pk" })
                f = #(r.Items or {}) == 0
            end
            fresh[t] = f
        end
        return f
    end
    local function needs_check(t, items)
        if opts.no_check then return false end
        for _, it in ipairs(items) do
            if records.GLOBAL[it.entityType] then return true end
        end
        return not is_fresh(t)
    end

    local bar = progress.new({ label = "import", unit = "records", total = total, quiet = opts.quiet or opts.json })
    local function show(st, force)
        local done = local_skips + st.records + st.skipped + st.failed
        bar:update(done, string.format("skipped %d  failed %d", local_skips + st.skipped, st.failed), force)
    end

    local lines_read = 0
    local ok, err = pcall(function()
        local now_s = math.floor(t0)
        local deferred = {}
        local last_poll = 0
        local n = 0
        for text in input:lines() do
            n = n + 1
            lines_read = n
            if n == 1 and text:sub(1, 3) == "\239\187\191" then text = text:sub(4) end -- UTF-8 BOM
            if text:find("%S") then
                local p = records.parse(text)
                if p.skip then
                    skip(n, p.skip)
                else
                    local bok, items, linked = pcall(builder.items, builder, p.entity, p.tenant_id, p.record)
                    if not bok and args.is_interrupt(items) then error(items, 0) end
                    if not bok then
                        skip(n, type(items) == "table" and items.skip or tostring(items))
                    elseif not opts.keep_expired and records.expired(items, now_s) then
                        skip(n, string.format("%s %q: expired at %s (--keep-expired writes it anyway)", p.entity,
                            tostring(record_id(p.entity, p.record)), (util.iso(items[1].ttl * 1000):gsub("%.000Z$", "Z"))))
                    else
                        local dup = ledger:claim(items, n)
                        if dup then
                            skip(n, p.entity .. ": " .. dup)
                        elseif linked then
                            deferred[#deferred + 1] = { line = n, t = p.tenant_id, primary = linked, items = items,
                                check = needs_check(p.tenant_id, items) }
                        else
                            sink:send(n, items, needs_check(p.tenant_id, items))
                        end
                    end
                end
            end
            local now = core.now()
            if now - last_poll >= 0.2 then
                last_poll = now
                show((sink:poll()))
            end
        end

        -- linked users: their primary must be in the file or in the table
        local marks, need = {}, {}
        for _, d in ipairs(deferred) do
            local k = schema.keys.user(d.t, d.primary)
            d.key = k.PK .. "\0" .. k.SK
            if not ledger:line_of(d.key) then need[#need + 1] = d end
        end
        local in_table = {}
        if #need > 0 and client then
            local ks, seen = {}, {}
            for _, d in ipairs(need) do
                if not seen[d.key] then
                    seen[d.key] = true
                    ks[#ks + 1] = schema.keys.user(d.t, d.primary)
                end
            end
            local got = client:batch_get(tbl, ks, { ConsistentRead = true, ProjectionExpression = "PK, SK, entityType" })
            for _, it in ipairs(got) do
                if it.entityType == "USER" then in_table[it.PK .. "\0" .. it.SK] = true end
            end
        end
        for _, d in ipairs(deferred) do
            if ledger:line_of(d.key) or in_table[d.key] or not client then
                sink:send(d.line, d.items, d.check)
                local m = marks[d.key]
                if not m then
                    m = { t = d.t, primary = d.primary, lines = {} }
                    marks[d.key] = m
                    marks[#marks + 1] = m
                end
                m.lines[#m.lines + 1] = d.line
            else
                skip(d.line, string.format("users: linked_to: no user %q in tenant %q (neither in the file nor in the table)",
                    d.primary, d.t))
            end
        end

        local totals = sink:finish(function(st) show(st) end)
        show(totals)

        -- as users.create does: mark each primary that has linked users (after its own write)
        local marked_failed = 0
        if client then
            for _, m in ipairs(marks) do
                local k = schema.keys.user(m.t, m.primary)
                local mok, merr = pcall(client.call, client, "UpdateItem", {
                    TableName = tbl, Key = k, UpdateExpression = "SET #h = :t",
                    ConditionExpression = "attribute_exists(#pk) AND #e = :u",
                    ExpressionAttributeNames = { ["#h"] = "hasLinked", ["#pk"] = "PK", ["#e"] = "entityType" },
                    ExpressionAttributeValues = { [":t"] = true, [":u"] = "USER" },
                }, { idempotent = true }) -- setting a flag twice is setting it once
                if not mok and args.is_interrupt(merr) then error(merr, 0) end
                if not mok then
                    for _, line in ipairs(m.lines) do
                        marked_failed = marked_failed + 1
                        on_problem(line, "failed", string.format("users: could not mark primary %q as linked: %s", m.primary,
                            errors.is(merr, "ConditionalCheckFailedException") and "it was not written" or tostring(merr)))
                    end
                end
            end
        end
        totals.lines = n
        totals.marked_failed = marked_failed
        return totals
    end)
    local interrupted = not ok and args.is_interrupt(err)
    if interrupted then
        -- Ctrl-C: stop every writer now and report what they confirmed
        local aok, t = pcall(function()
            if sink.abort then return sink.abort() end
            local st = sink:poll()
            return { records = st.records, items = st.items, skipped = st.skipped, failed = st.failed, cpu = 0,
                requests = sink.client and sink.client.stats.requests or 0,
                retries = sink.client and sink.client.stats.retries or 0, processes = 1 }
        end)
        if aok then
            ok, err = true, t
            t.lines = lines_read
            t.marked_failed = 0
        end
    end
    if input ~= io.stdin then input:close() end
    if sink.cleanup then pcall(sink.cleanup) end
    if not ok then error(err, 0) end
    local totals = err
    local elapsed = core.now() - t0
    bar:finish(nil)

    table.sort(problems, function(a, b)
        if a.line ~= b.line then return a.line < b.line end
        return a.status < b.status
    end)
    local skipped = local_skips + totals.skipped
    local failed = totals.failed + totals.marked_failed
    local cpu = (os.clock() - c0) + (totals.cpu or 0)
    local processed = totals.records + skipped + totals.failed
    local summary = {
        file = path, table = tbl, endpoint = cli.safe_endpoint(opts, client),
        dry_run = opts.dry_run and true or false, interrupted = interrupted or nil,
        interrupted_at_line = interrupted and totals.lines or nil,
        written = totals.records, items = totals.items, skipped = skipped, failed = failed,
        seconds = elapsed, records_per_second = elapsed > 0 and totals.records / elapsed or 0,
        cpu_seconds = cpu, cpu_us_per_record = processed > 0 and cpu / processed * 1e6 or 0,
        processes = totals.processes, requests = (totals.requests or 0) + (client and client.stats.requests or 0),
        retries = (totals.retries or 0) + (client and client.stats.retries or 0),
        problems = problems,
    }
    if opts.report then
        local f, ferr = io.open(opts.report, "w")
        if not f then cli.fail("cannot write the report: %s", tostring(ferr)) end
        for _, p in ipairs(problems) do
            f:write(core.json_encode({ line = p.line, status = p.status, reason = p.reason }), "\n")
        end
        f:close()
    end
    if opts.json then
        io.stdout:write(json_summary(summary), "\n")
    else
        local out = {}
        out[#out + 1] = string.format("import %s -> table %s at %s%s", path, tbl, summary.endpoint,
            opts.dry_run and " (dry run: nothing written)" or "")
        if interrupted then
            out[#out + 1] = string.format("  INTERRUPTED after reading %d line%s: the rest was not written; a batch in "
                .. "flight when it stopped may have landed too. Run the same import again to finish (it is idempotent).",
                totals.lines, totals.lines == 1 and "" or "s")
        end
        out[#out + 1] = string.format("  %s: %d record%s (%d item%s)", opts.dry_run and "would write" or "written",
            totals.records, totals.records == 1 and "" or "s", totals.items, totals.items == 1 and "" or "s")
        out[#out + 1] = string.format("  skipped: %d", skipped)
        out[#out + 1] = string.format("  failed:  %d", failed)
        local shown = 0
        for _, p in ipairs(problems) do
            shown = shown + 1
            if shown > 50 then
                out[#out + 1] = string.format("  ... and %d more%s", #problems - 50,
                    opts.report and (" (all in " .. opts.report .. ")") or " (--report FILE lists all)")
                break
            end
            out[#out + 1] = string.format("  line %d %s: %s", p.line, p.status, p.reason)
        end
        out[#out + 1] = string.format("  %.2f s, %s records/s, %d request(s), %d retries; importer CPU %.1f us/record (%s)",
            elapsed, progress.thousands(summary.records_per_second), summary.requests, summary.retries,
            summary.cpu_us_per_record, summary.processes == 1 and "1 process"
                or string.format("reader + %d writer processes", summary.processes))
        io.stdout:write(table.concat(out, "\n"), "\n")
    end
    if interrupted then return 130 end
    if failed > 0 then return 1 end
    if skipped > 0 then return 3 end
    return 0
end

-- `_import-worker` (internal): the writer process fed by `import --parallel N`.
_M.worker_command = {
    spec = {
        usage = "_import-worker --status FILE --results FILE [--stop FILE] [--endpoint-file FILE] [--no-check]"
            .. "   (internal: started by import)",
        options = { { "--status", "FILE", "status file" }, { "--results", "FILE", "results file" },
            { "--stop", "FILE", "stop before the next request once FILE exists" },
            { "--endpoint-file", "FILE", "read --endpoint from FILE" },
            { "--no-check", nil, "no guard reads" } },
    },
    run = function(cli, opts)
        if not opts.status or not opts.results then args.usage_error("--status and --results are required") end
        if opts.endpoint_file then
            local f = io.open(opts.endpoint_file, "r")
            opts.endpoint = f and f:read("a") or nil
            if f then f:close() end
            if not opts.endpoint then cli.fail("cannot read %s", opts.endpoint_file) end
        end
        local _, interrupted = writer.worker(function() return cli.client(opts) end, cli.table_name(opts), {
            check = not opts.no_check, status = opts.status, results = opts.results, stop = opts.stop })
        return interrupted and 130 or 0
    end,
}

return _M
