-- The OpenResty transport: HTTP/1.1 over ngx.socket.tcp (non-blocking), keep-alive pools per
-- host:port[:tls], TLS verified against nginx's lua_ssl_trusted_certificate, one deadline per request,
-- fixed-length/chunked/read-to-close bodies, the x-amz-crc32 check; curl.lua's interface, errors and
-- reasons. Left out: proxies, HTTP/2, Expect: 100-continue, ca_file. No ngx use at require time.
local core = require "authhero.aws.core"
local errors = require "authhero.aws.errors"

local _M = {}
local mt = { __index = _M }

local DEFAULT_CONNECT_MS, DEFAULT_TIMEOUT_MS, MAX_TIMEOUT_MS = 2000, 10000, 3600000
local DEFAULT_POOL_SIZE, DEFAULT_KEEPALIVE_MS = 64, 20000
local KNOWN = {
    connect_timeout_ms = true, timeout_ms = true, verify = true, ca_file = true,
    pool_size = true, keepalive_timeout_ms = true,
    _socket = true, _now = true, -- test hooks: a socket factory and a clock (seconds), see cosocket_spec
}

local byte, find, lower, sub = string.byte, string.find, string.lower, string.sub
local concat = table.concat

-- crc32(s) -> 0 .. 2^32-1, the x-amz-crc32 value: the C core's (carry-less multiply where the CPU
-- has it; nginx's ngx.crc32_long is table-driven and over ten times slower on a 30 KB reply).
_M._crc32 = core.crc32

-- ---- construction ----

-- opts[key] as an integer from 1 to max, or def when absent; unit names it in the message.
local function opt_int(opts, key, def, max, unit)
    local v = opts[key]
    if v == nil then return def end
    if type(v) ~= "number" or v ~= math.floor(v) or v < 1 or v > max then
        error("bad argument #1 to 'new' (" .. key .. " must be an integer from 1 to " .. max .. unit .. ")", 3)
    end
    return v
end

-- new([opts]) -> transport. opts (all optional): connect_timeout_ms (TCP connect, and again for the
-- TLS handshake; default 2000), timeout_ms (the whole request, default 10000), verify (check the
-- server's certificate and name, default true), pool_size (kept-alive connections per host:port per
-- worker, default 64), keepalive_timeout_ms (idle time in the pool, default 20000). Unknown keys
-- are argument errors, as in the curl transport. No I/O: safe in init phases and at require time.
function _M.new(opts)
    if opts == nil then opts = {} end
    if type(opts) ~= "table" then
        error("bad argument #1 to 'new' (table expected, got " .. type(opts) .. ")", 2)
    end
    for k in pairs(opts) do
        if not KNOWN[k] then
            error("bad argument #1 to 'new' (unknown option '" .. tostring(k) .. "')", 2)
        end
    end
    if opts.ca_file ~= nil then
        error("bad argument #1 to 'new' (ca_file is not supported by the cosocket transport: set "
            .. "lua_ssl_trusted_certificate in nginx.conf)", 2)
    end
    if opts.verify ~= nil and type(opts.verify) ~= "boolean" then
        error("bad argument #1 to 'new' (verify must be a boolean)", 2)
    end
    return setmetatable({
        _connect_ms = opt_int(opts, "connect_timeout_ms", DEFAULT_CONNECT_MS, MAX_TIMEOUT_MS, " (ms)"),
        _timeout_ms = opt_int(opts, "timeout_ms", DEFAULT_TIMEOUT_MS, MAX_TIMEOUT_MS, " (ms)"),
        _verify = opts.verify ~= false,
        _pool_size = opt_int(opts, "pool_size", DEFAULT_POOL_SIZE, 100000, ""),
        _keepalive_ms = opt_int(opts, "keepalive_timeout_ms", DEFAULT_KEEPALIVE_MS, MAX_TIMEOUT_MS, " (ms)"),
        _socket = opts._socket,
        _now = opts._now,
        _urls = {},
        _nurls = 0,
        _requests = 0,
        _connects = 0,
        _last_ms = 0,
    }, mt)
end

-- ---- request line and headers ----

