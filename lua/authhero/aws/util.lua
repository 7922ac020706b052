-- Small shared helpers for the adapters: ids (CSPRNG), ISO-8601 time, JSON-string attributes,
-- base64url, byte-order comparison. Nothing here talks to DynamoDB.
local core = require "authhero.aws.core"
local errors = require "authhero.aws.errors"

local _M = {}

-- ids: 21 characters of A-Za-z0-9_- from /dev/urandom (nanoid-compatible alphabet, 6 bits a byte)
local ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
local pool, pool_pos = "", 1

local function random_bytes(n)
    if pool_pos + n - 1 > #pool then
        local f = assert(io.open("/dev/urandom", "rb"), "cannot open /dev/urandom")
        pool = f:read(4096)
        f:close()
        pool_pos = 1
    end
    local s = pool:sub(pool_pos, pool_pos + n - 1)
    pool_pos = pool_pos + n
    return s
end

function _M.new_id(size)
    size = size or 21
    local bytes = random_bytes(size)
    local out = {}
    for i = 1, size do
        local b = bytes:byte(i) % 64 + 1
        out[i] = ALPHABET:sub(b, b)
    end
    return table.concat(out)
end

-- time ------------------------------------------------------------------------------------------

-- Days since 1970-01-01 of a proleptic Gregorian date (no os.time local-time conversion).
local function days_from_civil(y, m, d)
    y = m <= 2 and y - 1 or y
    local era = math.floor(y / 400)
    local yoe = y - era * 400
    local doy = math.floor((153 * (m + (m > 2 and -3 or 9)) + 2) / 5) + d - 1
    local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
    return era * 146097 + doe - 719468
end

local function civil_from_days(z)
    z = z + 719468
    local era = math.floor(z / 146097)
    local doe = z - era * 146097
    local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
    local y = yoe + era * 400
    local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
    local mp = math.floor((5 * doy + 2) / 153)
    local d = doy - math.floor((153 * mp + 2) / 5) + 1
    local m = mp < 10 and mp + 3 or mp - 9
    return m <= 2 and y + 1 or y, m, d
end

-- epoch milliseconds -> "YYYY-MM-DDTHH:MM:SS.mmmZ"
function _M.iso(ms)
    ms = math.floor(ms)
    local secs = math.floor(ms / 1000)
    local days = math.floor(secs / 86400)
    local rem = secs - days * 86400
    local y, m, d = civil_from_days(days)
    return string.format("%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", y, m, d, math.floor(rem / 3600),
        math.floor(rem % 3600 / 60), rem % 60, ms - secs * 1000)
end

_M.days_from_civil = days_from_civil

local MONTH_DAYS = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 }

-- ISO-8601 text (with or without milliseconds, Z or +HH:MM) -> epoch ms, or nil when malformed
-- (including days a month does not have). strict: a date-time with Z or an offset is required
-- (no bare date, no missing zone).
function _M.parse_iso(s, strict)
    if type(s) ~= "string" then return nil end
    local y, mo, d, h, mi, sec, rest = s:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)[Tt ](%d%d):(%d%d):(%d%d)(.*)$")
    if not y then
        y, mo, d = s:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)$")
        if not y or strict then return nil end
        h, mi, sec, rest = 0, 0, 0, "Z"
    end
    y, mo, d, h, mi, sec = tonumber(y), tonumber(mo), tonumber(d), tonumber(h), tonumber(mi), tonumber(sec)
    local leap = (y % 4 == 0 and y % 100 ~= 0) or y % 400 == 0
    if mo < 1 or mo > 12 or d < 1 or d > (mo == 2 and leap and 29 or MONTH_DAYS[mo]) or h > 23 or mi > 59
        or sec > 60 then
        return nil
    end
    local frac = 0
    local f, tz = rest:match("^%.(%d+)(.*)$")
    if f then
        frac = math.floor(tonumber("0." .. f) * 1000 + 0.5)
        rest = tz
    end
    local offset = 0
    if rest ~= "Z" and rest ~= "z" and (rest ~= "" or strict) then
        local sign, oh, om = rest:match("^([+-])(%d%d):?(%d%d)$")
        if not sign or tonumber(oh) > 23 or tonumber(om) > 59 then return nil end
        offset = (tonumber(oh) * 60 + tonumber(om)) * (sign == "+" and 1 or -1)
    end
    local secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - offset * 60
    return secs * 1000 + frac
