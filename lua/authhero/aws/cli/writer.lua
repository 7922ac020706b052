-- The import's write side: records (each a list of complete items) go out in BatchWriteItem calls
-- of 25 items, UnprocessedItems retried by client:batch_write; a record counts as written when all
-- of its items are. Before writing, the guard and pointer items (records.OWNERS) of records flagged
-- for it are read back in one BatchGetItem per group: a record whose unique value belongs to
-- someone else in the table is skipped, never overwritten (and a stored user's hasLinked marker is
-- kept). Also the worker process loop (`_import-worker`) that runs a writer
-- over records piped in by the importer. Does not parse import files or decide what a record is.
local args = require "authhero.aws.cli.args"
local core = require "authhero.aws.core"
local errors = require "authhero.aws.errors"
local records = require "authhero.aws.cli.records"

local _M = {}
local mt = { __index = _M }

local MAX_BATCH = 25 -- BatchWriteItem's limit
local DEFAULT_GROUP = 100 -- items per ownership check (BatchGetItem takes 100 keys)

local function one_line(s)
    return (tostring(s):gsub("[\t\r\n]+", " "))
end

local function reason_of(err)
    if errors.is(err) then return tostring(err) end
    return tostring(err)
end

-- new(client, table_name, { check = true, group = 100, on_skip = f(line, reason),
--                           on_fail = f(line, reason), stop = f() -> true to stop })
-- stop is asked before every BatchWriteItem and BatchGetItem: when it says true, the writer raises
-- the interpreter's "interrupted!" error (as Ctrl-C does) instead of sending.
function _M.new(client, table_name, opts)
    opts = opts or {}
    return setmetatable({
        client = client,
        table = table_name,
        check = opts.check ~= false,
        group = opts.group or DEFAULT_GROUP,
        on_skip = opts.on_skip or function() end,
        on_fail = opts.on_fail or function() end,
        stop = opts.stop,
        pending = {},
        npending = 0,
        stats = { records = 0, items = 0, skipped = 0, failed = 0 },
    }, mt)
end

