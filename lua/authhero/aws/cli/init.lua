-- The authhero-dynamo command line: dispatch, the DynamoDB client every subcommand shares (same
-- flags and environment as the library), one-line error messages, exit codes, and create-table.
-- The subcommands live in import.lua, export.lua, verify.lua, stats.lua and changes.lua.
-- Exit codes: 0 success, 1 error (or failed records / differences), 2 usage, 3 import finished
-- with skipped lines, 130 interrupted (Ctrl-C). Messages never show a URL's user:password@.
local aws = require "authhero.aws"
local args = require "authhero.aws.cli.args"
local errors = require "authhero.aws.errors"

local _M = {}

_M.PROG = "authhero-dynamo"
-- how to start this program again (import's writer processes); set by bin/authhero-dynamo:
-- the interpreter and its arguments before the script
_M.interpreter = { "lua5.4" }
_M.script = "authhero-dynamo"

local function env(name)
    local v = os.getenv(name)
    if v == "" then return nil end
    return v
end

-- A URL with its user:password@ replaced by ***@ (anything not a URL is returned as it is).
function _M.redact_url(url)
    if type(url) ~= "string" then return url end
    local scheme, authority, rest = url:match("^(%a[%w+.-]*://)([^/?#]*)(.*)$")
    if not scheme or not authority:find("@", 1, true) then return url end
    return scheme .. "***@" .. authority:match("^.*@(.*)$") .. rest
end

-- text with the userinfo of every URL in it replaced by ***@ (error texts, logs, summaries).
function _M.redact(text)
    if type(text) ~= "string" then return text end
    return (text:gsub("(%a[%w+.-]*://)([^/?#%s\"'<>]*)", function(scheme, authority)
        local host = authority:match("^.*@(.*)$")
        if host then return scheme .. "***@" .. host end
    end))
end

function _M.is_loopback(url)
    url = url:gsub("^(https?://)[^/?#]*@", "%1")
    local host = url:match("^https?://%[?([^/%]]+)") or ""
    host = host:gsub(":%d+$", "")
    return host == "localhost" or host:match("^127%.") ~= nil or host == "::1"
end

-- The endpoint a client made from these options talks to (nil: AWS's regional endpoint).
function _M.endpoint(opts)
    return opts.endpoint or env("AWS_ENDPOINT_URL_DYNAMODB") or env("AWS_ENDPOINT_URL")
end

-- The endpoint for messages: user:password@ redacted; "AWS" when it is AWS's own.
function _M.safe_endpoint(opts, client)
    return _M.redact_url(client and client.endpoint or _M.endpoint(opts) or "AWS")
end

function _M.table_name(opts)
    return aws.schema.table_name(opts.table)
end

-- client_config(opts) -> config for aws.client.new. A loopback endpoint (DynamoDB Local) gets
-- region us-east-1 and dummy credentials unless some are configured: it accepts any.
function _M.client_config(opts)
    local cfg = { endpoint = opts.endpoint, region = opts.region, profile = opts.profile, max_attempts = 10,
        timeout_ms = 30000 }
    local ep = _M.endpoint(opts)
    if ep and _M.is_loopback(ep) then
        if not cfg.region and not env("AWS_REGION") and not env("AWS_DEFAULT_REGION") then cfg.region = "us-east-1" end
        if not opts.profile and not env("AWS_ACCESS_KEY_ID") and not env("AWS_PROFILE") then
            cfg.credentials = { accessKeyId = "local", secretAccessKey = "local" }
        end
    end
    return cfg
end

function _M.client(opts, extra)
    local cfg = _M.client_config(opts)
    for k, v in pairs(extra or {}) do cfg[k] = v end
    return aws.client.new(cfg)
end

-- "where": table NAME at ENDPOINT, for messages
function _M.target(opts, client)
    return string.format("table %s at %s", _M.table_name(opts), _M.safe_endpoint(opts, client))
end

-- An error -> one line for the user (URLs' user:password@ redacted).
function _M.describe_error(err, opts)
    return _M.redact(_M.describe_error_text(err, opts))
end

function _M.describe_error_text(err, opts)
    if type(err) == "table" and err.usage then return err.message end
    if errors.is(err) then
        local code = err.code
        if code == "ResourceNotFoundException" then
            return string.format("%s does not exist (create it with: %s create-table)", _M.target(opts), _M.PROG)
        elseif code == "TransportError" then
            return string.format("cannot reach DynamoDB at %s: %s", _M.safe_endpoint(opts), tostring(err.message))
        elseif code == "ValidationError" or code == "CliError" then
            return tostring(err.message)
        elseif code == "CredentialsError" then
            return "no usable AWS credentials: " .. tostring(err.message)
        elseif code == "UnrecognizedClientException" or code == "InvalidSignatureException" then
            return "AWS rejected the credentials: " .. tostring(err.message)
        end
        return tostring(err)
    end
    return tostring(err)
end

_M.is_interrupt = args.is_interrupt

-- fail(fmt, ...): a user-facing error (no traceback), does not return
function _M.fail(fmt, ...)
    errors.raise(1, "CliError", string.format(fmt, ...))
end

-- create-table -----------------------------------------------------------------------------------

local CREATE_TABLE = {
    usage = "create-table [--table NAME] [--billing PAY_PER_REQUEST|PROVISIONED --rcu N --wcu N] [--streams]"
        .. " [--replicas R1,R2]",
    description = "Creates the documented table: PK/SK, GSI1 and GSI2 (projection ALL), TTL on `ttl`.\n"
        .. "An existing compatible table is left as it is; an incompatible one is an error.\n"
        .. "--replicas makes it a global table (version 2019.11.21) on real AWS: a stream, then one\n"
        .. "replica per Region, one at a time (DynamoDB Local has no replicas).",
    options = {
        { "--streams", nil, "with a stream (NEW_AND_OLD_IMAGES), for `changes`" },
        { "--replicas", "R1,R2", "add a replica in each Region (real AWS; implies --streams)" },
        { "--billing", "MODE", "PAY_PER_REQUEST (default) or PROVISIONED" },
        { "--rcu", "N", "read capacity units (PROVISIONED; default 5)" },
        { "--wcu", "N", "write capacity units (PROVISIONED; default 5)" },
    },
}

local function create_table(opts)
    local billing = (opts.billing or "PAY_PER_REQUEST"):upper()
    if billing ~= "PAY_PER_REQUEST" and billing ~= "PROVISIONED" then
        args.usage_error("--billing must be PAY_PER_REQUEST or PROVISIONED, got %s", opts.billing)
    end
    local rcu, wcu = args.integer(opts, "rcu", 1), args.integer(opts, "wcu", 1)
    if billing ~= "PROVISIONED" and (rcu or wcu) then args.usage_error("--rcu and --wcu need --billing PROVISIONED") end
    local replicas
    if opts.replicas ~= nil then
        if opts.replicas == true or opts.replicas == "" then args.usage_error("--replicas needs a list of Regions") end
        replicas = {}
        for r in tostring(opts.replicas):gmatch("[^,%s]+") do
            if not r:match("^[a-z][a-z0-9-]*%d$") then args.usage_error("--replicas: invalid Region name %s", r) end
            replicas[#replicas + 1] = r
        end
    end
    local client = _M.client(opts)
    local name = _M.table_name(opts)
    if replicas then
        for _, r in ipairs(replicas) do
            if r == client.region then
                args.usage_error("--replicas: %s is the table's own Region (--region); list the other Regions", r)
            end
        end
    end
    local existed = pcall(client.call, client, "DescribeTable", { TableName = name })
    local desc = aws.schema.create_table(client, { tableName = name, billing_mode = billing, read_capacity = rcu,
        write_capacity = wcu, streams = opts.streams == true, replicas = replicas,
        log = replicas and function(msg) io.stderr:write(msg, "\n") end or nil })
    local mode = desc.BillingModeSummary and desc.BillingModeSummary.BillingMode or billing
    local extra = ""
    if replicas then
        extra = ", stream NEW_AND_OLD_IMAGES, replicas in " .. client.region .. "," .. table.concat(replicas, ",")
    elseif opts.streams then
        extra = ", stream NEW_AND_OLD_IMAGES"
    end
    print(string.format("%s %s: %s, GSI1 and GSI2, TTL on ttl%s (%s)", existed and "table exists and is compatible:"
        or "created table", name, desc.TableStatus or "ACTIVE", extra, mode))
    return 0
end

-- dispatch ----------------------------------------------------------------------------------------

local COMMANDS = {
    { "create-table", "create the table (GSIs, TTL)" },
    { "import", "import JSON lines of AuthHero records (batched, parallel, idempotent)" },
    { "export", "export every record of a tenant as JSON lines" },
    { "verify", "compare a JSON-lines file with what the table holds" },
    { "stats", "item counts per entity type (whole table or one tenant)" },
    { "changes", "the table's stream as entity-level change events (JSON lines)" },
}

local function module_for(cmd)
    if cmd == "create-table" then
        return { spec = CREATE_TABLE, run = function(_, opts) return create_table(opts) end }
    elseif cmd == "import" or cmd == "export" or cmd == "verify" or cmd == "stats" or cmd == "changes" then
        return require("authhero.aws.cli." .. cmd)
    elseif cmd == "_import-worker" then
        return require("authhero.aws.cli.import").worker_command
    end
    return nil
end

local function main_help()
    local out = { "usage: " .. _M.PROG .. " COMMAND [options]", "",
        "AuthHero's DynamoDB table: set-up, migration (export -> import -> verify) and counts.", "", "commands:" }
    for _, c in ipairs(COMMANDS) do out[#out + 1] = string.format("  %-14s %s", c[1], c[2]) end
    out[#out + 1] = ""
    out[#out + 1] = "connection (every command): --endpoint URL, --region REGION, --table NAME, --profile NAME;"
    out[#out + 1] = "  environment: DYNAMODB_TABLE_NAME, AWS_REGION, AWS_ENDPOINT_URL_DYNAMODB, AWS_ENDPOINT_URL,"
    out[#out + 1] = "  AWS_PROFILE, AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN."
    out[#out + 1] = ""
    out[#out + 1] = "Run '" .. _M.PROG .. " COMMAND --help' for a command's options."
    return table.concat(out, "\n") .. "\n"
end

-- main(argv) -> exit code
function _M.main(argv)
    argv = argv or {}
    -- the command is the first word that is neither a flag nor the value of a common flag
    local valued = {}
    for _, o in ipairs(args.COMMON) do
        if o[2] then valued[o[1]] = true end
    end
    local cmd, rest = nil, {}
    local i = 1
    while i <= #argv do
        local a = argv[i]
        if cmd == nil and a:sub(1, 1) ~= "-" then
            cmd = a
        else
            rest[#rest + 1] = a
            if cmd == nil and valued[a] and argv[i + 1] then
                i = i + 1
                rest[#rest + 1] = argv[i]
            end
        end
        i = i + 1
    end
    if cmd == nil then
        for _, a in ipairs(argv) do
            if a == "--help" or a == "-h" then
                io.stdout:write(main_help())
                return 0
            end
        end
        io.stderr:write(main_help())
        return 2
    end
    local mod = module_for(cmd)
    if not mod then
        io.stderr:write(string.format("%s: unknown command %q (commands: create-table, import, export, verify, stats, changes)\n",
            _M.PROG, cmd))
        return 2
    end
    local opts = {}
    local ok, res = xpcall(function()
        local pos
        for j, a in ipairs(rest) do
            if a == "-h" then rest[j] = "--help" end
        end
        opts, pos = args.parse(rest, mod.spec)
        if opts.help then
            io.stdout:write(args.help(_M.PROG, mod.spec))
            return 0
        end
        return mod.run(_M, opts, pos)
    end, function(e)
        if (type(e) == "table" and e.usage) or errors.is(e) then return e end
        if _M.is_interrupt(e) then return { interrupted = true } end
        return { bug = tostring(e), trace = debug.traceback() }
    end)
    if ok then return res or 0 end
    if type(res) == "table" and res.interrupted then
        io.stderr:write(string.format("%s %s: interrupted\n", _M.PROG, cmd))
        return 130 -- 128 + SIGINT, as a shell reports a command Ctrl-C stopped
    end
    if type(res) == "table" and res.usage then
        io.stderr:write(_M.redact(string.format("%s %s: %s (see %s %s --help)\n", _M.PROG, cmd, res.message, _M.PROG,
            cmd)))
        return 2
    end
    if type(res) == "table" and res.bug then
        io.stderr:write(_M.redact(string.format("%s %s: internal error: %s\n", _M.PROG, cmd, res.bug)))
        if os.getenv("AUTHHERO_DEBUG") then io.stderr:write(_M.redact(res.trace), "\n") end
        return 1
    end
    io.stderr:write(string.format("%s %s: %s\n", _M.PROG, cmd, _M.describe_error(res, opts)))
    return 1
end

return _M