end

-- Normalizes a timestamp to the stored form; raises a ValidationError naming the field.
function _M.normalize_time(s, field)
    if s == nil then return nil end
    local ms = _M.parse_iso(s)
    if not ms then errors.validation("%s must be an ISO-8601 timestamp, got %s", field or "timestamp", tostring(s)) end
    return _M.iso(ms)
end

-- Normalizes the timestamp fields of a record or patch in place: each one present must be a string
-- (else a ValidationError "<field> must be an ISO-8601 timestamp") and is rewritten in the stored
-- form; absent and null fields stay as they are.
function _M.normalize_times(r, fields)
    for _, f in ipairs(fields) do
        local v = r[f]
        if v ~= nil and v ~= core.null then
            if type(v) ~= "string" then errors.validation("%s must be an ISO-8601 timestamp", f) end
            r[f] = _M.normalize_time(v, f)
        end
    end
end

-- JSON-string attributes --------------------------------------------------------------------------

-- JSON-shaped values as records carry them (core.null is JSON's null) -------------------------------

-- present(v): v is given: neither nil nor JSON null.
function _M.present(v)
    return v ~= nil and v ~= core.null
end

-- is_json_object(v): a table that reads as a JSON object: not null, not marked an array, and with no
-- array part ({} counts).
function _M.is_json_object(v)
    return type(v) == "table" and v ~= core.null and not core.is_array(v) and (next(v) == nil or #v == 0)
end

-- is_json_array(v): a table that reads as a JSON array: marked as one (core.array), or whose keys are
-- exactly 1..n.
function _M.is_json_array(v)
    if type(v) ~= "table" or v == core.null then return false end
    if core.is_array(v) then return true end
    local n = 0
    for _ in pairs(v) do n = n + 1 end
    return n == #v
end

-- Encodes a structured field for storage; kind "array" writes {} as [].
function _M.json_field(v, kind)
    if v == nil or v == core.null then return nil end
    if type(v) ~= "table" then errors.validation("expected a table for a JSON field, got %s", type(v)) end
    if kind == "array" and next(v) == nil and not core.is_array(v) then v = core.array({}) end
    return core.json_encode(v)
end

-- Reads a stored structured field: a JSON string is decoded; a native map or list (written by
-- other tools) is taken as it is. Malformed JSON gives the fallback rather than failing the read.
function _M.read_json_field(v, kind)
    if v == nil or v == core.null then return nil end
    if type(v) == "table" then return v end
    if type(v) ~= "string" then return v end
    local ok, decoded = pcall(core.json_decode, v)
    if ok then return decoded end
    return kind == "array" and core.array({}) or {}
end

-- base64url without padding, for cursors
function _M.b64url(s)
    return (core.base64_encode(s):gsub("%+", "-"):gsub("/", "_"):gsub("=+$", ""))
end

function _M.unb64url(s)
    if type(s) ~= "string" or s:find("[^%w%-_]") then return nil end
    s = s:gsub("%-", "+"):gsub("_", "/")
    s = s .. string.rep("=", (4 - #s % 4) % 4)
    return core.base64_decode(s)
end

-- a < b in byte order. (`<` on strings follows the C library's collation, which is byte order only
-- in the "C" locale.)
function _M.byte_lt(a, b)
    local n = #a
    if #b < n then n = #b end
    for i = 1, n do
        local x, y = a:byte(i), b:byte(i)
        if x ~= y then return x < y end
    end
    return #a < #b
end

-- The keys of t (nil: none), sorted.
function _M.sorted_keys(t)
    local out = {}
    for k in pairs(t or {}) do out[#out + 1] = k end
    table.sort(out)
    return out
end

function _M.shallow_copy(t)
    local c = {}
    if t then for k, v in pairs(t) do c[k] = v end end
    return c
end

return _M
