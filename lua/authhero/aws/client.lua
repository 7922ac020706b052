-- The DynamoDB client: client:call(op, params) -> decoded reply, or raises the error object.
-- Owns policy: endpoint and region resolution, credentials, signing headers, the AWS SDK
-- "standard" retry mode (backoff, retry quota, clock-skew correction), error mapping, stats, and
-- the pagination and batch helpers. Byte work (signing, JSON, HTTP) is the C core's.
local core = require "authhero.aws.core"
local errors = require "authhero.aws.errors"
local util = require "authhero.aws.util"

local _M = {}
local mt = { __index = _M }

local TARGET_PREFIX = "DynamoDB_20120810."
local DEFAULT_MAX_ATTEMPTS = 3
local BASE_DELAY, THROTTLE_BASE_DELAY, MAX_DELAY = 0.05, 1.0, 20.0
-- Retry quota, as the SDKs' standard mode: a failing backend drains it, successes refill it.
local QUOTA_INITIAL, RETRY_COST, TIMEOUT_RETRY_COST, NO_RETRY_REFILL = 500, 5, 10, 1

local THROTTLING = {
    ThrottlingException = true, Throttling = true, ThrottledException = true,
    ProvisionedThroughputExceededException = true, RequestLimitExceeded = true,
    TransactionInProgressException = true, RequestThrottled = true,
    RequestThrottledException = true, TooManyRequestsException = true, SlowDown = true,
    BandwidthLimitExceeded = true, EC2ThrottledException = true,
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

-- "https://host[:port][/path]" -> url, host header value, path; raises a ValidationError.
local function parse_endpoint(endpoint)
    local scheme, authority, path = endpoint:match("^(https?)://([^/?#]+)(/?[^?#]*)$")
    if not scheme then
        errors.validation("endpoint must be http(s)://host[:port][/path], got %q", endpoint)
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

-- new(config) -> client. See README "Client" for the fields.
function _M.new(config)
    config = config or {}
    check_type(config, "table", "config", 2)
    for _, f in ipairs({ "region", "endpoint", "profile", "ca_file" }) do check_type(config[f], "string", f, 2) end
    for _, f in ipairs({ "timeout_ms", "connect_timeout_ms", "max_attempts" }) do
        check_type(config[f], "number", f, 2)
    end
    check_type(config.credentials, "table", "credentials", 2)
    local region = config.region or env("AWS_REGION") or env("AWS_DEFAULT_REGION")
    if not region then
        errors.raise(400, "ValidationError",
            "no AWS region: set config.region, AWS_REGION or AWS_DEFAULT_REGION")
    end
    if not region:match("^[a-z0-9-]+$") then errors.validation("invalid region %q", region) end
    local endpoint = config.endpoint or env("AWS_ENDPOINT_URL_DYNAMODB") or env("AWS_ENDPOINT_URL")
        or ("https://dynamodb." .. region .. ".amazonaws.com")
    local url, host, path = parse_endpoint(endpoint)
    local max_attempts = config.max_attempts or DEFAULT_MAX_ATTEMPTS
    if max_attempts < 1 or max_attempts ~= math.floor(max_attempts) then
        errors.validation("max_attempts must be a positive integer")
    end
    local self = setmetatable({
        region = region,
        endpoint = url,
        stats = { requests = 0, retries = 0, read_capacity = 0, write_capacity = 0 },
        _host = host,
        _path = path,
        _max_attempts = max_attempts,
        _quota = QUOTA_INITIAL,
        _clock_offset = 0,
        _sleep = config.sleep or core.sleep,
        _now = config.now or core.now,
        _random = config.random or math.random,
        _log = config.log,
        _sign_params = { method = "POST", path = path, query = "", region = region, service = "dynamodb",
            headers = false, body = false, access_key_id = false, secret_access_key = false, amz_date = false },
        _rcc = config.return_consumed_capacity,
    }, mt)
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

local function add_capacity(stats, op, cc)
    if type(cc) ~= "table" then return end
    if cc[1] ~= nil then
        for _, c in ipairs(cc) do add_capacity(stats, op, c) end
        return
    end
    if cc.ReadCapacityUnits or cc.WriteCapacityUnits then
        stats.read_capacity = stats.read_capacity + (cc.ReadCapacityUnits or 0)
        stats.write_capacity = stats.write_capacity + (cc.WriteCapacityUnits or 0)
    elseif type(cc.CapacityUnits) == "number" then
        if READ_OPS[op] then
            stats.read_capacity = stats.read_capacity + cc.CapacityUnits
        else
            stats.write_capacity = stats.write_capacity + cc.CapacityUnits
        end
    end
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

function _M._signed_headers(self, op, body)
    local creds = self._credentials:get()
    local amz_date = amz_date_of(self)
    local headers = {
        { "host", self._host },
        { "content-type", "application/x-amz-json-1.0" },
        { "x-amz-date", amz_date },
        { "x-amz-target", TARGET_PREFIX .. op },
    }
    if creds.session_token then headers[5] = { "x-amz-security-token", creds.session_token } end
    -- one table per client, refilled per call: sigv4_sign runs to completion without yielding, so
    -- coroutines sharing the client never see it half-filled
    local sp = self._sign_params
    sp.headers, sp.body, sp.amz_date = headers, body, amz_date
    sp.access_key_id, sp.secret_access_key = creds.access_key_id, creds.secret_access_key
    local auth = core.sigv4_sign(sp)
    sp.headers, sp.body, sp.secret_access_key = false, false, false -- keep the slots, drop the values
    headers[#headers + 1] = { "authorization", auth }
    return headers
end

-- call(op, params) -> the reply with items unmarshalled; raises the error object.
function _M.call(self, op, params)
    if type(op) ~= "string" or not op:match("^%u%a+$") then
        error("bad argument #1 to 'call' (DynamoDB operation name expected, got " .. tostring(op) .. ")", 2)
    end
    if params ~= nil and type(params) ~= "table" then
        error("bad argument #2 to 'call' (table expected, got " .. type(params) .. ")", 2)
    end
    if self._rcc and CAPACITY_OPS[op] and (params == nil or params.ReturnConsumedCapacity == nil) then
        local p = { ReturnConsumedCapacity = self._rcc }
        for k, v in pairs(params or {}) do p[k] = v end
        params = p
    end
    local body = core.encode_request(params or {}) -- bad input raises here, before any request
    local transport = self._transport
    local req = { method = "POST", url = self.endpoint, headers = nil, body = body, decode = true }
    local attempt, skew_fixed, creds_refreshed, reconnected, retry_cost = 0, false, false, false, 0
    while true do
        attempt = attempt + 1
        req.headers = self:_signed_headers(op, body)
        self.stats.requests = self.stats.requests + 1
        local ok, res = pcall(transport.request, transport, req)
        local err
        if ok and res.status == 200 then
            local reply = res.reply or core.decode_reply(res.body)
            self._quota = math.min(QUOTA_INITIAL, self._quota + (retry_cost > 0 and retry_cost or NO_RETRY_REFILL))
            add_capacity(self.stats, op, reply.ConsumedCapacity)
            return reply
        elseif ok then
            err = reply_error(res)
        elseif errors.is(res) then
            err = res
        else
            error(res, 0) -- a bug, not a condition
        end
        local kind = classify(err)
        err.attempts = attempt
        -- The one-off retries below (a kept-alive connection the server had closed, clock skew,
        -- expired credentials) happen at most once per call, outside the attempt budget and quota.
        if err.reason == "stale" and not reconnected then
            -- the server closed an idle kept-alive connection under the request (DynamoDB Local
            -- does after ~30 s): reconnect at once; the transport itself never replays a request
            reconnected = true
            attempt = attempt - 1
            self.stats.retries = self.stats.retries + 1
        elseif kind == "skew" and not skew_fixed then
            -- correct the clock from the server's Date and retry once
            local server = parse_http_date(ok and res.headers and res.headers.date)
            if not server then error(err, 0) end
            self._clock_offset = server - self._now()
            skew_fixed = true
            attempt = attempt - 1
            self.stats.retries = self.stats.retries + 1
        elseif kind == "credentials" and not creds_refreshed and self._credentials.invalidate then
            self._credentials:invalidate()
            creds_refreshed = true
            attempt = attempt - 1
            self.stats.retries = self.stats.retries + 1
        elseif kind == "throttle" or kind == "transient" then
            local cost = (err.reason == "timeout") and TIMEOUT_RETRY_COST or RETRY_COST
            if attempt >= self._max_attempts then error(err, 0) end
            if self._quota < cost then
                err.quota_exhausted = true
                error(err, 0)
            end
            self._quota = self._quota - cost
            retry_cost = cost -- a success refunds the last retry's cost (as the SDKs do)
            local base = kind == "throttle" and THROTTLE_BASE_DELAY or BASE_DELAY
            local delay = self._random() * math.min(MAX_DELAY, base * 2 ^ (attempt - 1))
            self.stats.retries = self.stats.retries + 1
            if self._log then self._log("retry", op, attempt, err.code, delay) end
            self._sleep(delay)
        else
            if kind == "skew" or kind == "credentials" then err.retryable = false end -- already retried
            error(err, 0)
        end
    end
end

-- paginate(op, params) -> iterator over pages (replies), following LastEvaluatedKey.
function _M.paginate(self, op, params)
    params = params or {}
    local start, done = params.ExclusiveStartKey, false
    return function()
        if done then return nil end
        local p = {}
        for k, v in pairs(params) do p[k] = v end
        p.ExclusiveStartKey = start
        local page = self:call(op, p)
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

function _M.close(self)
    if self._transport and self._transport.close then self._transport:close() end
end

mt.__close = _M.close

return _M