-- "http(s)://host[:port][/path][?query]" -> { tls, host, port, authority, target, pool, safe }.
-- safe (for messages) has no query: it may carry tokens. userinfo is refused, never sent.
local function parse_url(url)
    local scheme, authority, rest = url:match("^([hH][tT][tT][pP][sS]?)://([^/?#]*)([^#]*)")
    if not scheme or authority == "" or find(authority, "@", 1, true) then return nil end
    local tls = #scheme == 5
    local host, port = authority:match("^%[([%x:.]+)%]:?(%d*)$")
    if not host then
        host, port = authority:match("^([^:]+):?(%d*)$")
        if not host then return nil end
    end
    port = port ~= "" and tonumber(port) or (tls and 443 or 80)
    if port < 1 or port > 65535 then return nil end
    local target = rest
    if target == "" or sub(target, 1, 1) == "?" then target = "/" .. target end
    local path = target:match("^[^?]*")
    host = lower(host)
    local ipv6 = find(host, ":", 1, true) ~= nil
    return {
        tls = tls,
        host = host, -- TLS server name (SNI and the certificate check)
        connect_host = ipv6 and "[" .. host .. "]" or host,
        port = port,
        authority = authority,
        target = target,
        pool = host .. ":" .. port .. (tls and ":tls" or ""), -- request() adds ":noverify" when off
        safe = lower(scheme) .. "://" .. authority .. path,
    }
end
_M._parse_url = parse_url

local function is_token(s)
    return type(s) == "string" and find(s, "^[%w!#$%%&'*+%-.^_`|~]+$") ~= nil
end

