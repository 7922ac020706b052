-- The DynamoDB client: client:call(op, params [, opts]) -> decoded reply, or raises the error object.
-- Owns policy: endpoint and region resolution, credentials, signing headers, the AWS SDK
-- "standard" retry mode (backoff, retry quota, clock-skew correction), error mapping, stats, and
-- the pagination and batch helpers. Byte work (signing, JSON, HTTP) is the C core's.
--
-- Config fields besides region, endpoint, credentials, profile, timeouts and transport (README
-- "Using the client"):
--   max_attempts (default 5): attempts per call, the first included.
--   max_time_ms (default 20000): no new attempt starts (no backoff sleeps past it) once this much
--     time has passed since the call began, so a call ends within max_time_ms + timeout_ms.
--   return_consumed_capacity: true or "TOTAL", "INDEXES" or "NONE": added as ReturnConsumedCapacity
--     to every operation that takes it, and client.stats sums the capacity; anything else is a
--     ValidationError.
--   deadline_ms (default none): every call's deadline_ms unless the call gives its own (below).
--   on_request: function(event), called after every attempt (the hook; see emit below).
--   streams_endpoint: where the DynamoDB Streams operations (ListStreams, DescribeStream,
--     GetShardIterator, GetRecords) go; default AWS_ENDPOINT_URL_DYNAMODB_STREAMS, else a custom
--     endpoint's (DynamoDB Local serves both APIs), else https://streams.dynamodb.<region>.amazonaws.com.
--
-- Per-call options, call(op, params, { timeout_ms, max_attempts, deadline_ms, idempotent }):
-- timeout_ms bounds each attempt (the transport's req.timeout_ms; default the client's timeout_ms),
-- max_attempts replaces the client's, and deadline_ms bounds the whole call from its start,
-- backoff included: no attempt starts past it, each attempt's timeout is cut to the time left, a
-- backoff sleep that would end past it is not slept. The call then raises a TransportError with
-- reason "deadline" (retryable false, gave_up "deadline", last_error = the last attempt's error,
-- maybe_applied as below); it is never retried past the deadline. A bad value is a ValidationError.
--
-- A deadline per request, for code that cannot pass options (the adapters, aws.global):
-- within(ms, fn, ...) (also aws.within) runs fn(...) and returns its results, or re-raises its error.
-- While fn runs, every call made in the SAME COROUTINE, by any client (the adapters', aws.global's
-- per-Region clients), has a deadline no later than ms after within() was entered: the earliest of
-- its own deadline_ms and the scope's; nested scopes take the earliest; the scope ends when fn
-- returns or raises. Past it, a call raises the deadline TransportError above (err.within = true,
-- err.deadline_ms = the scope's ms) before sending anything, and mid-call the scope cuts timeouts and
-- backoff as deadline_ms does. Scopes are keyed by coroutine.running() (one nginx request = one
-- coroutine, so concurrent requests in a worker never see each other's), which means calls from
-- other coroutines (ngx.thread.spawn, ngx.timer, a coroutine fn creates) are NOT bounded by it. The
-- cache (cache.lua) bounds its wait for another coroutine's read by it too. Not bounded: CPU work
-- between calls, and batch_write/batch_get's sleeps between chunks (their calls are). A bad ms (not
-- a positive number) is a ValidationError, a fn that is not a function a "bad argument" error. On PUC
-- Lua 5.1, fn must not yield (pcall is not yieldable there). A coroutine abandoned inside fn (an
-- nginx request aborted mid-call; never call ngx.exit inside fn) leaves its scope counted, so the
-- calls of that worker keep paying the lookup below (a table read), nothing more.
-- With no scope open anywhere, a call pays one comparison for all this.
--
-- Exactly once: a write is re-sent only when a second application cannot change the outcome.
-- Reads, unconditional PutItem/DeleteItem, UpdateItem whose SET/REMOVE only assign values,
-- BatchWriteItem, and TransactWriteItems/ExecuteTransaction (they get a ClientRequestToken, the
-- same for every attempt of one call: DynamoDB answers a repeat as the first for 10 minutes) are
-- idempotent by nature. Arithmetic (a + :n), ADD, list_append and conditional writes are not: after
-- a failure the server may have acted on (a 5xx, a timeout or reset once the request was sent, a
-- garbled reply) they are not re-sent, and the error says err.maybe_applied = true. Failures that
-- prove nothing was done (throttling, a connect failure, a reset before the request went out, a
-- transaction cancelled by a conflict) are retried for every call. call(op, params,
-- { idempotent = true }) declares a call safe to re-send (the store does so for conditional creates
-- and updates, which recognise their own earlier write from the ALL_OLD item of a failed condition);
-- { idempotent = false } forbids re-sending after such failures.
-- Every raised error carries op, table (TableName, or the sorted table names of a batch or
-- transaction, joined by ", "), attempts, and maybe_applied (a write: an attempt may have acted).
local core = require "authhero.aws.core"
local errors = require "authhero.aws.errors"
local util = require "authhero.aws.util"

local _M = {}
local mt = { __index = _M }

local TARGET_PREFIX = "DynamoDB_20120810."
-- DynamoDB Streams: its own target prefix and endpoint (streams.dynamodb.<region>.amazonaws.com on
-- AWS), signed as service "dynamodb"; DynamoDB Local serves both APIs on one endpoint.
local STREAMS_PREFIX = "DynamoDBStreams_20120810."
local STREAMS_OPS = { ListStreams = true, DescribeStream = true, GetShardIterator = true, GetRecords = true }
local DEFAULT_MAX_ATTEMPTS, DEFAULT_MAX_TIME_MS = 5, 20000
-- The built-in transports' default request timeout and the largest one they take (ms).
local DEFAULT_TIMEOUT_MS, MAX_TIMEOUT_MS = 10000, 3600000
local BASE_DELAY, THROTTLE_BASE_DELAY, MAX_DELAY = 0.05, 1.0, 20.0
-- Retry quota, as the SDKs' standard mode: a failing backend drains it, successes refill it.
local QUOTA_INITIAL, RETRY_COST, TIMEOUT_RETRY_COST, NO_RETRY_REFILL = 500, 5, 10, 1

local THROTTLING = {
    ThrottlingException = true, Throttling = true, ThrottledException = true,
    ProvisionedThroughputExceededException = true, RequestLimitExceeded = true,
    TransactionInProgressException = true, RequestThrottled = true,
    RequestThrottledException = true, TooManyRequestsException = true, SlowDown = true,
    BandwidthLimitExceeded = true, EC2ThrottledException = true,
    LimitExceededException = true, -- DynamoDB Streams' GetRecords throttling (and the control plane's)
}
local TRANSIENT = {
    InternalServerError = true, InternalFailure = true, ServiceUnavailable = true,
    RequestTimeout = true, RequestTimeoutException = true, PriorRequestNotComplete = true,
}
local CLOCK_SKEW = {
    RequestTimeTooSkewed = true, RequestExpired = true, RequestInTheFuture = true,
    InvalidSignatureException = true, SignatureDoesNotMatch = true, AuthFailure = true,
}
local EXPIRED_CREDENTIALS = {
    ExpiredTokenException = true, ExpiredToken = true, UnrecognizedClientException = true,
    InvalidClientTokenId = true,
}
-- Operations that take ReturnConsumedCapacity (config.return_consumed_capacity adds it to each).
local CAPACITY_OPS = {
    GetItem = true, PutItem = true, UpdateItem = true, DeleteItem = true, Query = true, Scan = true,
    BatchGetItem = true, BatchWriteItem = true, TransactWriteItems = true, TransactGetItems = true,
}
local READ_OPS = {
    GetItem = true, Query = true, Scan = true, BatchGetItem = true, TransactGetItems = true,
    ExecuteStatement = true, BatchExecuteStatement = true,
}
-- Operations whose attempts share one ClientRequestToken (the client adds it unless given).
local TOKEN_OPS = { TransactWriteItems = true, ExecuteTransaction = true }
local CAPACITY_MODES = { TOTAL = true, INDEXES = true, NONE = true }