-- add(line, items [, check]): queues a record; writes when a group is full. check = false: its
-- guard/pointer items need no read-back (their tenant was empty when the import began).
function _M.add(self, line, items, check)
    self.pending[#self.pending + 1] = { line = line, items = items, check = check ~= false }
    self.npending = self.npending + #items
    if self.npending >= self.group then self:flush() end
end

function _M._skip(self, rec, reason)
    self.stats.skipped = self.stats.skipped + 1
    self.on_skip(rec.line, one_line(reason))
end

function _M._fail(self, rec, reason)
    self.stats.failed = self.stats.failed + 1
    self.on_fail(rec.line, one_line(reason))
end

_M.INTERRUPTED = "interrupted!"

-- Raises "interrupted!" when the stop predicate says so; and re-raises Ctrl-C's error, which a
-- pcall around a request must not turn into a failed record.
function _M._check_stop(self, err)
    if err ~= nil and args.is_interrupt(err) then error(err, 0) end
    if self.stop and self.stop() then error(_M.INTERRUPTED, 0) end
end

-- Records whose guard/pointer items are free or already theirs; the others are skipped.
function _M._owned(self, recs)
    local keys, wanted = {}, {}
    for _, r in ipairs(recs) do
        for _, it in ipairs(r.check and r.items or {}) do
            -- USER too: a user that others were linked to keeps its marker when rewritten
            if records.OWNERS[it.entityType] or it.entityType == "USER" then
                local k = records.key(it)
                if not wanted[k] then
                    wanted[k] = true
                    keys[#keys + 1] = { PK = it.PK, SK = it.SK }
                end
            end
        end
    end
    if #keys == 0 then return recs end
    self:_check_stop()
    local ok, got, left = pcall(self.client.batch_get, self.client, self.table, keys, { ConsistentRead = true })
    if not ok then
        self:_check_stop(got)
        for _, r in ipairs(recs) do self:_fail(r, "could not read guard items: " .. reason_of(got)) end
        return {}
    end
    local unread = {}
    for _, k in ipairs(left) do unread[records.key(k)] = true end
    local stored = {}
    for _, it in ipairs(got) do stored[records.key(it)] = it end
    local out = {}
    for _, r in ipairs(recs) do
        local verdict, why = "ok", nil
        for _, it in ipairs(r.check and r.items or {}) do
            if it.entityType == "USER" then
                local st = stored[records.key(it)]
                if st and st.hasLinked == true then it.hasLinked = true end
            elseif records.OWNERS[it.entityType] then
                local k = records.key(it)
                if unread[k] then
                    verdict, why = "fail", "could not read " .. records.describe(it) .. " (unprocessed); re-run the import"
                    break
                end
                why = records.conflict(it, stored[k])
                if why then
                    verdict = "skip"
                    break
                end
            end
        end
        if verdict == "ok" then
            out[#out + 1] = r
        elseif verdict == "skip" then
            self:_skip(r, why)
        else
            self:_fail(r, why)
        end
    end
    return out
end

-- One BatchWriteItem (retries inside client:batch_write). state[record] counts the record's items
-- not yet confirmed; a record is written when it reaches 0, failed (false) when any item is not.
function _M._send(self, chunk, owners, state)
    if #chunk == 0 then return end
    self:_check_stop()
    local ok, left = pcall(self.client.batch_write, self.client, self.table, chunk)
    local lost = {}
    if not ok then
        self:_check_stop(left)
        local why = reason_of(left)
        for _, r in ipairs(owners) do
            if state[r] then
                state[r] = false
                self:_fail(r, why)
            end
        end
        return
    end
    if #left > 0 then
        local by_key = {}
        for i, req in ipairs(chunk) do by_key[records.key(req.PutRequest.Item)] = owners[i] end
        for _, req in ipairs(left) do
            local it = req.PutRequest and req.PutRequest.Item
            local r = it and by_key[records.key(it)]
            if r then lost[r] = true end
        end
    end
    for _, r in ipairs(owners) do
        local n = state[r]
        if n then
            if lost[r] then
                state[r] = false
                self:_fail(r, "unprocessed after retries (throttled); re-run the import to write it")
            else
                n = n - 1
                state[r] = n
                if n == 0 then
                    self.stats.records = self.stats.records + 1
                    self.stats.items = self.stats.items + #r.items
                end
            end
        end
    end
end

-- flush(): writes everything queued, 25 items per call (a record's items may span two calls; a
-- record is written when all of its items are).
function _M.flush(self)
    local recs = self.pending
    self.pending, self.npending = {}, 0
    if #recs == 0 then return end
    if self.check then recs = self:_owned(recs) end
    local chunk, owners = {}, {}
    local state = {} -- record -> items still unconfirmed; false once failed
    for _, r in ipairs(recs) do
        state[r] = #r.items
        for _, it in ipairs(r.items) do
            chunk[#chunk + 1] = { PutRequest = { Item = it } }
            owners[#owners + 1] = r
            if #chunk == MAX_BATCH then
                self:_send(chunk, owners, state)
                chunk, owners = {}, {}
            end
        end
    end
    self:_send(chunk, owners, state)
end

-- worker protocol --------------------------------------------------------------------------------

-- One record per line: "<line number>\t<c or ->\t<item>\t<item>...", c when its guard items need
-- the read-back, each item as DynamoDB JSON (which never holds a raw tab or newline).
function _M.encode_record(line, items, check)
    local parts = { tostring(line), check == false and "-" or "c" }
    for i, it in ipairs(items) do parts[i + 2] = core.marshal_item(it) end
    return table.concat(parts, "\t") .. "\n"
end

function _M.decode_record(text)
    local line, flag, rest = text:match("^(%d+)\t([c-])\t(.*)$")
    if not line then return nil end
    local items = {}
    for part in rest:gmatch("[^\t]+") do items[#items + 1] = core.unmarshal_item(part) end
    return tonumber(line), items, flag == "c"
end

-- Status file: one line "records items skipped failed cpu_seconds done pid requests retries",
-- replaced atomically (written aside, then renamed), so a reader never sees half of it.
local function write_status(path, w, done, client)
    local tmp = path .. ".tmp"
    local f = io.open(tmp, "w")
    if not f then return end
    local s = w.stats
    local pid = _M.pid or 0
    f:write(string.format("%d %d %d %d %.6f %d %d %d %d\n", s.records, s.items, s.skipped, s.failed, os.clock(),
        done and 1 or 0, pid, client and client.stats.requests or 0, client and client.stats.retries or 0))
    f:close()
    os.rename(tmp, path)
end

function _M.read_status(path)
    local f = io.open(path, "r")
    if not f then return nil end
    local line = f:read("l")
    f:close()
    if not line then return nil end
    local r, i, s, fl, cpu, done, pid, req, ret = line:match(
        "^(%d+) (%d+) (%d+) (%d+) ([%d.]+) (%d) (%d+) (%d+) (%d+)$")
    if not r then return nil end
    return { records = tonumber(r), items = tonumber(i), skipped = tonumber(s), failed = tonumber(fl),
        cpu = tonumber(cpu), done = done == "1", pid = tonumber(pid), requests = tonumber(req),
        retries = tonumber(ret) }
end

local function my_pid()
    local f = io.open("/proc/self/stat", "r") -- the shell's $PPID would be the popen shell, gone by now
    if f then
        local s = f:read("l") or ""
        f:close()
        local pid = tonumber(s:match("^(%d+)"))
        if pid then return pid end
    end
    return 0
end

-- worker(make_client, table_name, { check, status = path, results = path, stop = path })
-- -> stats, interrupted. Reads records on stdin until EOF and writes them. Never exits early on a
-- failure: if the client cannot be made, every record is reported failed, so the importer's pipe
-- never breaks. Stops at once, without writing what is still queued, on Ctrl-C (SIGINT: the
-- importer sends one when it is interrupted) or when the file `stop` exists (checked before every
-- request); either way the final status (done, with what was written) is written first.
function _M.worker(make_client, table_name, opts)
    _M.pid = my_pid()
    local results = assert(io.open(opts.results, "a"))
    results:setvbuf("full")
    local function report(kind)
        return function(line, reason) results:write(kind, "\t", line, "\t", reason, "\n") end
    end
    local stop
    if opts.stop then
        stop = function()
            local f = io.open(opts.stop, "r")
            if f then f:close() end
            return f ~= nil
        end
    end
    local ok, client = pcall(make_client)
    local w = _M.new(ok and client or nil, table_name, { check = opts.check, on_skip = report("skip"),
        on_fail = report("fail"), stop = stop })
    local broken = not ok and ("cannot create the DynamoDB client: " .. reason_of(client)) or nil
    write_status(opts.status, w, false, ok and client or nil)
    local run_ok, run_err = pcall(function()
        local last = core.now()
        for text in io.lines() do
            local line, items, check = _M.decode_record(text)
            if line then
                if broken then
                    w:_fail({ line = line }, broken)
                else
                    w:add(line, items, check)
                end
            end
            local now = core.now()
            if now - last >= 0.2 then
                last = now
                results:flush()
                write_status(opts.status, w, false, ok and client or nil)
            end
        end
        if not broken then
            local fok, err = pcall(w.flush, w)
            if not fok then
                w:_check_stop(err)
                report("fail")(0, "worker: " .. reason_of(err))
            end
        end
    end)
    local interrupted = not run_ok and args.is_interrupt(run_err)
    if not run_ok and not interrupted then error(run_err, 0) end
    results:close()
    write_status(opts.status, w, true, ok and client or nil)
    if ok and client.close then client:close() end
    return w.stats, interrupted
end

return _M
