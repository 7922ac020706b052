-- The one error object raised everywhere (C and Lua share its metatable, core.error_mt):
-- { status, code, message, retryable, request_id, cause }, tostring -> "Code (status): message".
-- The client adds op, table, attempts, maybe_applied and gave_up ("attempts", "time", "quota",
-- "not idempotent", "deadline"), and tostring then says what failed and why it stopped:
-- "InternalServerError (500): ... (PutItem on authhero; gave up after 5 attempts; may have been applied)".
-- Bugs in the caller's code (wrong argument types) are plain strings, not these.
local core = require "authhero.aws.core"

local _M = {}
local mt = core.error_mt

local function plural(n, word)
    return n .. " " .. word .. (n == 1 and "" or "s")
end

-- "(op on table; how it ended)" for an error the client raised, else "".
local function context(e)
    local parts = {}
    if type(e.op) == "string" then
        parts[1] = type(e.table) == "string" and (e.op .. " on " .. e.table) or e.op
    end
    local n = type(e.attempts) == "number" and e.attempts or nil
    local g = e.gave_up
    if n and g == "attempts" then
        parts[#parts + 1] = "gave up after " .. plural(n, "attempt")
    elseif n and g == "time" then
        parts[#parts + 1] = string.format("gave up after %s in %.1f s (max_time_ms)", plural(n, "attempt"),
            (tonumber(e.elapsed_ms) or 0) / 1000)
    elseif n and g == "deadline" then
        parts[#parts + 1] = string.format("deadline passed after %s in %.3f s", plural(n, "attempt"),
            (tonumber(e.elapsed_ms) or 0) / 1000)
    elseif n and g == "quota" then
        parts[#parts + 1] = "gave up after " .. plural(n, "attempt") .. ": retry quota exhausted"
    elseif n and g == "not idempotent" then
        parts[#parts + 1] = "not re-sent after " .. plural(n, "attempt") .. ": the write is not idempotent"
    elseif n and n > 1 then
        parts[#parts + 1] = "after " .. plural(n, "attempt")
    end
    if e.maybe_applied then parts[#parts + 1] = "may have been applied" end
    if #parts == 0 then return "" end
    return " (" .. table.concat(parts, "; ") .. ")"
end

mt.__tostring = function(e)
    return string.format("%s (%s): %s%s", tostring(e.code), tostring(e.status), tostring(e.message), context(e))
end

_M.mt = mt

-- new(status, code, message [, fields]) -> error object (not raised).
function _M.new(status, code, message, fields)
    local e = { status = status or 0, code = code, message = message, retryable = false }
    if fields then
        for k, v in pairs(fields) do e[k] = v end
    end
    return setmetatable(e, mt)
end

-- raise(status, code, message [, fields]): does not return.
function _M.raise(status, code, message, fields)
    error(_M.new(status, code, message, fields), 0)
end

-- is(err [, code]) -> true when err is one of ours (and has that code).
function _M.is(err, code)
    return type(err) == "table" and getmetatable(err) == mt and (code == nil or err.code == code)
end

-- validation(fmt, ...): raises a ValidationError (400) before any request is sent.
function _M.validation(fmt, ...)
    error(_M.new(400, "ValidationError", string.format(fmt, ...)), 0)
end

-- not_implemented(fmt, ...): raises NotImplemented (501), for methods this adapter does not provide
-- (contract §7), before any request is sent.
function _M.not_implemented(fmt, ...)
    error(_M.new(501, "NotImplemented", string.format(fmt, ...)), 0)
end

return _M