local function env(name)
    local v = os.getenv(name)
    if v == "" then return nil end
    return v
end

local function check_type(v, want, name, level)
    if v ~= nil and type(v) ~= want then
        error("bad config field '" .. name .. "' (" .. want .. " expected, got " .. type(v) .. ")", level + 1)
    end
end

-- "https://host[:port][/path]" -> url, host header value, path; raises a ValidationError. A
-- user:password@ is dropped (requests are signed; it would only leak into Host and messages) and
-- never quoted.
local function parse_endpoint(endpoint)
    local scheme, authority, path = endpoint:match("^(https?)://([^/?#]+)(/?[^?#]*)$")
    authority = authority and (authority:match("^.*@(.*)$") or authority)
    if not scheme or authority == "" then
        local shown = endpoint:gsub("^(%a[%w+.-]*://)[^/?#]*@", "%1***@")
        if shown == endpoint then shown = endpoint:gsub("^[^/?#]*@", "***@") end
        errors.validation("endpoint must be http(s)://host[:port][/path], got %q", shown)
    end
    if path == "" then path = "/" end
    local host = authority:lower()
    if (scheme == "https" and host:match(":443$")) or (scheme == "http" and host:match(":80$")) then
        host = host:gsub(":%d+$", "")
    end
    return scheme .. "://" .. authority .. path, host, path
end

