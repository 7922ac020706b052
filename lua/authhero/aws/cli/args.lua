-- Command-line parsing for bin/authhero-dynamo: flags (`--name value`, `--name=value`, booleans)
-- anywhere on the line, positionals in order, per-command help text. A usage mistake raises a
-- table { usage = true, message = ... } that the front door prints with a pointer to --help.
-- Owns no policy about what the flags mean. Also: telling Ctrl-C's error from others.
local _M = {}

-- Flags every subcommand accepts (how the client finds DynamoDB).
_M.COMMON = {
    { "--endpoint", "URL", "DynamoDB endpoint (else AWS_ENDPOINT_URL_DYNAMODB, AWS_ENDPOINT_URL, AWS)" },
    { "--region", "REGION", "AWS region (else AWS_REGION, AWS_DEFAULT_REGION; us-east-1 for a local endpoint)" },
    { "--table", "NAME", "table name (else DYNAMODB_TABLE_NAME, else authhero)" },
    { "--profile", "NAME", "shared-config profile for credentials (else AWS_PROFILE)" },
    { "--help", nil, "show this help" },
}

-- The error the standalone interpreters (lua, luajit) raise in Lua code after a SIGINT (Ctrl-C):
-- "interrupted!", with a position in front when raised in a Lua function. Code that catches errors
-- (pcall) must raise this one again: Ctrl-C stops the command, never just the current record.
function _M.is_interrupt(e)
    return type(e) == "string" and e:find("interrupted!$") ~= nil
end

local function usage_error(fmt, ...)
    error({ usage = true, message = string.format(fmt, ...) }, 0)
end
_M.usage_error = usage_error

-- "--rcu" -> "rcu", "--no-check" -> "no_check"
local function field(flag)
    return (flag:gsub("^%-%-", ""):gsub("%-", "_"))
end
_M.field = field

-- parse(argv, spec) -> opts, positionals
-- spec = { options = { {flag, METAVAR or nil, help}, ... }, positional = { "FILE", ... },
--          min = n, max = n }. Boolean flags become true; valued flags keep the last value.
function _M.parse(argv, spec)
    local known = {}
    for _, o in ipairs(_M.COMMON) do known[o[1]] = o end
    for _, o in ipairs(spec.options or {}) do known[o[1]] = o end
    local opts, pos = {}, {}
    local i = 1
    local only_positional = false
    while i <= #argv do
        local a = argv[i]
        if only_positional or a == "-" or a:sub(1, 2) ~= "--" then
            if not only_positional and a ~= "-" and a:sub(1, 1) == "-" then
                usage_error("unknown option %s", a)
            end
            pos[#pos + 1] = a
        elseif a == "--" then
            only_positional = true
        else
            local name, value = a:match("^(%-%-[^=]+)=(.*)$")
            name = name or a
            local o = known[name]
            if not o then usage_error("unknown option %s", name) end
            if o[2] then
                if value == nil then
                    i = i + 1
                    value = argv[i]
                    if value == nil then usage_error("%s needs a value (%s)", name, o[2]) end
                end
                opts[field(name)] = value
            else
                if value ~= nil then usage_error("%s takes no value", name) end
                opts[field(name)] = true
            end
        end
        i = i + 1
    end
    if not opts.help then
        local min, max = spec.min or 0, spec.max or #(spec.positional or {})
        if #pos < min then usage_error("missing %s", (spec.positional or {})[#pos + 1] or "argument") end
        if #pos > max then usage_error("unexpected argument %s", pos[max + 1]) end
    end
    return opts, pos
end

-- An integer option (nil when absent); a usage error when it is not one in [lo, hi].
function _M.integer(opts, name, lo, hi)
    local v = opts[name]
    if v == nil then return nil end
    local n = tonumber(v)
    if not n or n ~= math.floor(n) or (lo and n < lo) or (hi and n > hi) then
        usage_error("--%s must be an integer%s, got %s", (name:gsub("_", "-")),
            lo and hi and (" from " .. lo .. " to " .. hi) or (lo and (" >= " .. lo) or ""), tostring(v))
    end
    return math.floor(n)
end

-- The help text of a command: usage line, description, its options, then the common ones.
function _M.help(prog, spec)
    local out = { "usage: " .. prog .. " " .. spec.usage, "" }
    if spec.description then
        out[#out + 1] = spec.description
        out[#out + 1] = ""
    end
    local function list(title, options)
        if #options == 0 then return end
        out[#out + 1] = title
        for _, o in ipairs(options) do
            local left = o[1] .. (o[2] and (" " .. o[2]) or "")
            out[#out + 1] = string.format("  %-22s %s", left, o[3])
        end
        out[#out + 1] = ""
    end
    list("options:", spec.options or {})
    list("connection:", _M.COMMON)
    if spec.epilog then out[#out + 1] = spec.epilog end
    return (table.concat(out, "\n"):gsub("\n+$", "")) .. "\n"
end

return _M
