-- The `q` list-filter language (adapter contract §3.5): parse once into an AST of plain tables,
-- validate every field against the entity's allow-list (unknown -> 400), compile to a closure that is
-- the only authority on whether a record matches. Pure Lua, no I/O. Choosing an index or a
-- FilterExpression is the adapters' job; equality() and fields_used() give them what they need.
--
-- Spec: { fields = { name = { type = "string"|"number"|"boolean", ci = bool, default = v,
--                             substring = bool, key = "record_key", get = function(record) } | true },
--         search = { { field = "email", mode = "substring"|"exact" }, ... } }   -- free-text targets
-- Decisions the contract leaves open:
--   * `field:` with nothing after it is a 400; `field:""` is equality with the empty string.
--   * Inside quotes `\"` is a literal quote; an unterminated quote is a 400, as is a quote in the
--     middle of a value or text after a closing quote. `\x` for a non-special x stays `\x`.
--   * Negated equality and `-_exists_` match absent fields (Lucene); negated comparisons are the
--     inverted comparison (`-n:>5` is `n <= 5`), so an absent field without default matches neither.
--   * `OR` (any case) is a bare token; an empty alternative (`OR a`, `a OR`, `a OR OR b`) is a 400.
--     `AND` (exactly) is ignored; bare `NOT`, `&&`, `||` are 400 (not supported, not free text).
local core = require "authhero.aws.core"
local errors = require "authhero.aws.errors"
local util = require "authhero.aws.util"

local _M = {}

local null = core.null
local validation = errors.validation
local byte, sub, lower, upper, find, format = string.byte, string.sub, string.lower, string.upper,
    string.find, string.format
local concat = table.concat
-- ci fields and free text compare lower-cased the way JavaScript's toLowerCase does (Unicode,
-- contract §2.4); a literal that is not valid UTF-8 is a 400
local ulower = core.lower
local type, tostring, tonumber, ipairs = type, tostring, tonumber, ipairs

local B_QUOTE, B_BSLASH, B_LPAREN, B_RPAREN = 34, 92, 40, 41
local B_COLON, B_EQ, B_MINUS, B_LT, B_GT = 58, 61, 45, 60, 62

-- Characters whose backslash escape is undone: Lucene's specials (§3.5) plus the ones that mean
-- something in our own grammar (`=`, `<`, `>`) and whitespace. Any other `\x` is kept verbatim.
local ESCAPABLE = {}
for c in ('-|:"\\*+!(){}[]^~?/&=<> \t'):gmatch(".") do ESCAPABLE[byte(c)] = true end

local UNSUPPORTED_OPERATORS = { NOT = true, ["&&"] = true, ["||"] = true }
local STRING_DEF = { type = "string" }
local TYPES = { string = true, number = true, boolean = true }

local function is_space(b)
    return b == 32 or b == 9 or b == 10 or b == 13
end

-- split(q) -> array of raw tokens (quotes and escapes still in). Raises on unquoted parentheses and on
-- an unterminated quote.
local function split(q)
    local tokens, n = {}, 0
    local i, len = 1, #q
    while i <= len do
        if is_space(byte(q, i)) then
            i = i + 1
        else
            local start, quoted = i, false
            while i <= len do
                local b = byte(q, i)
                if b == B_BSLASH then
                    i = i + 2
                elseif b == B_QUOTE then
                    quoted = not quoted
                    i = i + 1
                elseif quoted then
                    i = i + 1
                elseif is_space(b) then
                    break
                elseif b == B_LPAREN or b == B_RPAREN then
                    validation("parentheses are not supported in q")
                else
                    i = i + 1
                end
            end
            if quoted then validation("unterminated quote in q") end
            if i > len + 1 then i = len + 1 end
            n = n + 1
            tokens[n] = sub(q, start, i - 1)
        end
    end
    return tokens
end