-- nginx phases in which ngx.socket.tcp works (ngx_lua's docs): the request phases and timers; not
-- init*, set, log, the header/body filters or the balancer.
local COSOCKET_PHASES = {
    rewrite = true, access = true, content = true, timer = true,
    ssl_cert = true, ssl_session_fetch = true, ssl_client_hello = true,
}

-- -> transport, kind ("curl", "cosocket", or nil for a caller's transport object)
local function default_transport(config)
    local kind = config.transport
    if type(kind) == "table" then return kind end
    if kind == nil and type(ngx) == "table" and ngx.get_phase and COSOCKET_PHASES[ngx.get_phase()] then
        kind = "cosocket"
    end
    local opts = {
        connect_timeout_ms = config.connect_timeout_ms,
        timeout_ms = config.timeout_ms,
        ca_file = config.ca_file,
        verify = config.verify,
    }
    if kind == nil or kind == "curl" then
        return require("authhero.aws.transport.curl").new(opts), "curl"
    end
    if kind == "cosocket" then
        return require("authhero.aws.transport.cosocket").new(opts), "cosocket"
    end
    error("bad config field 'transport' (\"curl\", \"cosocket\" or a transport object expected)", 3)
end

-- new(config) -> client. README "Client options" lists the fields.
function _M.new(config)
    config = config or {}
    check_type(config, "table", "config", 2)
    for _, f in ipairs({ "region", "endpoint", "streams_endpoint", "profile", "ca_file" }) do
        check_type(config[f], "string", f, 2)
    end
    for _, f in ipairs({ "timeout_ms", "connect_timeout_ms", "max_attempts", "max_time_ms" }) do
        check_type(config[f], "number", f, 2)
    end
    check_type(config.credentials, "table", "credentials", 2)
    check_type(config.on_request, "function", "on_request", 2)
    local region = config.region or env("AWS_REGION") or env("AWS_DEFAULT_REGION")
    if not region then
        errors.raise(400, "ValidationError",
            "no AWS region: set config.region, AWS_REGION or AWS_DEFAULT_REGION")
    end
    if not region:match("^[a-z0-9-]+$") then errors.validation("invalid region %q", region) end
    local custom = config.endpoint or env("AWS_ENDPOINT_URL_DYNAMODB") or env("AWS_ENDPOINT_URL")
    local url, host, path = parse_endpoint(custom or ("https://dynamodb." .. region .. ".amazonaws.com"))
    -- Streams: config.streams_endpoint, else AWS_ENDPOINT_URL_DYNAMODB_STREAMS, else a custom
    -- DynamoDB endpoint (DynamoDB Local answers both APIs), else AWS's streams endpoint.
    local s_url, s_host, s_path = parse_endpoint(config.streams_endpoint or env("AWS_ENDPOINT_URL_DYNAMODB_STREAMS")
        or custom or ("https://streams.dynamodb." .. region .. ".amazonaws.com"))
    local max_attempts = config.max_attempts or DEFAULT_MAX_ATTEMPTS
    if max_attempts < 1 or max_attempts ~= math.floor(max_attempts) then
        errors.validation("max_attempts must be a positive integer")
    end
    local max_time_ms = config.max_time_ms or DEFAULT_MAX_TIME_MS
    if max_time_ms < 0 then errors.validation("max_time_ms must not be negative") end
    local deadline_ms = config.deadline_ms
    if deadline_ms ~= nil and not (type(deadline_ms) == "number" and deadline_ms >= 1 and deadline_ms < math.huge) then
        errors.validation("deadline_ms must be a number of milliseconds, at least 1, got %s", tostring(deadline_ms))
    end
    local rcc = config.return_consumed_capacity
    if rcc == true then
        rcc = "TOTAL"
    elseif rcc == false then
        rcc = nil
    elseif rcc ~= nil and not CAPACITY_MODES[rcc] then
        errors.validation("return_consumed_capacity must be true, \"TOTAL\", \"INDEXES\" or \"NONE\", got %s",
            type(rcc) == "string" and string.format("%q", rcc) or tostring(rcc))
    end
    local self = setmetatable({
        region = region,
        endpoint = url,
        streams_endpoint = s_url,
        stats = { requests = 0, retries = 0, read_capacity = 0, write_capacity = 0 },
        _host = host,
        _path = path,
        _max_attempts = max_attempts,
        _max_time = max_time_ms / 1000,
        _timeout_ms = config.timeout_ms or DEFAULT_TIMEOUT_MS,
        _deadline_ms = deadline_ms,
        _on_request = config.on_request,
        _quota = QUOTA_INITIAL,
        _clock_offset = 0,
        _sleep = config.sleep or core.sleep,
        _now = config.now or core.now,
        _random = config.random or math.random,
        _log = config.log,
        _sign_params = { method = "POST", path = path, query = "", region = region, service = "dynamodb",
            headers = false, body = false, access_key_id = false, secret_access_key = false, amz_date = false },
        _rcc = rcc,
    }, mt)
    -- what a Streams call uses instead of the client's own endpoint, host and signing parameters
    self._streams = { url = s_url, host = s_host, prefix = STREAMS_PREFIX,
        sign = { method = "POST", path = s_path, query = "", region = region, service = "dynamodb",
            headers = false, body = false, access_key_id = false, secret_access_key = false, amz_date = false } }
    local transport, kind = default_transport(config)
    self._transport = transport
    local factory = config.transport_factory
    if kind == "cosocket" then
        -- inside nginx: back off with ngx.sleep and fetch container/IMDS credentials over cosockets
        -- too; core.sleep and libcurl would block the whole worker
        if config.sleep == nil then self._sleep = ngx.sleep end
        factory = factory or function(opts) return require("authhero.aws.transport.cosocket").new(opts) end
    end
    local credentials = require "authhero.aws.credentials"
    self._credentials = config.credentials_provider or credentials.new({
        credentials = config.credentials,
        profile = config.profile,
        transport_factory = factory,
    })
    return self
end

-- An error reply -> the error object. DynamoDB Local writes "Message", AWS "message".
local function reply_error(res)
    local ok, body = pcall(core.decode_reply, res.body or "")
    local request_id = res.headers and (res.headers["x-amzn-requestid"] or res.headers["x-amz-request-id"])
    local code, message
    if ok and type(body) == "table" then
        local t = body.__type
        code = type(t) == "string" and (t:match("#(.*)$") or t) or nil
        message = body.message or body.Message
    else
        body = nil
    end
    if not code then
        code = res.status == 429 and "TooManyRequestsException" or "UnknownError"
        message = message or string.format("HTTP %d: %s", res.status, tostring(res.body or ""):sub(1, 200))
    end
    return errors.new(res.status, code, type(message) == "string" and message or code,
        { request_id = request_id, cause = body })
end

-- TransactionCanceled is retryable only when no reason is a condition failure or validation.
local function cancellation_retryable(err)
    local reasons = type(err.cause) == "table" and err.cause.CancellationReasons
    if type(reasons) ~= "table" then return false end
    local any = false
    for _, r in ipairs(reasons) do
        local c = r.Code
        if c == "TransactionConflict" or c == "ThrottlingError" or c == "ProvisionedThroughputExceeded" then
            any = true
        elseif c ~= "None" and c ~= nil then
            return false
        end
    end
    return any
end

-- Sets err.retryable and returns the kind: "throttle", "transient", "skew", "credentials" or nil.
local function classify(err)
    local code = err.code
    local kind
    if code == "TransportError" then
        kind = err.retryable and "transient" or nil
    elseif THROTTLING[code] or err.status == 429 then
        kind = "throttle"
    elseif code == "TransactionCanceledException" then
        kind = cancellation_retryable(err) and "throttle" or nil
    elseif CLOCK_SKEW[code] and err.status == 400 or code == "RequestTimeTooSkewed" then
        local m = tostring(err.message):lower()
        if code ~= "InvalidSignatureException" and code ~= "SignatureDoesNotMatch" and code ~= "AuthFailure"
            or m:find("expired", 1, true) or m:find("skew", 1, true) or m:find("time", 1, true) then
            kind = "skew"
        end
    elseif EXPIRED_CREDENTIALS[code] then
        kind = "credentials"
    elseif code == "ReplicatedWriteConflictException" then
        kind = "transient" -- MRSC: a concurrent write in another Region won; this one was not applied (a 4xx)
    elseif TRANSIENT[code] or (err.status >= 500 and err.status <= 599) then
        kind = "transient"
    end
    err.retryable = kind ~= nil
    return kind
end

-- "Wed, 26 Nov 2026 10:58:21 GMT" -> epoch seconds, or nil.
local MONTHS = { Jan = 1, Feb = 2, Mar = 3, Apr = 4, May = 5, Jun = 6, Jul = 7, Aug = 8, Sep = 9, Oct = 10,
    Nov = 11, Dec = 12 }
local function parse_http_date(s)
    if type(s) ~= "string" then return nil end
    local d, mon, y, hh, mm, ss = s:match("(%d+) (%a%a%a) (%d%d%d%d) (%d%d):(%d%d):(%d%d)")
    if not d or not MONTHS[mon] then return nil end
    return util.days_from_civil(tonumber(y), MONTHS[mon], tonumber(d)) * 86400 + hh * 3600 + mm * 60 + ss
end
_M._parse_http_date = parse_http_date

-- each_capacity(op, cc, fn, arg): fn(arg, "read" | "write", units) for every part of a
-- ConsumedCapacity (one table, or a list for batches and transactions). Read/WriteCapacityUnits
-- when DynamoDB splits them, else CapacityUnits, counted by what op is (READ_OPS). client.stats and
-- authhero.aws.metrics both count capacity through it.
local function each_capacity(op, cc, fn, arg)
    if type(cc) ~= "table" then return end
    if cc[1] ~= nil then
        for _, c in ipairs(cc) do each_capacity(op, c, fn, arg) end
        return
    end
    local r, w = cc.ReadCapacityUnits, cc.WriteCapacityUnits
    if type(r) == "number" or type(w) == "number" then
        if type(r) == "number" then fn(arg, "read", r) end
        if type(w) == "number" then fn(arg, "write", w) end
    elseif type(cc.CapacityUnits) == "number" then
        fn(arg, READ_OPS[op] and "read" or "write", cc.CapacityUnits)
    end
end
_M.each_capacity = each_capacity

local function add_to_stats(stats, kind, units)
    if kind == "read" then
        stats.read_capacity = stats.read_capacity + units
    else
        stats.write_capacity = stats.write_capacity + units
    end
end

local function add_capacity(stats, op, cc)
    each_capacity(op, cc, add_to_stats, stats)
end

-- amz_date changes once a second: format it only then.
local function amz_date_of(self)
    local t = math.floor(self._now() + self._clock_offset)
    if t ~= self._date_t then
        self._date_t = t
        self._date_s = os.date("!%Y%m%dT%H%M%SZ", t)
    end
    return self._date_s
end

-- _signed_headers(op, body [, streams]): streams = self._streams for a DynamoDB Streams call.
function _M._signed_headers(self, op, body, streams)
    local creds = self._credentials:get()
    local amz_date = amz_date_of(self)
    local headers = {
        { "host", streams and streams.host or self._host },
        { "content-type", "application/x-amz-json-1.0" },
        { "x-amz-date", amz_date },
        { "x-amz-target", (streams and streams.prefix or TARGET_PREFIX) .. op },
    }
    if creds.session_token then headers[5] = { "x-amz-security-token", creds.session_token } end
    -- one table per client, refilled per call: sigv4_sign runs to completion without yielding, so
    -- coroutines sharing the client never see it half-filled
    local sp = streams and streams.sign or self._sign_params
    sp.headers, sp.body, sp.amz_date = headers, body, amz_date
    sp.access_key_id, sp.secret_access_key = creds.access_key_id, creds.secret_access_key
    local auth = core.sigv4_sign(sp)
    sp.headers, sp.body, sp.secret_access_key = false, false, false -- keep the slots, drop the values
    headers[#headers + 1] = { "authorization", auth }
    return headers
end

-- The table(s) a call names, for errors: TableName, else the sorted names of a batch's
-- RequestItems or a transaction's items, joined by ", "; nil when none.
local function tables_of(params)
    if type(params.TableName) == "string" then return params.TableName end
    local names, seen = {}, {}
    local function add(n)
        if type(n) == "string" and not seen[n] then
            seen[n] = true
            names[#names + 1] = n
        end
    end
    if type(params.RequestItems) == "table" then
        for name in pairs(params.RequestItems) do add(name) end
    end
    if type(params.TransactItems) == "table" then
        for _, t in ipairs(params.TransactItems) do
            if type(t) == "table" then
                for _, v in pairs(t) do
                    if type(v) == "table" then add(v.TableName) end
                end
            end
        end
    end
    if #names == 0 then return nil end
    table.sort(names)
    return table.concat(names, ", ")
end
_M._tables_of = tables_of

-- Does an UpdateExpression only assign values (SET a = :v, if_not_exists, REMOVE)? Arithmetic,
-- list_append and the ADD/DELETE clauses change the item again when applied twice. Placeholders
-- (#name, :value) are dropped first; ADD and DELETE are reserved words, never bare attribute names.
local function assigns_only(expr)
    if type(expr) ~= "string" then return true end
    local e = expr:gsub("[#:][%w_]+", " "):lower()
    if e:find("[%+%-]") or e:find("list_append", 1, true) then return false end
    return not (e:find("%f[%w_]add%f[^%w_]") or e:find("%f[%w_]delete%f[^%w_]"))
end
_M._assigns_only = assigns_only

local function is_select(stmt)
    return type(stmt) == "string" and stmt:match("^%s*[Ss][Ee][Ll][Ee][Cc][Tt]%f[%W]") ~= nil
end

local function all_select(statements)
    for _, st in ipairs(type(statements) == "table" and statements or {}) do
        if type(st) ~= "table" or not is_select(st.Statement) then return false end
    end
    return true
end

-- A call that changes nothing (its errors never carry maybe_applied).
local function is_read(op, params)
    if op == "GetItem" or op == "Query" or op == "Scan" or op == "BatchGetItem" or op == "TransactGetItems"
        or op:match("^Describe") or op:match("^List") or op == "GetRecords" or op == "GetShardIterator" then
        return true
    end
    if op == "ExecuteStatement" then return is_select(params.Statement) end
    if op == "BatchExecuteStatement" then return all_select(params.Statements) end
    return false
end

-- Is a call safe to send twice, by what it asks (see the header)?
local function idempotent_by_nature(op, params)
    if is_read(op, params) or op == "BatchWriteItem" then return true end
    local conditional = params.ConditionExpression ~= nil or params.Expected ~= nil
    if op == "PutItem" or op == "DeleteItem" then return not conditional end
    if op == "UpdateItem" then
        if conditional then return false end
        if type(params.AttributeUpdates) == "table" then
            for _, u in pairs(params.AttributeUpdates) do
                if type(u) == "table" and u.Action ~= nil and u.Action ~= "PUT" and u.Action ~= "DELETE" then
                    return false
                end
            end
        end
        return assigns_only(params.UpdateExpression)
    end
    if TOKEN_OPS[op] then return params.ClientRequestToken ~= nil end
    if op == "ExecuteStatement" or op == "BatchExecuteStatement" then return false end -- PartiQL writes
    return true -- the control plane (CreateTable, UpdateTimeToLive, ...): a repeat fails cleanly
end
_M._idempotent_by_nature = idempotent_by_nature

-- Could the server have acted on the attempt that ended in err? False only when the error proves
-- it did not: no connection, a request that never went out whole (the transports' err.sent), an
-- answer that rejects it (throttling, any 4xx: DynamoDB checks before it writes, and a cancelled
-- transaction writes nothing). 5xx replies, timeouts and resets after sending, a reply that fails
-- its checksum or does not decode: maybe.
local function may_have_acted(err)
    local code = err.code
    if code == "TransportError" then
        local r = err.reason
        if r == "connect" or r == "dns" or r == "tls" then return err.sent == true end
        return err.sent ~= false
    end
    if code == "MarshalError" then return true end -- only a reply that did not decode gets here
    if THROTTLING[code] or err.status == 429 then return false end
    return type(err.status) == "number" and err.status >= 500 or TRANSIENT[code] == true
end

-- Raises err with what the call was (op, table, attempts; maybe_applied when a write's attempt may
-- have acted). Only failures get here, so the success path pays for none of it.
local function fail(err, op, params, attempt, maybe)
    if errors.is(err) then
        err.op, err.table = op, tables_of(params)
        err.attempts = attempt
        if maybe and not is_read(op, params) then err.maybe_applied = true end
    end
    error(err, 0)
end

-- The error of a call past its deadline; last: the last attempt's error (nil when none ran); scope:
-- the within() scope when its deadline was the call's (then deadline_ms is the scope's ms).
local function deadline_error(last, deadline_ms, elapsed, scope)
    if scope then deadline_ms = scope.ms end
    return errors.new(0, "TransportError", string.format("%s (%g ms) passed%s",
        scope and "within() deadline" or "deadline_ms", deadline_ms,
        last and ("; last attempt: " .. tostring(last)) or ""), {
        reason = "deadline", retryable = false, gave_up = "deadline", deadline_ms = deadline_ms,
        within = scope and true or nil,
        elapsed_ms = math.floor(elapsed * 1000 + 0.5), last_error = last, request_id = last and last.request_id,
    })
end

-- within() scopes (see the header): coroutine -> { deadline = seconds on scope_clock, ms = the
-- within()'s ms }. coroutine.running() is nil in the main thread of PUC 5.1 and LuaJIT: MAIN stands
-- for it. active counts the scopes open in every coroutine: at 0, call() does not look.
local scopes = setmetatable({}, { __mode = "k" })
local MAIN = {}
local active = 0
local scope_clock = core.now

local function leave(co, prev, ok, ...)
    scopes[co] = prev
    active = active - 1
    if not ok then error((...), 0) end
    return ...
end

-- within(ms, fn, ...) -> fn(...)'s results; see the header.
function _M.within(ms, fn, ...)
    if type(ms) ~= "number" or not (ms > 0 and ms < math.huge) then
        errors.validation("within: ms must be a positive number of milliseconds, got %s",
            type(ms) == "string" and string.format("%q", ms) or tostring(ms))
    end
    if type(fn) ~= "function" then
        error("bad argument #2 to 'within' (function expected, got " .. type(fn) .. ")", 2)
    end
    local co = coroutine.running() or MAIN
    local prev = scopes[co]
    local deadline = scope_clock() + ms / 1000
    scopes[co] = (prev and prev.deadline <= deadline) and prev or { deadline = deadline, ms = ms }
    active = active + 1
    return leave(co, prev, pcall(fn, ...))
end

-- scope_left() -> seconds left in the current coroutine's within() scope (0 or less once it has
-- passed), or nil when none is open (cache.lua bounds its waits by it).
function _M.scope_left()
    if active == 0 then return nil end
    local s = scopes[coroutine.running() or MAIN]
    return s and s.deadline - scope_clock()
end

-- _scope_error(waited_s, note) -> the deadline TransportError of the current coroutine's scope (nil
-- when none is open), for a wait that is not a call (cache.lua); note: what was waited for.
function _M._scope_error(waited_s, note)
    local s = active > 0 and scopes[coroutine.running() or MAIN]
    if not s then return nil end
    local err = deadline_error(nil, s.ms, waited_s or 0, s)
    if note then err.message = err.message .. "; " .. note end
    return err
end

-- _scope_clock(fn) -> the previous clock: the clock of within() scopes (default core.now, the
-- client's default `now`), for specs that give their clients a fake one; nil restores core.now.
function _M._scope_clock(fn)
    local prev = scope_clock
    scope_clock = fn or core.now
    return prev
end

local CALL_OPTIONS = { idempotent = true, timeout_ms = true, max_attempts = true, deadline_ms = true }

local function is_int(v, lo, hi)
    return type(v) == "number" and v == math.floor(v) and v >= lo and v <= hi
end

-- The options of one call -> idempotent, timeout_ms, max_attempts, deadline_ms (nil when not
-- given); a bad one is a ValidationError, before any request.
local function call_options(opts)
    for k in pairs(opts) do
        if not CALL_OPTIONS[k] then
            errors.validation("unknown call option %s (idempotent, timeout_ms, max_attempts or deadline_ms)",
                type(k) == "string" and string.format("%q", k) or tostring(k))
        end
    end
    local idempotent, timeout_ms, max_attempts, deadline_ms = opts.idempotent, opts.timeout_ms, opts.max_attempts,
        opts.deadline_ms
    if idempotent ~= nil and type(idempotent) ~= "boolean" then
        errors.validation("call option idempotent must be a boolean, got %s", type(idempotent))
    end
    if timeout_ms ~= nil and not is_int(timeout_ms, 1, MAX_TIMEOUT_MS) then
        errors.validation("call option timeout_ms must be an integer from 1 to %d (ms), got %s", MAX_TIMEOUT_MS,
            tostring(timeout_ms))
    end
    if max_attempts ~= nil and not (is_int(max_attempts, 1, math.huge) and max_attempts < math.huge) then
        errors.validation("call option max_attempts must be a positive integer, got %s", tostring(max_attempts))
    end
    if deadline_ms ~= nil and not (type(deadline_ms) == "number" and deadline_ms >= 1 and deadline_ms < math.huge) then
        errors.validation("call option deadline_ms must be a number of milliseconds, at least 1, got %s",
            tostring(deadline_ms))
    end
    return idempotent, timeout_ms, max_attempts, deadline_ms
end

-- The on_request hook, after every attempt (one-off retries and transport errors included): a fresh
-- event { op, table, status (HTTP; 0 when no reply), code (nil on success), reason (a
-- TransportError's), attempt (requests this call has sent, 1-based), latency_ms, request_id,
-- consumed_capacity, bytes_sent, bytes_received (request and reply bodies), retry (the client
-- will send another attempt) }. Never headers, credentials or signatures. A hook that raises does
-- not break the call: its error goes to config.log as ("on_request_error", op, attempt, message).
local function emit(self, hook, op, tname, n, t0, bytes_sent, status, res, reply, err, retry)
    local ev = {
        op = op, table = tname, status = status, attempt = n, latency_ms = (self._now() - t0) * 1000,
        bytes_sent = bytes_sent, bytes_received = 0, retry = retry,
    }
    if res then
        ev.bytes_received = res.received or (type(res.body) == "string" and #res.body) or 0
        ev.request_id = res.request_id or (res.headers and res.headers["x-amzn-requestid"])
    end
    if reply then
        ev.consumed_capacity = reply.ConsumedCapacity
    else
        ev.code, ev.reason = err.code, err.reason
        ev.request_id = ev.request_id or err.request_id
    end
    local ok, e = pcall(hook, ev)
    if not ok and self._log then pcall(self._log, "on_request_error", op, n, tostring(e)) end
end

-- call(op, params [, opts]) -> the reply with items unmarshalled; raises the error object.
-- opts: idempotent (true or false overrides the call's own classification, see the header),
-- timeout_ms, max_attempts, deadline_ms (per-call options, see the header).
-- The argument checks of call(op, params), shared with the stand-ins for a client (aws.global):
-- raises at the caller of call (level 3 from here).
function _M._check_call(op, params)
    if type(op) ~= "string" or not op:match("^%u%a+$") then
        error("bad argument #1 to 'call' (DynamoDB operation name expected, got " .. tostring(op) .. ")", 3)
    end
    if params ~= nil and type(params) ~= "table" then
        error("bad argument #2 to 'call' (table expected, got " .. type(params) .. ")", 3)
    end
end
local check_call = _M._check_call

function _M.call(self, op, params, opts)
    check_call(op, params)
    local declared, timeout_ms, max_attempts, deadline_ms
    if opts ~= nil then
        if type(opts) ~= "table" then
            error("bad argument #3 to 'call' (table expected, got " .. type(opts) .. ")", 2)
        end
        declared, timeout_ms, max_attempts, deadline_ms = call_options(opts)
    end
    max_attempts = max_attempts or self._max_attempts
    deadline_ms = deadline_ms or self._deadline_ms
    params = params or {}
    local add_rcc = self._rcc and CAPACITY_OPS[op] and params.ReturnConsumedCapacity == nil
    local add_token = TOKEN_OPS[op] and params.ClientRequestToken == nil
    if add_rcc or add_token then
        local p = {}
        for k, v in pairs(params) do p[k] = v end
        if add_rcc then p.ReturnConsumedCapacity = self._rcc end
        if add_token then p.ClientRequestToken = util.new_id(32) end -- one per call, 1-36 characters
        params = p
    end
    local idempotent = declared -- nil: by what the call asks (idempotent_by_nature), decided on a failure
    local attempt, maybe = 0, false
    local eok, body = pcall(core.encode_request, params) -- bad input raises here, before any request
    if not eok then fail(body, op, params, attempt, maybe) end
    local transport = self._transport
    local streams = STREAMS_OPS[op] and self._streams or nil
    local req = { method = "POST", url = streams and streams.url or self.endpoint, headers = nil, body = body,
        decode = true, timeout_ms = timeout_ms }
    local hook, tname, sent = self._on_request, nil, 0 -- sent: requests so far (the hook's attempt)
    if hook then
        req.meta = true
        tname = tables_of(params)
    end
    local now = self._now
    local started = now()
    local deadline, clipped, last_err = deadline_ms and started + deadline_ms / 1000, false, nil
    local scoped -- the within() scope, when its deadline comes before the call's own
    if active > 0 then
        local s = scopes[coroutine.running() or MAIN]
        if s then
            local at = started + (s.deadline - scope_clock()) -- in this client's clock
            if not deadline or at < deadline then deadline, scoped = at, s end
        end
    end
    local attempt_ms = timeout_ms or self._timeout_ms
    local skew_fixed, creds_refreshed, reconnected, retry_cost = false, false, false, 0
    while true do
        if deadline then
            -- no attempt starts past the deadline, and none may run past it
            local left = deadline - now()
            if left <= 0 then fail(deadline_error(last_err, deadline_ms, now() - started, scoped), op, params, attempt, maybe) end
            left = math.ceil(left * 1000)
            clipped = left < attempt_ms
            req.timeout_ms = clipped and left or timeout_ms
        end
        attempt = attempt + 1
        req.headers = self:_signed_headers(op, body, streams)
        self.stats.requests = self.stats.requests + 1
        local t0
        if hook then
            sent = sent + 1
            t0 = now()
        end
        local ok, res = pcall(transport.request, transport, req)
        local err
        if ok and res.status == 200 then
            local reply = res.reply
            if reply == nil then
                local dok, r = pcall(core.decode_reply, res.body)
                if dok then reply = r elseif errors.is(r) then err = r else error(r, 0) end
            end
            if reply ~= nil then
                self._quota = math.min(QUOTA_INITIAL, self._quota + (retry_cost > 0 and retry_cost or NO_RETRY_REFILL))
                add_capacity(self.stats, op, reply.ConsumedCapacity)
                if hook then emit(self, hook, op, tname, sent, t0, #body, 200, res, reply, nil, false) end
                return reply
            end
        elseif ok then
            err = reply_error(res)
        elseif errors.is(res) then
            err = res
        else
            error(res, 0) -- a bug, not a condition
        end
        local kind = classify(err)
        local acted = may_have_acted(err)
        maybe = maybe or acted
        if acted and idempotent == nil then idempotent = idempotent_by_nature(op, params) end
        -- final: the error to raise; nil: try again (after sleeping delay, when set)
        local final, delay
        if clipped and err.reason == "timeout" and err.code == "TransportError" then
            -- the attempt ran out of the call's time, not its own
            final = deadline_error(err, deadline_ms, now() - started, scoped)
        elseif acted and not idempotent and kind ~= nil then
            -- re-sending could apply the write a second time: leave that to the caller
            err.retryable = false
            err.gave_up = "not idempotent"
            final = err
        -- The one-off retries below (clock skew, expired credentials) happen at most once per call,
        -- outside the attempt budget and quota: the server refused those requests unread.
        elseif err.reason == "stale" and not reconnected then
            -- a kept-alive connection died under the request (the server closed it, or the reply was
            -- lost): reconnect at once; it counts as an attempt (the transport never replays)
            if attempt >= max_attempts then
                err.gave_up = "attempts"
                final = err
            else
                reconnected = true
                self.stats.retries = self.stats.retries + 1
            end
        elseif kind == "skew" and not skew_fixed then
            -- correct the clock from the server's Date and retry once
            local server = parse_http_date(ok and res.headers and res.headers.date)
            if not server then
                final = err
            else
                self._clock_offset = server - now()
                skew_fixed = true
                attempt = attempt - 1
                self.stats.retries = self.stats.retries + 1
            end
        elseif kind == "credentials" and not creds_refreshed and self._credentials.invalidate then
            self._credentials:invalidate()
            creds_refreshed = true
            attempt = attempt - 1
            self.stats.retries = self.stats.retries + 1
        elseif kind == "throttle" or kind == "transient" then
            local cost = (err.reason == "timeout") and TIMEOUT_RETRY_COST or RETRY_COST
            if attempt >= max_attempts then
                err.gave_up = "attempts"
                final = err
            elseif self._quota < cost then
                err.quota_exhausted = true
                err.gave_up = "quota"
                final = err
            else
                local base = kind == "throttle" and THROTTLE_BASE_DELAY or BASE_DELAY
                delay = self._random() * math.min(MAX_DELAY, base * 2 ^ (attempt - 1))
                local elapsed = now() - started
                if elapsed + delay > self._max_time then
                    err.gave_up = "time"
                    err.elapsed_ms = math.floor(elapsed * 1000 + 0.5)
                    final = err
                elseif deadline and started + elapsed + delay >= deadline then
                    final = deadline_error(err, deadline_ms, elapsed, scoped) -- the sleep would end past it
                else
                    self._quota = self._quota - cost
                    retry_cost = cost -- a success refunds the last retry's cost (as the SDKs do)
                    self.stats.retries = self.stats.retries + 1
                end
            end
        else
            if kind == "skew" or kind == "credentials" then err.retryable = false end -- already retried
            final = err
        end
        if final == nil and deadline and not delay and now() >= deadline then
            final = deadline_error(err, deadline_ms, now() - started, scoped) -- no time left for the one-off retry
        end
        if hook then
            emit(self, hook, op, tname, sent, t0, #body, ok and res.status or (err.code == "MarshalError" and 200 or 0),
                ok and res or nil, nil, err, final == nil)
        end
        if final then fail(final, op, params, attempt, maybe) end
        last_err = err
        if delay then
            if self._log then self._log("retry", op, attempt, err.code, delay) end
            self._sleep(delay)
        end
    end
end

-- paginate(op, params [, opts]) -> iterator over pages (replies), following LastEvaluatedKey;
-- opts: call's options, for every page.
function _M.paginate(self, op, params, opts)
    params = params or {}
    local start, done = params.ExclusiveStartKey, false
    return function()
        if done then return nil end
        local p = {}
        for k, v in pairs(params) do p[k] = v end
        p.ExclusiveStartKey = start
        local page = self:call(op, p, opts)
        start = page.LastEvaluatedKey
        done = start == nil
        return page
    end
end

local function backoff(self, round)
    self._sleep(self._random() * math.min(MAX_DELAY, BASE_DELAY * 2 ^ round))
end

local MAX_UNPROCESSED_ROUNDS = 8

-- Sends list in chunks of `size` through send(chunk) -> the chunk's unprocessed entries, re-sending
-- those with backoff for up to MAX_UNPROCESSED_ROUNDS rounds. Returns what is still unprocessed;
-- when a call fails, raises with err.unprocessed = every entry not yet done.
local function in_chunks(self, list, size, send)
    local left, n = {}, #list
    for i = 1, n, size do
        local chunk = {}
        for j = i, math.min(i + size - 1, n) do chunk[#chunk + 1] = list[j] end
        local round = 0
        while #chunk > 0 do
            local ok, un = pcall(send, chunk)
            if not ok then
                if errors.is(un) then
                    local rest = {}
                    for _, r in ipairs(left) do rest[#rest + 1] = r end
                    for _, r in ipairs(chunk) do rest[#rest + 1] = r end
                    for j = i + size, n do rest[#rest + 1] = list[j] end
                    un.unprocessed = rest
                end
                error(un, 0)
            end
            chunk = un
            if #chunk > 0 then
                round = round + 1
                if round > MAX_UNPROCESSED_ROUNDS then
                    for _, r in ipairs(chunk) do left[#left + 1] = r end
                    break
                end
                self.stats.retries = self.stats.retries + 1
                backoff(self, round)
            end
        end
    end
    return left
end

-- batch_write(table_name, requests [, opts]) -> unprocessed requests (empty when all written).
-- requests: { {PutRequest = {Item = ...}} | {DeleteRequest = {Key = ...}}, ... }, chunked by 25.
-- UnprocessedItems are re-submitted with backoff; what still could not be written is returned,
-- never dropped. A failed call raises with err.unprocessed = every request not yet written.
function _M.batch_write(self, table_name, requests, opts)
    if type(table_name) ~= "string" then error("bad argument #1 to 'batch_write' (string expected)", 2) end
    if type(requests) ~= "table" then error("bad argument #2 to 'batch_write' (table expected)", 2) end
    opts = opts or {}
    return in_chunks(self, requests, 25, function(chunk)
        local reply = self:call("BatchWriteItem", {
            RequestItems = { [table_name] = chunk },
            ReturnConsumedCapacity = opts.ReturnConsumedCapacity,
        })
        return reply.UnprocessedItems and reply.UnprocessedItems[table_name] or {}
    end)
end

-- batch_get(table_name, keys [, opts]) -> items, unprocessed keys (chunked by 100).
-- opts: ProjectionExpression, ExpressionAttributeNames, ConsistentRead, ReturnConsumedCapacity.
function _M.batch_get(self, table_name, keys, opts)
    if type(table_name) ~= "string" then error("bad argument #1 to 'batch_get' (string expected)", 2) end
    if type(keys) ~= "table" then error("bad argument #2 to 'batch_get' (table expected)", 2) end
    opts = opts or {}
    local items = core.array({})
    local left = in_chunks(self, keys, 100, function(chunk)
        local reply = self:call("BatchGetItem", {
            RequestItems = { [table_name] = {
                Keys = chunk,
                ProjectionExpression = opts.ProjectionExpression,
                ExpressionAttributeNames = opts.ExpressionAttributeNames,
                ConsistentRead = opts.ConsistentRead,
            } },
            ReturnConsumedCapacity = opts.ReturnConsumedCapacity,
        })
        local got = reply.Responses and reply.Responses[table_name]
        if got then for _, it in ipairs(got) do items[#items + 1] = it end end
        local un = reply.UnprocessedKeys and reply.UnprocessedKeys[table_name]
        return un and un.Keys or {}
    end)
    return items, left
end

-- changes(table_name [, opts]) -> iterator, feed: the table's stream as change events
-- (authhero.aws.streams has the options and the checkpoint).
function _M.changes(self, table_name, opts)
    return require("authhero.aws.streams").changes(self, table_name, opts)
end

function _M.close(self)
    if self._transport and self._transport.close then self._transport:close() end
end

mt.__close = _M.close

return _M
