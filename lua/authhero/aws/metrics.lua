-- Prometheus metrics from the client's on_request hook:
--   local m = require("authhero.aws.metrics").new([opts])
--   local client = aws.client.new({ on_request = m.observe })   -- m.observe: a plain function
--   m:render()   -- the text exposition format 0.0.4 (Content-Type: text/plain; version=0.0.4)
-- Per operation and table (label `table`: the event's, "" when the call names none): requests
-- (every attempt), errors by code, retries (attempts after the first), the latency histogram in
-- seconds, consumed capacity units (read and write), request and reply body bytes.
-- opts (all optional): prefix ("authhero_dynamodb"), buckets (upper bounds in seconds, ascending;
-- default DEFAULT_BUCKETS), shared_dict (the name of an OpenResty lua_shared_dict: counters live
-- there, so every worker's requests count and any worker renders the whole nginx instance; without
-- it, they are this process's). A shared dict that is full drops counts (m.dropped says how many).
local errors = require "authhero.aws.errors"

local _M = {}
local mt = { __index = _M }

_M.DEFAULT_BUCKETS = { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 }

-- ConsumedCapacity is read as client.stats reads it (client.each_capacity).
local each_capacity = require("authhero.aws.client").each_capacity

local SEP = "\31" -- between the fields of a counter's key; removed from label values
local format, concat, floor = string.format, table.concat, math.floor

local function field(v)
    v = v == nil and "" or tostring(v)
    if v:find(SEP, 1, true) then v = v:gsub(SEP, "") end
    return v
end

-- A number as Prometheus reads it (Go's ParseFloat): integers plainly, others shortest exact.
local function num(v)
    if v == floor(v) and v > -2 ^ 53 and v < 2 ^ 53 then return format("%d", v) end
    if v ~= v then return "NaN" end
    if v == math.huge then return "+Inf" end
    if v == -math.huge then return "-Inf" end
    local s = format("%.15g", v)
    if tonumber(s) ~= v then s = format("%.17g", v) end
    return s
end
_M._num = num

-- A label value: backslash, double quote and line feed escaped (the format's three).
local function label(v)
    return (v:gsub('[\\"\n]', { ["\\"] = "\\\\", ['"'] = '\\"', ["\n"] = "\\n" }))
end
_M._label = label

local function check_buckets(b)
    if type(b) ~= "table" or #b == 0 then errors.validation("buckets must be a non-empty list of numbers") end
    local out = {}
    for i, v in ipairs(b) do
        if type(v) ~= "number" or v ~= v or v <= 0 or v == math.huge or (i > 1 and v <= b[i - 1]) then
            errors.validation("buckets must be positive finite numbers in ascending order (bucket %d)", i)
        end
        out[i] = v
    end
    return out
end

-- Adds v to the counter key: store(key, v).
local function local_store(data)
    return function(key, v) data[key] = (data[key] or 0) + v end
end

local function dict_store(self, dict)
    return function(key, v)
        local ok = dict:incr(key, v, 0)
        if not ok then self.dropped = self.dropped + 1 end
    end
end

-- new([opts]) -> m (see the top).
function _M.new(opts)
    if opts ~= nil and type(opts) ~= "table" then errors.validation("metrics.new: opts must be a table") end
    opts = opts or {}
    local prefix = opts.prefix or "authhero_dynamodb"
    if type(prefix) ~= "string" or not prefix:match("^[a-zA-Z_:][a-zA-Z0-9_:]*$") then
        errors.validation("prefix must be a metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)")
    end
    local buckets = check_buckets(opts.buckets or _M.DEFAULT_BUCKETS)
    local self = setmetatable({ prefix = prefix, buckets = buckets, dropped = 0 }, mt)
    local store
    if opts.shared_dict ~= nil then
        local name = opts.shared_dict
        local dict = type(name) == "string" and type(ngx) == "table" and ngx.shared and ngx.shared[name]
        if not dict then
            errors.validation("shared_dict %s: no such lua_shared_dict (declare it in nginx.conf's http block)",
                tostring(name))
        end
        self._dict = dict
        store = dict_store(self, dict)
    else
        self._data = {}
        store = local_store(self._data)
    end
    local nb = #buckets

    local function add_units(pfx, kind, units)
        if units > 0 then store("c" .. SEP .. pfx .. SEP .. kind, units) end
    end
    local function capacity(pfx, op, cc) each_capacity(op, cc, add_units, pfx) end

    -- observe(event): the on_request hook. Counts one request; anything it does not understand in
    -- the event is skipped, never raised.
    function self.observe(ev)
        if type(ev) ~= "table" then return end
        local op = field(ev.op)
        local pfx = op .. SEP .. field(ev.table)
        store("r" .. SEP .. pfx, 1)
        if ev.code ~= nil then store("e" .. SEP .. pfx .. SEP .. field(ev.code), 1) end
        if type(ev.attempt) == "number" and ev.attempt > 1 then store("t" .. SEP .. pfx, 1) end
        local ms = ev.latency_ms
        if type(ms) == "number" and ms >= 0 then
            local s = ms / 1000
            local i = 1
            while i <= nb and s > buckets[i] do i = i + 1 end
            store("b" .. SEP .. pfx .. SEP .. i, 1) -- per bucket; render() makes them cumulative
            store("s" .. SEP .. pfx, s)
        end
        if ev.consumed_capacity ~= nil then capacity(pfx, op, ev.consumed_capacity) end
        if type(ev.bytes_sent) == "number" and ev.bytes_sent > 0 then store("o" .. SEP .. pfx, ev.bytes_sent) end
        if type(ev.bytes_received) == "number" and ev.bytes_received > 0 then
            store("i" .. SEP .. pfx, ev.bytes_received)
        end
    end
    return self
end

-- { [key] = value } of every counter.
local function snapshot(self)
    if not self._dict then return self._data end
    local out = {}
    for _, k in ipairs(self._dict:get_keys(0)) do
        local v = self._dict:get(k)
        if type(v) == "number" then out[k] = v end
    end
    return out
end

local FAMILIES = {
    -- kind, name suffix, type, help
    { "r", "_requests_total", "counter", "DynamoDB requests sent (every attempt), by operation and table." },
    { "e", "_errors_total", "counter", "DynamoDB requests that failed, by operation, table and error code." },
    { "t", "_retries_total", "counter", "DynamoDB requests that were a retry (attempt > 1)." },
    { "b", "_request_duration_seconds", "histogram", "DynamoDB request latency (one attempt), in seconds." },
    { "c", "_consumed_capacity_units_total", "counter", "DynamoDB consumed capacity units, by type (read or write)." },
    { "o", "_sent_bytes_total", "counter", "DynamoDB request body bytes sent." },
    { "i", "_received_bytes_total", "counter", "DynamoDB reply body bytes received." },
}

local function split(key)
    local parts = {}
    for p in (key .. SEP):gmatch("([^" .. SEP .. "]*)" .. SEP) do parts[#parts + 1] = p end
    return parts
end

local function labels(op, tbl, extra_name, extra_value)
    local s = 'op="' .. label(op) .. '",table="' .. label(tbl) .. '"'
    if extra_name then s = s .. "," .. extra_name .. '="' .. label(extra_value) .. '"' end
    return s
end

-- render() -> the text exposition format (version 0.0.4), families in a fixed order, series sorted.
function _M.render(self)
    local data = snapshot(self)
    local by = { r = {}, e = {}, t = {}, b = {}, s = {}, c = {}, o = {}, i = {} }
    for k, v in pairs(data) do
        local p = split(k)
        local kind = p[1]
        if by[kind] and #p >= 3 then
            local series = p[2] .. SEP .. p[3]
            if kind == "e" or kind == "c" or kind == "b" then
                local t = by[kind][series] or {}
                by[kind][series] = t
                t[p[4] or ""] = (t[p[4] or ""] or 0) + v
            else
                by[kind][series] = (by[kind][series] or 0) + v
            end
        end
    end
    local out, nb, prefix = {}, #self.buckets, self.prefix
    local function line(s) out[#out + 1] = s end
    for _, f in ipairs(FAMILIES) do
        local kind, name = f[1], prefix .. f[2]
        line("# HELP " .. name .. " " .. f[4])
        line("# TYPE " .. name .. " " .. f[3])
        local keys = {}
        for series in pairs(by[kind]) do keys[#keys + 1] = series end
        table.sort(keys)
        for _, series in ipairs(keys) do
            local op, tbl = series:match("^(.-)" .. SEP .. "(.*)$")
            local v = by[kind][series]
            if kind == "b" then
                local acc, base = 0, labels(op, tbl)
                for i = 1, nb do
                    acc = acc + (v[tostring(i)] or 0)
                    line(format('%s_bucket{%s,le="%s"} %s', name, base, num(self.buckets[i]), num(acc)))
                end
                acc = acc + (v[tostring(nb + 1)] or 0)
                line(format('%s_bucket{%s,le="+Inf"} %s', name, base, num(acc)))
                line(format("%s_sum{%s} %s", name, base, num(by.s[series] or 0)))
                line(format("%s_count{%s} %s", name, base, num(acc)))
            elseif kind == "e" or kind == "c" then
                local subs = {}
                for sub in pairs(v) do subs[#subs + 1] = sub end
                table.sort(subs)
                for _, sub in ipairs(subs) do
                    line(format("%s{%s} %s", name, labels(op, tbl, kind == "e" and "code" or "type", sub), num(v[sub])))
                end
            else
                line(format("%s{%s} %s", name, labels(op, tbl), num(v)))
            end
        end
    end
    return concat(out, "\n") .. "\n"
end

-- The Content-Type to serve render()'s text with.
_M.CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

-- reset(): forgets every count (the shared dict's too).
function _M.reset(self)
    if self._dict then
        self._dict:flush_all()
    else
        for k in pairs(self._data) do self._data[k] = nil end
    end
end

return _M
