-- require "authhero.aws.safe": the same client and adapters, whose calls return nil, err instead of
-- raising (as cjson.safe is to cjson), for lua-resty style code. Nothing is implemented twice: one
-- generic wrapper (wrap) calls the real function under pcall, and the safe client and adapters are
-- views of the real ones, generated from them when made.
--
-- The rules (README "nil, err instead of errors"):
--   - a call that succeeds returns exactly what the real one returns: batch_get's items and
--     unprocessed keys both; a get that finds nothing returns nil and no err; remove's false (not
--     found) stays false. So tell a failure by err (the second value), not by a nil first value.
--   - a call that raises returns nil, err, err being the value raised: the library's error object
--     (aws.errors.is(err) is true; status, code, message, ...) for every condition the library
--     reports, and a plain string for a bug (a "bad argument #1 to 'call'" or an "attempt to index"
--     in the caller's or the library's code). A nil or false raised becomes a string, so err is never
--     nil or false on a failure.
--   - a function a call returns is an iterator (client:paginate's): it returns false, err for the
--     page that failed (false, not nil, so a `for` loop's body still sees it: check `if not page`),
--     then nil, err on every later call: a loop that ignores it ends, and the iterator called again
--     tells why.
--   - views wrap, they do not copy: view.raw is the real object, every other field is the real
--     object's (client.stats, region, ...), read at each access; functions come back wrapped.
--     Colon and dot calls both work. safe.raw(x) gives the real object of a view (x itself
--     otherwise); aws.create_adapters and safe.create_adapters take either.
--   - adapters.transaction(fn) hands fn the safe adapters; it returns fn's results, or nil, err when
--     fn raises.
local aws = require "authhero.aws"

local _M = {
    _VERSION = aws._VERSION,
}

local RAW = setmetatable({}, { __mode = "k" }) -- view -> the object it wraps

-- safe.raw(x) -> the object a safe view wraps, or x when x is not a view.
function _M.raw(x)
    return RAW[x] or x
end

local wrap

-- What a raised value becomes as err: itself, unless nil or false (a failure's err is always truthy).
local function reason(e)
    if e == nil or e == false then return "(error object is a " .. tostring(e) .. " value)" end
    return e
end

-- An iterator's results through wrap -> the generic for's convention above.
local function iterator(it)
    local call, failed = wrap(it), nil
    local function step(v, ...)
        if v == nil and select("#", ...) > 0 and (...) ~= nil then
            failed = ...
            return false, failed
        end
        return v, ...
    end
    return function(...)
        if failed ~= nil then return nil, failed end
        return step(call(...))
    end
end

local function finish(ok, ...)
    if not ok then return nil, reason((...)) end
    if type((...)) == "function" then return iterator((...)), select(2, ...) end
    return ...
end

-- wrap(fn [, view, real]) -> a function calling fn under pcall: fn's results, or nil, err. With view
-- and real: a first argument that is view (a colon call on it) is passed to fn as real.
function wrap(fn, view, real)
    if view == nil then
        return function(...) return finish(pcall(fn, ...)) end
    end
    return function(first, ...)
        if first == view then first = real end
        return finish(pcall(fn, first, ...))
    end
end

-- view(real [, eager]) -> a table that reads through to real, with every function it holds wrapped
-- (a colon call on the view calls the real one on real). Wrapped functions are made on first access
-- and kept per function; eager makes them at once for real's own fields (pairs sees them).
local function view(real, eager)
    if RAW[real] then return real end
    local v, made = { raw = real }, {}
    RAW[v] = real
    local function wrapped(fn)
        local w = made[fn]
        if not w then
            w = wrap(fn, v, real)
            made[fn] = w
        end
        return w
    end
    local mt = {
        __index = function(_, k)
            local x = real[k]
            if type(x) == "function" then return wrapped(x) end
            return x
        end,
        __newindex = function(_, k, x) real[k] = x end,
    }
    local rmt = getmetatable(real)
    if type(rmt) == "table" and rmt.__close then
        -- `local c <close> = safe.client.new{...}`: closes the real one (an error there is raised:
        -- what a __close returns is dropped)
        mt.__close = function() return rmt.__close(real) end
    end
    if eager then
        for k, x in pairs(real) do
            if type(x) == "function" then rawset(v, k, wrapped(x)) end
        end
    end
    return setmetatable(v, mt)
end

-- safe.wrap(fn) -> fn returning nil, err instead of raising; safe.wrap(object) -> its safe view
-- (for anything else of the library, e.g. safe.wrap(aws.schema.create_table)(client.raw, opts)).
function _M.wrap(x)
    if type(x) == "function" then return wrap(x) end
    if type(x) == "table" then return view(x) end
    error("bad argument #1 to 'wrap' (function or table expected, got " .. type(x) .. ")", 2)
end

-- safe.client.new(config) -> the safe view of aws.client.new(config), or nil, err (bad config).
local new_client = wrap(aws.client.new)
_M.client = {
    new = function(config)
        local c, err = new_client(config)
        if not c then return nil, err end
        return view(c)
    end,
}

-- The safe view of adapters: each adapter table (and any other table there, e.g. a cache object) a
-- view made eagerly, any other function wrapped, transaction handing fn this view.
local function safe_adapters(adapters)
    local s = {}
    RAW[s] = adapters
    s.raw = adapters
    for name, x in pairs(adapters) do
        if type(x) == "table" then
            s[name] = view(x, true)
        elseif type(x) == "function" then
            s[name] = wrap(x, s, adapters)
        else
            s[name] = x
        end
    end
    local transaction = adapters.transaction
    if type(transaction) == "function" then
        local call = wrap(transaction)
        s.transaction = function(fn, ...)
            if fn == s then fn = ... end
            if type(fn) == "function" then
                local user = fn
                fn = function() return user(s) end
            end
            return call(fn) -- the real transaction checks fn and runs it
        end
    end
    return s
end

-- safe.create_adapters(client, opts) -> the safe view of aws.create_adapters(safe.raw(client), opts),
-- or nil, err (a bad client or option).
local create = wrap(aws.create_adapters)
function _M.create_adapters(client, opts)
    local adapters, err = create(_M.raw(client), opts)
    if not adapters then return nil, err end
    return safe_adapters(adapters)
end

return _M