-- decode(s, i) -> text, quoted: s from i to its end with one pair of surrounding quotes removed and
-- escapes undone. Raises on a stray quote or on text after the closing quote.
local function decode(s, i)
    local len = #s
    local quoted = byte(s, i) == B_QUOTE
    if quoted then i = i + 1 end
    local buf, n, run = {}, 0, i
    while i <= len do
        local b = byte(s, i)
        if b == B_BSLASH then
            local nb = byte(s, i + 1)
            if nb and ESCAPABLE[nb] then
                n = n + 1
                buf[n] = sub(s, run, i - 1)
                run = i + 1
            end
            i = i + 2
        elseif b == B_QUOTE then
            if quoted and i == len then
                n = n + 1
                buf[n] = sub(s, run, i - 1)
                return concat(buf, "", 1, n), true
            end
            if quoted then validation("unexpected text after closing quote in q: %s", s) end
            validation("unexpected quote in q: %s", s)
        else
            i = i + 1
        end
    end
    n = n + 1
    buf[n] = sub(s, run, len)
    return concat(buf, "", 1, n), quoted
end

-- Decimal numbers only (no hex, no inf/nan, no spaces), as text in a query.
local function parse_number(s)
    if find(s, "^%-?%d*%.?%d*$") or find(s, "^%-?%d*%.?%d*[eE][-+]?%d+$") then
        if find(s, "^%-?%.?%d") then return tonumber(s) end
    end
    return nil
end

local function field_def(fields, name)
    local def = fields[name]
    if not def then validation("unsupported query field: %s", name) end
    if def == true then return STRING_DEF end
    if type(def) ~= "table" or not TYPES[def.type or "string"] then
        error(format("bad field definition for %q in filter spec", tostring(name)), 3)
    end
    return def
end

-- typed(def, name, op, text) -> the literal as the field's type (lower-cased for ci strings).
local function typed(def, name, op, text)
    local t = def.type or "string"
    if t == "number" then
        local v = parse_number(text)
        if v == nil then validation("invalid number for query field %s: %s", name, text) end
        return v
    elseif t == "boolean" then
        if op ~= "eq" then validation("comparison is not supported on boolean query field: %s", name) end
        local l = lower(text)
        if l == "true" or l == "1" then return true end
        if l == "false" or l == "0" then return false end
        validation("invalid boolean for query field %s: %s", name, text)
    end
    if def.ci then return ulower(text, "q") end
    return text
end

local INVERTED = { lt = "ge", le = "gt", gt = "le", ge = "lt" }

-- parse_clause(token, spec) -> clause table:
--   { op = "eq"|"lt"|"le"|"gt"|"ge", field, def, value, text, negate }
--   { op = "exists", field, def, negate }     { op = "text", value, search, negate }
local function parse_clause(tok, fields, search)
    local negate, i, len = false, 1, #tok
    if byte(tok, 1) == B_MINUS then
        if len == 1 then validation("empty negation in q") end
        negate, i = true, 2
    end
    -- the field separator: the first unescaped ':' or '=' before any quote
    local j, sep = i, nil
    while j <= len do
        local b = byte(tok, j)
        if b == B_BSLASH then
            j = j + 2
        elseif b == B_QUOTE then
            break
        elseif b == B_COLON or b == B_EQ then
            sep = j
            break
        else
            j = j + 1
        end
    end

    if not sep then
        if #search == 0 then validation("free-text search is not supported") end
        local word = decode(tok, i)
        if word == "" then validation("empty free-text term in q") end
        return { op = "text", value = word, search = search, negate = negate or nil }
    end

    local name = sub(tok, i, sep - 1)
    if name == "" then validation("missing field name in q: %s", tok) end
    local op, v = "eq", sep + 1
    local b1 = byte(tok, v)
    if b1 == B_GT or b1 == B_LT then
        local eq = byte(tok, v + 1) == B_EQ
        op = (b1 == B_GT and (eq and "ge" or "gt")) or (eq and "le" or "lt")
        v = v + (eq and 2 or 1)
    end
    if v > len then validation("missing value for query field: %s", name) end
    local text = decode(tok, v)

    if name == "_exists_" then
        if op ~= "eq" then validation("comparison is not supported on _exists_") end
        return { op = "exists", field = text, def = field_def(fields, text), negate = negate or nil }
    end
    local def = field_def(fields, name)
    if negate and op ~= "eq" then
        op, negate = INVERTED[op], false
    end
    return {
        op = op, field = name, def = def, value = typed(def, name, op, text), text = text,
        negate = negate or nil,
    }
