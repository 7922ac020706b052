-- The libcurl transport: a thin wrapper over csrc/http.c (one reused CURL handle, so keep-alive).
-- Interface every transport implements:
--   local t = curl.new({ connect_timeout_ms = 2000, timeout_ms = 10000, verify = true, ca_file = nil })
--   local res = t:request({ method = "POST", url = ..., headers = { {name, value}, ... }, body = ... })
--   -- res = { status = 200, body = "...", headers = { ["x-amzn-requestid"] = ..., ... } }
--   req.decode = true: a transport may answer a 200 with res = { status = 200, reply = ... } instead,
--   the body already through core.decode_reply (this one does, from libcurl's buffer: no body
--   string, no headers table); callers fall back to decoding res.body when reply is absent.
--   req.timeout_ms (optional): this request's bound in ms (an integer from 1 to 3600000) instead
--   of the transport's timeout_ms; the client sets it for per-call timeouts and deadlines.
--   req.meta = true (the client's on_request hook): a decoded reply also carries received (the
--   body's size in bytes) and request_id (x-amzn-requestid), since it has no body or headers.
--   t:close()
-- Any HTTP status is a reply. When no valid reply arrives it raises the error object:
-- status 0, code "TransportError", reason ("timeout", "connect", "reset", "stale", "dns", "tls",
-- "crc32", "other"), retryable, curl_code, and sent: false when the request never went out whole
-- (the server cannot have acted on it), true when it did. Retries are the client's business.
local core = require "authhero.aws.core"

local _M = {}
local mt = { __index = _M }

-- opts: nil or a table; defaults and checks live in core.http_new.
function _M.new(opts)
    return setmetatable({ _h = core.http_new(opts) }, mt)
end

-- req.method defaults to "POST" (all DynamoDB calls are); req.headers and req.body are optional.
function _M.request(self, req)
    if type(req) ~= "table" then
        error("bad argument #1 to 'request' (table expected, got " .. type(req) .. ")", 2)
    end
    local decode, meta = req.decode, req.meta
    local h = self._h
    local ok, status, body, headers, request_id = pcall(h.request, h, req.method or "POST", req.url, req.headers,
        req.body, decode, req.timeout_ms, meta)
    if not ok then
        if type(status) == "table" and status.code == "TransportError" and status.sent == nil then
            status.sent = status.reason == "crc32" or h:info().sent
        end
        error(status, 0)
    end
    if decode and status == 200 then
        if meta then return { status = 200, reply = body, received = headers, request_id = request_id } end
        return { status = 200, reply = body }
    end
    return { status = status, body = body, headers = headers }
end

-- { requests, connects, last_ms, sent }: connects counts new connections, so reuse is observable;
-- sent: the last request's body went out whole.
function _M.info(self)
    return self._h:info()
end

-- Idempotent; a closed transport raises "http handle is closed" on request.
function _M.close(self)
    self._h:close()
end

mt.__close = _M.close -- Lua 5.4: local t <close> = curl.new()

return _M