-- build_request(method, u, headers, body) -> array of strings for sock:send. Raises a plain
-- argument error for a bad header (a bug, not a condition); never quotes a value (credentials).
-- Content-Length is ours (a caller's is dropped); Host is added unless the caller sent one.
local function build_request(method, u, headers, body)
    local out = { method, " ", u.target, " HTTP/1.1\r\n" }
    local n, has_host = 4, false
    if headers ~= nil then
        if type(headers) ~= "table" then error("bad argument #1 to 'request' (headers must be a table)", 3) end
        for i = 1, #headers do
            local h = headers[i]
            if type(h) ~= "table" then
                error("bad argument #1 to 'request' (header " .. i .. " is not a {name, value} pair)", 3)
            end
            local name, value = h[1], h[2]
            if not is_token(name) then error("bad argument #1 to 'request' (header " .. i .. ": bad name)", 3) end
            if type(value) == "number" then value = tostring(value) end
            if type(value) ~= "string" or find(value, "[\r\n]") or find(value, "\0", 1, true) then
                error("bad argument #1 to 'request' (header " .. i .. " (" .. name
                    .. "): value must be a string without CR, LF or NUL)", 3)
            end
            local lname = lower(name)
            if lname == "transfer-encoding" then
                error("bad argument #1 to 'request' (header " .. i .. ": transfer-encoding is the transport's)", 3)
            end
            if lname ~= "content-length" then
                if lname == "host" then has_host = true end
                out[n + 1], out[n + 2], out[n + 3], out[n + 4] = name, ": ", value, "\r\n"
                n = n + 4
            end
        end
    end
    if not has_host then
        local a = u.authority
        if (u.tls and u.port == 443 or not u.tls and u.port == 80) then a = a:gsub(":%d+$", "") end
        out[n + 1], out[n + 2], out[n + 3] = "Host: ", a, "\r\n"
        n = n + 3
    end
    if body ~= nil or method == "POST" or method == "PUT" or method == "PATCH" then
        out[n + 1], out[n + 2], out[n + 3] = "Content-Length: ", tostring(body and #body or 0), "\r\n"
        n = n + 3
    end
    out[n + 1] = "\r\n"
    if body ~= nil and body ~= "" then out[n + 2] = body end
    return out
end
_M._build_request = build_request

-- ---- reply parsing (sock: receive(n | "*l" | "*a") and receiveuntil(pattern) as in ngx_lua) ----

-- Failures inside the parser are thrown as { _fail = kind, detail, got }: kind "io" (a socket error;
-- detail is its text, got = whether any reply byte had arrived) or "protocol" (a malformed reply).
-- request() turns them into the error object.
local function fail_io(err, got)
    error({ _fail = "io", detail = err, got = got }, 0)
end

local function fail_proto(fmt, ...)
    error({ _fail = "protocol", detail = string.format(fmt, ...), got = true }, 0)
end

local function has_token(list, token)
    if not list then return false end
    for t in list:gmatch("[^,%s]+") do
        if lower(t) == token then return true end
    end
    return false
end

-- The status line and header block (without the blank line) -> status, minor version, headers.
-- Header names are lowercased; a repeated name keeps the last value (as the curl transport).
local function parse_head(block)
    local first_end = find(block, "\n", 1, true)
    local line = first_end and sub(block, 1, first_end - 1) or block
    -- three digits, then a reason after a space or nothing; 000-099 are no status (not interim)
    local minor, status = line:match("^HTTP/1%.(%d) ([1-9]%d%d) [^\n]*$")
    if not minor then minor, status = line:match("^HTTP/1%.(%d) ([1-9]%d%d)\r?$") end
    if not minor then fail_proto("bad status line %q", line:gsub("\r$", ""):sub(1, 40)) end
    local headers, last = {}, nil
    if first_end then
        for l in (sub(block, first_end + 1) .. "\n"):gmatch("([^\n]*)\n") do
            if byte(l, -1) == 13 then l = sub(l, 1, -2) end
            local c = byte(l, 1)
            if c == 32 or c == 9 then -- obsolete line folding: continues the previous value
                if not last then fail_proto("header block starts with a continuation line") end
                headers[last] = headers[last] .. " " .. l:match("^%s*(.-)%s*$")
            elseif l ~= "" then
                local name, value = l:match("^([^:%s]+):%s*(.-)%s*$")
                if not name then fail_proto("bad header line") end
                last = lower(name)
                headers[last] = value
            end
        end
    end
    return tonumber(status), tonumber(minor), headers
end

local function read_chunked(sock, tick)
    local parts, n = {}, 0
    while true do
        tick()
        local line, err = sock:receive("*l")
        if not line then fail_io(err, true) end
        -- hex digits, then blanks, then an extension or nothing ("0x5" or "5g" is not a size)
        local size = line:match("^%s*(%x+)%s*;") or line:match("^%s*(%x+)%s*$")
        size = size and #size <= 12 and tonumber(size, 16)
        if not size then fail_proto("bad chunk size line") end
        if size == 0 then
            repeat -- trailer fields, ignored, up to the blank line
                tick()
                line, err = sock:receive("*l")
                if not line then fail_io(err, true) end
            until line == ""
            return concat(parts)
        end
        tick()
        local data
        data, err = sock:receive(size)
        if not data then fail_io(err, true) end
        n = n + 1
        parts[n] = data
        tick()
        line, err = sock:receive("*l")
        if not line then fail_io(err, true) end
        if line ~= "" then fail_proto("chunk of %d bytes not followed by CRLF", size) end
    end
end

-- read_response(sock, method, tick) -> status, body, headers, keepalive. tick() runs before every
-- receive (request() uses it to set the remaining time, or to throw a timeout). Interim 1xx
-- replies are skipped. keepalive is false when the body ran to the close, or the reply said so.
local function read_response(sock, method, tick)
    tick = tick or function() end
    local status, minor, headers
    repeat
        tick()
        local reader = sock:receiveuntil("\r\n\r\n")
        local block, err, partial = reader()
        if not block then fail_io(err, partial ~= nil and partial ~= "") end
        status, minor, headers = parse_head(block)
    until status >= 200 or status == 101
    local conn = headers["connection"]
    local keep = not has_token(conn, "close") and (minor >= 1 or has_token(conn, "keep-alive"))
    local body = ""
    if method == "HEAD" or status == 204 or status == 304 or status == 101 then
        if status == 101 then keep = false end
    elseif headers["transfer-encoding"] then
        local te = lower(headers["transfer-encoding"])
        if te:match("chunked%s*$") then
            body = read_chunked(sock, tick)
        else -- another coding last: the body runs to the close (RFC 9112 6.3)
            tick()
            local data, err = sock:receive("*a")
            if not data then fail_io(err, true) end
            body, keep = data, false
        end
    elseif headers["content-length"] then
        local cl = headers["content-length"]
        local len = cl:match("^%d+$") and #cl <= 15 and tonumber(cl)
        if not len then fail_proto("bad content-length") end
        if len > 0 then
            tick()
            local data, err = sock:receive(len)
            if not data then fail_io(err, true) end
            body = data
        end
    else
        tick()
        local data, err = sock:receive("*a")
        if not data then fail_io(err, true) end
        body, keep = data, false
    end
    return status, body, headers, keep
end
_M._read_response = read_response

-- ---- errors ----

-- sent: the request went out whole (true once sock:send succeeded), so the server may have acted.
-- Logged at info only: the transport cannot know whether the client's retry recovers, and a
-- final failure is the caller's to report (it gets this error). The message never holds a query
-- or user:password@ (u.safe), nor request headers.
local function raise(method, u, reason, retryable, detail, socket_error, sent)
    local message = method .. " " .. (u and u.safe or "?") .. ": " .. detail
    if type(ngx) == "table" and ngx.log and ngx.INFO then
        ngx.log(ngx.INFO, "authhero.aws cosocket transport (", reason, retryable and ", retryable" or "", "): ",
            message)
    end
    errors.raise(0, "TransportError", message,
        { retryable = retryable, reason = reason, socket_error = socket_error, sent = sent or false })
end

local function is_timeout(err)
    return err == "timeout" or (type(err) == "string" and find(err, "timed out", 1, true) ~= nil)
end

-- A connect() failure -> reason, retryable. "no resolver defined" is a configuration mistake.
local function connect_reason(err)
    err = tostring(err)
    if is_timeout(err) then return "timeout", true end
    if find(err, "no resolver defined", 1, true) then return "dns", false end
    if find(err, "could not be resolved", 1, true) or find(err, "resolver", 1, true) then return "dns", true end
    return "connect", true
end

-- An sslhandshake() failure -> reason, retryable. An untrusted or misnamed peer is final (curl's
-- CURLE_PEER_FAILED_VERIFICATION); a handshake that broke off may heal (CURLE_SSL_CONNECT_ERROR).
local function tls_reason(err)
    err = tostring(err)
    if is_timeout(err) then return "timeout", true end
    if err:match("^%d+: ") or find(err, "host mismatch", 1, true) or find(err, "certificate", 1, true) then
        return "tls", false
    end
    return "tls", true
end

-- ---- the request ----

local function clock(self)
    local f = self._now
    if f then return f() end
    return ngx.now()
end

local function new_socket(self)
    if self._socket then return self._socket() end
    if type(ngx) ~= "table" or not ngx.socket then
        error("the cosocket transport needs OpenResty (ngx_http_lua_module); use transport = \"curl\"", 3)
    end
    local ok, sock = pcall(ngx.socket.tcp)
    if not ok or not sock then
        error("cosocket transport: " .. tostring(sock)
            .. " (create and use the client in a request or timer phase, not in init*/set/log/filters)", 3)
    end
    return sock
end

-- request{ method = "POST", url, headers = { {name, value}, ... }, body [, timeout_ms] }
-- -> { status, body, headers }. req.timeout_ms (an integer from 1 to 3600000): this request's bound
-- instead of the transport's timeout_ms (the client's per-call timeouts and deadlines).
-- Any HTTP status is a reply; when no valid reply arrives it raises the error object (status 0,
-- code TransportError, reason timeout/connect/reset/stale/dns/tls/crc32/other, retryable, sent: false
-- when sock:send never completed, so the server cannot have acted on the request). A request
-- is never replayed here: "stale" (a kept-alive connection that died before any reply byte) lets
-- the client decide. May yield (cosockets): not from inside a C call boundary (metamethods, pcall on
-- Lua 5.1 interpreters other than LuaJIT, init phases).
function _M.request(self, req)
    if type(req) ~= "table" then
        error("bad argument #1 to 'request' (table expected, got " .. type(req) .. ")", 2)
    end
    if self._closed then error("transport is closed", 2) end
    local method = req.method or "POST"
    if not is_token(method) then error("bad argument #1 to 'request' (method must be an HTTP token)", 2) end
    local url, body = req.url, req.body
    if type(url) ~= "string" then error("bad argument #1 to 'request' (url must be a string)", 2) end
    if body ~= nil and type(body) ~= "string" then
        error("bad argument #1 to 'request' (body must be a string or nil)", 2)
    end
    local timeout_ms = req.timeout_ms
    if timeout_ms == nil then
        timeout_ms = self._timeout_ms
    elseif type(timeout_ms) ~= "number" or timeout_ms ~= math.floor(timeout_ms) or timeout_ms < 1
        or timeout_ms > MAX_TIMEOUT_MS then
        error("bad argument #1 to 'request' (timeout_ms must be an integer from 1 to " .. MAX_TIMEOUT_MS .. ")", 2)
    end
    local u = self._urls[url]
    if not u then
        u = parse_url(url)
        if not u then
            -- no query (it may carry tokens), no user:password@ (one reason a URL is unsupported)
            local shown = (url:match("^[^?#]*") or ""):gsub("^(%a[%w+.-]*://)[^/]*@", "%1***@")
            errors.raise(0, "TransportError", method .. " " .. shown .. ": unsupported URL",
                { retryable = false, reason = "other", sent = false })
        end
        if self._nurls >= 32 then self._urls, self._nurls = {}, 0 end
        self._urls[url], self._nurls = u, self._nurls + 1
    end
    local out = build_request(method, u, req.headers, body)

    local sock = new_socket(self)
    self._requests = self._requests + 1
    local started = clock(self)
    local deadline = started + timeout_ms / 1000
    local function remaining_ms()
        return math.floor((deadline - clock(self)) * 1000)
    end

    local connect_ms = math.min(self._connect_ms, math.max(remaining_ms(), 1))
    sock:settimeouts(connect_ms, connect_ms, connect_ms)
    -- A connection made without verification must never serve a transport that verifies.
    local popts = u.pool_opts
    if not popts or popts.pool_size ~= self._pool_size then
        popts = { pool = (u.tls and not self._verify) and u.pool .. ":noverify" or u.pool,
            pool_size = self._pool_size }
        u.pool_opts = popts
    end
    local ok, err = sock:connect(u.connect_host, u.port, popts)
    if not ok then
        local reason, retryable = connect_reason(err)
        raise(method, u, reason, retryable, "connect failed: " .. tostring(err)
            .. (retryable and "" or " (cosockets resolve names through nginx's `resolver` directive)"), err)
    end
    local reused = (sock:getreusedtimes()) or 0
    if reused == 0 then
        self._connects = self._connects + 1
        if u.tls then
            local hs_ms = math.min(self._connect_ms, math.max(remaining_ms(), 1))
            sock:settimeouts(hs_ms, hs_ms, hs_ms)
            local sess
            sess, err = sock:sslhandshake(false, u.host, self._verify)
            if not sess then
                sock:close()
                local reason, retryable = tls_reason(err)
                raise(method, u, reason, retryable, "TLS handshake failed: " .. tostring(err), err)
            end
        end
    end

    local left = remaining_ms()
    if left <= 0 then
        sock:close()
        raise(method, u, "timeout", true, "timed out after " .. timeout_ms .. " ms (before sending)")
    end
    sock:settimeouts(connect_ms, left, left)
    local sent
    sent, err = sock:send(out)
    if not sent then
        sock:close()
        if is_timeout(err) then
            raise(method, u, "timeout", true, "timed out sending the request", err)
        end
        if reused > 0 then
            raise(method, u, "stale", true, "kept-alive connection closed before the reply (send: "
                .. tostring(err) .. ")", err)
        end
        raise(method, u, "reset", true, "send failed: " .. tostring(err), err)
    end

    local tick = function()
        local ms = remaining_ms()
        if ms <= 0 then fail_io("timeout", nil) end
        sock:settimeout(ms)
    end
    local pok, status, rbody, headers, keep = pcall(read_response, sock, method, tick)
    if not pok then
        sock:close()
        local f = status
        if type(f) ~= "table" or not f._fail then error(f, 0) end -- a bug: not ours to dress up
        self._last_ms = (clock(self) - started) * 1000
        if f._fail == "protocol" then
            raise(method, u, "other", false, "malformed reply: " .. f.detail, nil, true)
        elseif is_timeout(f.detail) then
            raise(method, u, "timeout", true, "timed out after " .. timeout_ms .. " ms", f.detail, true)
        elseif not f.got and reused > 0 then
            raise(method, u, "stale", true, "kept-alive connection closed before the reply ("
                .. tostring(f.detail) .. ")", f.detail, true)
        end
        raise(method, u, "reset", true, (f.got and "connection lost in the reply: " or "no reply: ")
            .. tostring(f.detail), f.detail, true)
    end
    if keep then
        if not sock:setkeepalive(self._keepalive_ms, self._pool_size) then sock:close() end
    else
        sock:close()
    end
    self._last_ms = (clock(self) - started) * 1000

    local crc = headers["x-amz-crc32"]
    if crc then
        local want = crc:match("^%d+$") and #crc <= 10 and tonumber(crc)
        local got = _M._crc32(rbody)
        if want ~= got then
            raise(method, u, "crc32", true, string.format(
                "reply failed its x-amz-crc32 check (header %s, body has %d)", crc:sub(1, 20), got), nil, true)
        end
    end
    return { status = status, body = rbody, headers = headers }
end

-- { requests, connects, last_ms }: connects counts new connections (not taken from the pool).
function _M.info(self)
    return { requests = self._requests, connects = self._connects, last_ms = self._last_ms }
end

-- Idempotent. Pooled connections belong to nginx's worker and stay pooled.
function _M.close(self)
    self._closed = true
end

mt.__close = _M.close

return _M