end

local function check_spec(spec, fname)
    if type(spec) ~= "table" then
        error(format("bad argument to '%s' (filter spec table expected, got %s)", fname, type(spec)), 3)
    end
    local fields = spec.fields
    if fields ~= nil and type(fields) ~= "table" then
        error(format("bad argument to '%s' (spec.fields must be a table)", fname), 3)
    end
    local search = spec.search
    if search ~= nil and type(search) ~= "table" then
        error(format("bad argument to '%s' (spec.search must be an array)", fname), 3)
    end
    return fields or {}, search
end

-- targets(fields, search) -> { { field, exact, def }, ... }: free-text targets resolved once per
-- parse. A target that is also a q field reads the record the same way (key/get), without default.
local function targets(fields, search)
    local out = {}
    for k, t in ipairs(search or {}) do
        if type(t) ~= "table" or type(t.field) ~= "string" then
            error("bad filter spec: search[" .. k .. "] must be { field = name, mode = ... }", 3)
        end
        local mode = t.mode or "substring"
        if mode ~= "substring" and mode ~= "exact" then
            error("bad filter spec: search mode must be \"substring\" or \"exact\"", 3)
        end
        local def = fields[t.field]
        if type(def) ~= "table" then def = STRING_DEF end
        out[k] = { field = t.field, exact = mode == "exact", def = def }
    end
    return out
end

