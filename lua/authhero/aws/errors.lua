-- The one error object raised everywhere (C and Lua share its metatable, core.error_mt):
-- { status, code, message, retryable, request_id, cause }, tostring -> "Code (status): message".
-- Bugs in the caller's code (wrong argument types) are plain strings, not these.
local core = require "authhero.aws.core"

local _M = {}
local mt = core.error_mt

mt.__tostring = function(e)
    return string.format("%s (%s): %s", tostring(e.code), tostring(e.status), tostring(e.message))
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

return _M