-- parse(q, spec) -> ast = { op = "or", { op = "and", clause, ... }, ... }. q nil, "" or blank gives
-- one empty AND group (matches everything). May raise ValidationError (400).
function _M.parse(q, spec)
    local fields, search = check_spec(spec, "parse")
    if q ~= nil and type(q) ~= "string" then validation("q must be a string") end
    search = targets(fields, search)
    local ast = { op = "or" }
    local group = { op = "and" }
    local ngroups = 0
    local tokens = split(q or "")
    for k = 1, #tokens do
        local tok = tokens[k]
        if upper(tok) == "OR" then
            if #group == 0 then validation("empty alternative around OR in q") end
            ngroups = ngroups + 1
            ast[ngroups] = group
            group = { op = "and" }
        elseif UNSUPPORTED_OPERATORS[tok] then
            validation("operator %s is not supported in q (use -field:value to negate)", tok)
        elseif tok ~= "AND" then
            group[#group + 1] = parse_clause(tok, fields, search)
        end
    end
    if #group == 0 and ngroups > 0 then validation("empty alternative around OR in q") end
    ast[ngroups + 1] = group
    return ast
end

------------------------------------------------------------------------------------------------
-- compile

local function absent(v)
    return v == nil or v == null
end

-- getter(name, def) -> function(record) -> stored value, nil when absent (null counts as absent).
local function raw_getter(name, def)
    local get = def.get
    if get then
        return function(r)
            local v = get(r)
            if v == null then return nil end
            return v
        end
    end
    local key = def.key or name
    return function(r)
        local v = r[key]
        if v == null then return nil end
        return v
    end
end

local function value_getter(name, def)
    local default = def.default
    if default == nil then return raw_getter(name, def) end
    local raw = raw_getter(name, def)
    return function(r)
        local v = raw(r)
        if v == nil then return default end
        return v
    end
end

local function num_to_string(v)
    if v % 1 == 0 and v > -2 ^ 53 and v < 2 ^ 53 then return format("%d", v) end
    return tostring(v)
end

-- String view of a stored value; tables (JSON objects and arrays) have none.
local function as_string(v)
    local t = type(v)
    if t == "string" then return v end
    if t == "number" then return num_to_string(v) end
    if t == "boolean" then return tostring(v) end
    return nil
end

local function as_number(v)
    if type(v) == "number" then return v end
    if type(v) == "string" then return tonumber(v) end
    return nil
end

local BOOL_VALUES = { [true] = true, [false] = false, [1] = true, [0] = false,
    ["true"] = true, ["false"] = false, ["1"] = true, ["0"] = false }

local function native_lt(a, b)
    return a < b
end

local function string_lt()
    local c = os.setlocale and os.setlocale(nil, "collate")
    if c == nil or c == "C" or c == "POSIX" then return native_lt end
    return util.byte_lt -- `<` uses strcoll, which only equals byte order in the C locale
end

local function compile_string(c)
    local get, lit, ci = value_getter(c.field, c.def), c.value, c.def.ci
    local op = c.op
    if op == "eq" and c.def.substring then
        return function(r)
            local s = as_string(get(r))
            if s == nil then return false end
            if ci then s = ulower(s) end
            return find(s, lit, 1, true) ~= nil
        end
    elseif op == "eq" then
        if ci then
            return function(r)
                local s = as_string(get(r))
                return s ~= nil and ulower(s) == lit
            end
        end
        return function(r)
            local v = get(r)
            if type(v) == "string" then return v == lit end
            return as_string(v) == lit
        end
    end
    local lt = string_lt()
    local test
    if op == "lt" then
        test = function(s) return lt(s, lit) end
    elseif op == "le" then
        test = function(s) return s == lit or lt(s, lit) end
    elseif op == "gt" then
        test = function(s) return lt(lit, s) end
    else
        test = function(s) return s == lit or lt(lit, s) end
    end
    return function(r)
        local s = as_string(get(r))
        if s == nil then return false end
        if ci then s = ulower(s) end
        return test(s)
    end
end

local function compile_number(c)
    local get, lit, op = value_getter(c.field, c.def), c.value, c.op
    if op == "eq" then
        return function(r) return as_number(get(r)) == lit end
    elseif op == "lt" then
        return function(r) local n = as_number(get(r)); return n ~= nil and n < lit end
    elseif op == "le" then
        return function(r) local n = as_number(get(r)); return n ~= nil and n <= lit end
    elseif op == "gt" then
        return function(r) local n = as_number(get(r)); return n ~= nil and n > lit end
    end
    return function(r) local n = as_number(get(r)); return n ~= nil and n >= lit end
end

local function compile_boolean(c)
    local get, lit = value_getter(c.field, c.def), c.value
    return function(r)
        local v = get(r)
        if v == nil then return false end
        return BOOL_VALUES[v] == lit
    end
end

local function compile_text(c)
    local word, lword = c.value, ulower(c.value, "q")
    local getters, exact, n = {}, {}, 0
    for _, target in ipairs(c.search) do
        n = n + 1
        getters[n] = raw_getter(target.field, target.def)
        exact[n] = target.exact
    end
    return function(r)
        for k = 1, n do
            local s = as_string(getters[k](r))
            if s ~= nil then
                if exact[k] then
                    if s == word then return true end
                elseif find(ulower(s), lword, 1, true) then
                    return true
                end
            end
        end
        return false
    end
end

local function compile_clause(c)
    local f
    if c.op == "exists" then
        local get = raw_getter(c.field, c.def)
        f = function(r) return not absent(get(r)) end
    elseif c.op == "text" then
        f = compile_text(c)
    else
        local t = c.def.type or "string"
        if t == "number" then
            f = compile_number(c)
        elseif t == "boolean" then
            f = compile_boolean(c)
        else
            f = compile_string(c)
        end
    end
    if c.negate then
        local g = f
        return function(r) return not g(r) end
    end
    return f
end

local function always() return true end

local function all_of(fs)
    local n = #fs
    if n == 0 then return always end
    if n == 1 then return fs[1] end
    if n == 2 then
        local a, b = fs[1], fs[2]
        return function(r) return a(r) and b(r) end
    end
    if n == 3 then
        local a, b, c = fs[1], fs[2], fs[3]
        return function(r) return a(r) and b(r) and c(r) end
    end
    return function(r)
        for k = 1, n do
            if not fs[k](r) then return false end
        end
        return true
    end
end

local function any_of(fs)
    local n = #fs
    if n == 1 then return fs[1] end
    return function(r)
        for k = 1, n do
            if fs[k](r) then return true end
        end
        return false
    end
end

local function check_ast(ast, fname)
    if type(ast) ~= "table" or ast.op ~= "or" then
        error(format("bad argument #1 to '%s' (filter ast expected)", fname), 3)
    end
end

-- compile(ast) -> function(record) -> boolean. Records are plain tables; never raises on odd values
-- (a value of the wrong type simply does not match).
function _M.compile(ast)
    check_ast(ast, "compile")
    local groups = {}
    for g = 1, #ast do
        local fs = {}
        for k, c in ipairs(ast[g]) do fs[k] = compile_clause(c) end
        groups[g] = all_of(fs)
    end
    return any_of(groups)
end

------------------------------------------------------------------------------------------------
-- conveniences

-- Compiled predicates per spec table (weak) and q string (bounded). Treat a spec as immutable once
-- it has been used here.
local cache = setmetatable({}, { __mode = "k" })
local CACHE_MAX = 128

-- predicate(q, spec) -> function(record) -> boolean, cached. May raise ValidationError (400).
function _M.predicate(q, spec)
    check_spec(spec, "predicate")
    local key = q or ""
    local per = cache[spec]
    if per == nil then
        per = { n = 0, preds = {} }
        cache[spec] = per
    end
    local pred = per.preds[key]
    if pred == nil then
        pred = _M.compile(_M.parse(q, spec))
        if per.n >= CACHE_MAX then
            per.n, per.preds = 0, {}
        end
        per.preds[key] = pred
        per.n = per.n + 1
    end
    return pred
end

-- match(q, spec, record) -> boolean.
function _M.match(q, spec, record)
    return _M.predicate(q, spec)(record)
end

-- apply(records, q, spec) -> new array (core array marker) of the matching records, order kept.
function _M.apply(records, q, spec)
    if type(records) ~= "table" then
        error("bad argument #1 to 'apply' (table expected, got " .. type(records) .. ")", 2)
    end
    local pred = _M.predicate(q, spec)
    local out, n = {}, 0
    for k = 1, #records do
        local r = records[k]
        if pred(r) then
            n = n + 1
            out[n] = r
        end
    end
    return core.array(out)
end

-- matches_all(ast) -> true when the query has no clause at all (q empty, blank or only `AND`).
function _M.matches_all(ast)
    check_ast(ast, "matches_all")
    return #ast == 1 and #ast[1] == 0
end

-- equality(ast, field) -> the literal of a positive equality clause on field when the query is a
-- single AND group, else nil. Typed like the field (ci strings lower-cased). Substring fields have
-- none. With several such clauses the first is returned; the predicate still checks them all.
function _M.equality(ast, field)
    check_ast(ast, "equality")
    if #ast ~= 1 then return nil end
    for _, c in ipairs(ast[1]) do
        if c.op == "eq" and not c.negate and c.field == field and not c.def.substring then
            return c.value
        end
    end
    return nil
end

-- fields_used(ast) -> set { name = true } of every field the predicate may read: fields of field
-- and _exists_ clauses, plus the free-text targets when the query has a free-text term.
function _M.fields_used(ast)
    check_ast(ast, "fields_used")
    local set = {}
    for g = 1, #ast do
        for _, c in ipairs(ast[g]) do
            if c.op == "text" then
                for _, target in ipairs(c.search) do set[target.field] = true end
            else
                set[c.field] = true
            end
        end
    end
    return set
end

return _M
