-- The AWS credentials provider chain: config.credentials, environment, shared files (static keys
-- only), container endpoint (ECS/EKS), EC2 IMDSv2; the result is cached per provider and refreshed
-- 5 minutes before it expires. Deliberately left out: credential_process, assume-role, SSO and web
-- identity (profiles using them are never executed; they are named in the error instead).
-- Secrets (secret key, session token, container authorization token) never reach a message.
-- JSON replies are read with the C core's decoder (its null is cjson.null): no lua-cjson needed
local core = require "authhero.aws.core"
local errors = require "authhero.aws.errors"
local util = require "authhero.aws.util"

local _M = {}
local mt = { __index = _M, __tostring = function() return "authhero.aws.credentials provider" end }

local REFRESH_WINDOW = 300 -- seconds before expiration at which cached credentials are refreshed
local RETRY_AFTER = 30 -- seconds to keep serving still-valid credentials after a failed refresh
local CONTAINER_BASE = "http://169.254.170.2" -- ECS: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI is a path here
local IMDS_ENDPOINT = "http://169.254.169.254"
local IMDS_ENDPOINT_V6 = "http://[fd00:ec2::254]"
local IMDS_TOKEN_TTL = "21600" -- seconds, the maximum IMDS allows
local IMDS_CREDS_PATH = "/latest/meta-data/iam/security-credentials/"
local DEFAULT_CONNECT_MS = 1000
local DEFAULT_TIMEOUT_MS = 2000
local DEFAULT_ATTEMPTS = 2 -- one attempt plus one retry, per metadata request

-- Hosts a container FULL_URI may name over plain http: the ECS agent, EKS Pod Identity (IPv4 and
-- IPv6). Loopback (127.0.0.0/8, localhost, [::1]) is checked separately. Anything else needs https,
-- or the authorization token would cross a network in clear.
local CONTAINER_HTTP_HOSTS = {
    ["169.254.170.2"] = true,
    ["169.254.170.23"] = true,
    ["[fd00:ec2::23]"] = true,
    ["localhost"] = true,
    ["[::1]"] = true,
}

-- Profile keys naming a way to get credentials that this library does not implement.
local UNSUPPORTED_KEYS = {
    "credential_process", "sso_session", "sso_start_url", "sso_account_id", "sso_role_name",
    "web_identity_token_file",
}

local function raise(fmt, ...)
    errors.raise(0, "CredentialsError", string.format(fmt, ...))
end

local function present(v)
    return type(v) == "string" and v ~= ""
end

local function trim(s)
    return (s:match("^%s*(.-)%s*$"))
end

-- The returned credentials print as their access key id and source, never the secrets.
local creds_mt = {
    __tostring = function(c)
        return string.format("AWS credentials %s (%s)", tostring(c.access_key_id), tostring(c.source))
    end,
}

local function new_credentials(id, secret, token, expiration, source)
    return setmetatable({
        access_key_id = id,
        secret_access_key = secret,
        session_token = token,
        expiration = expiration,
        source = source,
    }, creds_mt)
end

-- ---- timestamps ----

-- parse_timestamp("2026-11-26T12:00:00Z") -> epoch seconds (UTC), or nil when the text is not an
-- ISO-8601 date-time with "Z" or a numeric offset. Fractions of a second are dropped. Pure.
function _M.parse_timestamp(s)
    local ms = util.parse_iso(s, true)
    return ms and math.floor(ms / 1000) or nil
end

-- ---- shared files ----

-- io.open without raising: content, or nil and "not found" / "unreadable" (absence is a value).
local function read_file(path)
    local f, _, code = io.open(path, "rb")
    if not f then return nil, code == 2 and "not found" or "unreadable" end
    local text = f:read("*a")
    f:close()
    if not text then return nil, "unreadable" end
    return text
end

-- INI text -> { [profile] = { [lowercased key] = value } }. In the config file a profile is
-- "[profile name]" except "[default]"; other sections (sso-session, services) are skipped.
-- A line indented deeper than the key line before it continues that key (e.g. an "s3 =" block of
-- sub-settings), as in Python's configparser: ignored.
local function parse_ini(text, is_config)
    local profiles, current, key_indent = {}, nil, nil
    for line in (text .. "\n"):gmatch("([^\n]*)\n") do
        line = line:gsub("\r$", "")
        local indent, rest = line:match("^(%s*)(.*)$")
        if rest == "" or rest:match("^[#;]") then -- luacheck: ignore 542
        elseif key_indent and #indent > key_indent then -- luacheck: ignore 542
        elseif rest:match("^%[") then
            local name = rest:match("^%[%s*(.-)%s*%]")
            if name and is_config then
                name = name == "default" and "default" or name:match("^profile%s+(.-)$")
            end
            if name and name ~= "" then
                profiles[name] = profiles[name] or {}
                current = profiles[name]
            else
                current = nil
            end
            key_indent = nil
        else
            local k, v = rest:match("^([^=]-)%s*=%s*(.-)%s*$")
            if k and k ~= "" then
                key_indent = #indent
                if current then current[k:lower()] = v end
            end
        end
    end
    return profiles
end

local function expand_home(path, home)
    if home and path:sub(1, 2) == "~/" then return home .. path:sub(2) end
    return path
end

-- ---- HTTP (container and IMDS) ----

-- One request with one retry for what may heal: 5xx/429 replies and transport errors other than
-- a refused connection or an unknown host (nothing listens there; retrying only costs time).
-- Returns the reply, or nil and a short reason (no URL query, no headers: they carry tokens).
local function fetch(self, transport, req)
    local res, reason
    for _ = 1, self._attempts do
        local ok, r = pcall(transport.request, transport, req)
        if ok then
            res, reason = r, nil
            if r.status < 500 and r.status ~= 429 then break end
        elseif errors.is(r, "TransportError") then
            res, reason = nil, tostring(r.reason or "transport error")
            if r.reason == "connect" or r.reason == "dns" then break end
        else
            error(r, 0) -- a bug (plain string) or someone else's error: not ours to hide
        end
    end
    return res, reason
end

local function with_transport(self, f)
    local transport = self._factory({
        connect_timeout_ms = self._connect_ms,
        timeout_ms = self._timeout_ms,
    })
    local ok, a, b = pcall(f, transport)
    if transport.close then pcall(transport.close, transport) end
    if not ok then error(a, 0) end
    return a, b
end

-- A container/IMDS JSON reply -> credentials. Raises CredentialsError naming `what`; never quotes
-- the body, which holds the secrets.
local function parse_reply(body, what, source)
    local ok, doc = pcall(core.decode_reply, body)
    if not ok or type(doc) ~= "table" then raise("%s: reply is not a JSON object", what) end
    -- Code is not quoted back: it is the server's text, as free to carry a secret as the rest
    if doc.Code ~= nil and doc.Code ~= "Success" then raise("%s: Code is not Success", what) end
    local id, secret, token = doc.AccessKeyId, doc.SecretAccessKey, doc.Token
    if not present(id) or not present(secret) then
        raise("%s: reply lacks AccessKeyId or SecretAccessKey", what)
    end
    if token == core.null or token == "" then token = nil end
    if token ~= nil and type(token) ~= "string" then raise("%s: Token is not a string", what) end
    local expiration = doc.Expiration
    if expiration == core.null then expiration = nil end
    if expiration ~= nil then
        expiration = _M.parse_timestamp(expiration)
        if not expiration then raise("%s: Expiration is not an ISO-8601 date-time", what) end
    end
    return new_credentials(id, secret, token, expiration, source)
end

-- ---- the chain: each step returns credentials or nil plus a note for the final message ----

local function from_env(self)
    if self._profile_from_config then
        -- A profile named in code means that profile, as the AWS SDKs do: env keys would silently
        -- be another identity.
        return nil, "environment (skipped: config.profile is set)"
    end
    local env = self._env
    local id, secret, token = env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY"), env("AWS_SESSION_TOKEN")
    id, secret = present(id) and id or nil, present(secret) and secret or nil
    if id and secret then
        return new_credentials(id, secret, present(token) and token or nil, nil, "env")
    elseif id then
        raise("AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not")
    elseif secret then
        raise("AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not")
    end
    return nil, present(token) and "environment (AWS_SESSION_TOKEN set without keys)"
        or "environment (AWS_ACCESS_KEY_ID not set)"
end

local function from_shared_files(self)
    local env = self._env
    local home = self._home
    if not home then
        home = env("HOME")
        if not present(home) then home = env("USERPROFILE") end
        home = present(home) and home or nil
    end
    local profile = self._profile or env("AWS_PROFILE")
    local explicit = present(profile)
    if not explicit then profile = "default" end
    local cred_path = env("AWS_SHARED_CREDENTIALS_FILE")
    local config_path = env("AWS_CONFIG_FILE")
    cred_path = present(cred_path) and expand_home(cred_path, home) or (home and home .. "/.aws/credentials")
    config_path = present(config_path) and expand_home(config_path, home) or (home and home .. "/.aws/config")

    local looked, layers, found = {}, {}, false
    for _, file in ipairs({ { cred_path, false }, { config_path, true } }) do
        local path, is_config = file[1], file[2]
        if path then
            local text, why = read_file(path)
            looked[#looked + 1] = text and path or (path .. ": " .. why)
            local p = text and parse_ini(text, is_config)[profile]
            if p then
                found = true
                layers[#layers + 1] = p
            end
        end
    end
    -- credentials-file values win over config-file values for the same profile
    local merged = {}
    for i = #layers, 1, -1 do
        for k, v in pairs(layers[i]) do merged[k] = v end
    end
    local where = #looked > 0 and table.concat(looked, ", ") or "no home directory"
    local function note(what)
        return nil, string.format("shared files (%s; profile %s%s)", where, profile, what)
    end

    if not found then
        if explicit then raise("AWS profile '%s' not found (looked in %s)", profile, where) end
        return note(": not found")
    end
    -- role_arn wins over static keys in the same profile (they belong to a role chain), so a
    -- profile with role_arn is never read as static keys.
    local unsupported = merged.role_arn and "role_arn" or nil
    local id, secret = merged.aws_access_key_id, merged.aws_secret_access_key
    id, secret = present(id) and id or nil, present(secret) and secret or nil
    if not unsupported and (id or secret) then
        if id and secret then
            local token = merged.aws_session_token
            return new_credentials(id, secret, present(token) and token or nil, nil, "shared-file")
        end
        raise("AWS profile '%s' has %s but no %s (in %s)", profile,
            id and "aws_access_key_id" or "aws_secret_access_key",
            id and "aws_secret_access_key" or "aws_access_key_id", where)
    end
    if not unsupported then
        for _, k in ipairs(UNSUPPORTED_KEYS) do
            if merged[k] then
                unsupported = k
                break
            end
        end
    end
    local why = unsupported and (" uses " .. unsupported .. ", which this library does not support")
        or " has no aws_access_key_id/aws_secret_access_key"
    -- A profile asked for by name must be the identity used: never fall through to another one.
    if explicit then raise("AWS profile '%s'%s (in %s)", profile, why, where) end
    return note(":" .. why .. ": skipped")
end

-- http/https URL -> scheme, host (lowercased, IPv6 in brackets); raises on anything else,
-- including user info ("http://169.254.170.2@elsewhere/" must not pass the host check).
local function parse_full_uri(uri)
    local scheme, authority = uri:match("^(%a[%w+.-]*)://([^/?#]*)")
    scheme = scheme and scheme:lower()
    if scheme ~= "http" and scheme ~= "https" then
        raise("AWS_CONTAINER_CREDENTIALS_FULL_URI is not an http(s) URL")
    end
    if authority:find("@", 1, true) then
        raise("AWS_CONTAINER_CREDENTIALS_FULL_URI must not contain user info")
    end
    local host, port = authority:match("^(%[[%x:.]+%])(.*)$")
    if not host then host, port = authority:match("^([^:]*)(.*)$") end
    if host == "" or not (port == "" or port:match("^:%d+$")) then
        raise("AWS_CONTAINER_CREDENTIALS_FULL_URI has an invalid host or port")
    end
    return scheme, host:lower()
end

local function is_loopback_v4(host)
    local a, b, c, d = host:match("^(%d%d?%d?)%.(%d%d?%d?)%.(%d%d?%d?)%.(%d%d?%d?)$")
    return a == "127" and tonumber(b) <= 255 and tonumber(c) <= 255 and tonumber(d) <= 255
end

local function container_token(self)
    local env = self._env
    local file = env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")
    local token
    if present(file) then
        -- re-read on every fetch: EKS rotates the file under a running process
        local text, why = read_file(file)
        if not text then raise("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE %s: %s", file, why) end
        token = trim(text)
    else
        token = env("AWS_CONTAINER_AUTHORIZATION_TOKEN")
        token = present(token) and trim(token) or nil
    end
    if token and token:find("[%c]") then
        raise("container authorization token contains control characters")
    end
    return token ~= "" and token or nil
end

-- A configured container endpoint that fails is an error, not a reason to try IMDS: inside ECS on
-- EC2 that would quietly pick up the instance's role instead of the task's (botocore does the same).
local function from_container(self)
    local env = self._env
    local rel, full = env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"), env("AWS_CONTAINER_CREDENTIALS_FULL_URI")
    local url, host
    local headers = { { "Accept", "application/json" } }
    if present(rel) then
        if rel:sub(1, 1) ~= "/" then
            raise("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI must start with '/'")
        end
        url, host = CONTAINER_BASE .. rel, CONTAINER_BASE
    elseif present(full) then
        local scheme, h = parse_full_uri(full)
        if scheme == "http" and not (CONTAINER_HTTP_HOSTS[h] or is_loopback_v4(h)) then
            raise("refusing container credentials over plain http from %s: only loopback, "
                .. "169.254.170.2 and 169.254.170.23 may use http; use https", h)
        end
        url, host = full, scheme .. "://" .. h
        local token = container_token(self)
        if token then headers[#headers + 1] = { "Authorization", token } end
    else
        return nil, "container (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI/FULL_URI not set)"
    end
    local what = "container credentials from " .. host
    local res, reason = with_transport(self, function(t)
        return fetch(self, t, { method = "GET", url = url, headers = headers })
    end)
    if not res then raise("%s: no reply (%s)", what, reason) end
    if res.status ~= 200 then raise("%s: HTTP %d", what, res.status) end
    return parse_reply(res.body, what, "container")
end

-- IMDSv2 only. When the token PUT is refused (403: disabled or blocked, 404/405: no v2 there) we do
-- NOT fall back to IMDSv1: its unauthenticated GETs are what SSRF exploits, and v2 exists to stop it.
local function imds_fetch(self, t, base)
    local res, reason = fetch(self, t, {
        method = "PUT",
        url = base .. "/latest/api/token",
        headers = { { "X-aws-ec2-metadata-token-ttl-seconds", IMDS_TOKEN_TTL } },
        body = "",
    })
    if not res then return nil, "unreachable (" .. reason .. ")" end
    if res.status == 403 or res.status == 404 or res.status == 405 then
        return nil, string.format("IMDSv2 token refused with HTTP %d; no IMDSv1 fallback", res.status)
    elseif res.status ~= 200 or trim(res.body) == "" then
        return nil, string.format("token request: HTTP %d", res.status)
    end
    local headers = { { "X-aws-ec2-metadata-token", trim(res.body) } }

    res, reason = fetch(self, t, { method = "GET", url = base .. IMDS_CREDS_PATH, headers = headers })
    if not res then return nil, "role request: no reply (" .. reason .. ")" end
    if res.status == 404 then return nil, "no IAM role attached to this instance" end
    if res.status ~= 200 then return nil, string.format("role request: HTTP %d", res.status) end
    local role = trim(res.body:match("^[^\r\n]*"))
    if role == "" then return nil, "no IAM role attached to this instance" end
    if not role:match("^[%w+=,.@_-]+$") or role:match("^%.+$") then
        return nil, "role name is not a valid IAM role name"
    end

    local what = "credentials for role " .. role
    res, reason = fetch(self, t, { method = "GET", url = base .. IMDS_CREDS_PATH .. role, headers = headers })
    if not res then return nil, what .. ": no reply (" .. reason .. ")" end
    if res.status ~= 200 then return nil, string.format("%s: HTTP %d", what, res.status) end
    local ok, creds = pcall(parse_reply, res.body, what, "imds")
    if not ok then
        if errors.is(creds, "CredentialsError") then return nil, creds.message end
        error(creds, 0)
    end
    return creds
end

local function from_imds(self)
    local env = self._env
    local disabled = env("AWS_EC2_METADATA_DISABLED")
    if present(disabled) and trim(disabled):lower() == "true" then
        return nil, "EC2 IMDS (disabled by AWS_EC2_METADATA_DISABLED)"
    end
    local base = env("AWS_EC2_METADATA_SERVICE_ENDPOINT")
    if present(base) then
        base = trim(base):gsub("/+$", "")
    else
        local mode = env("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE")
        base = present(mode) and mode:lower() == "ipv6" and IMDS_ENDPOINT_V6 or IMDS_ENDPOINT
    end
    local shown = base:match("^[^?#]*"):gsub("//[^/@]*@", "//")
    local creds, why = with_transport(self, function(t) return imds_fetch(self, t, base) end)
    if creds then return creds end
    return nil, string.format("EC2 IMDS (%s: %s)", shown, why)
end

local function resolve(self)
    if self._static then return self._static end
    local notes = { "config.credentials (not set)" }
    for _, step in ipairs({ from_env, from_shared_files, from_container, from_imds }) do
        local creds, note = step(self)
        if creds then return creds end
        notes[#notes + 1] = note
    end
    raise("no AWS credentials: looked in %s", table.concat(notes, ", "))
end

-- ---- public API ----

-- config.credentials -> static credentials, or nil when absent. A half-filled table is a
-- CredentialsError (naming the missing fields, never the values); wrong types are argument errors.
local function explicit_credentials(t)
    if t == nil then return nil end
    if type(t) ~= "table" then
        error("bad argument #1 to 'new' (config.credentials must be a table)", 3)
    end
    local fields = {}
    for _, pair in ipairs({
        { "accessKeyId", "access_key_id" },
        { "secretAccessKey", "secret_access_key" },
        { "sessionToken", "session_token" },
    }) do
        local v = t[pair[1]]
        if v == nil then v = t[pair[2]] end
        if v ~= nil and type(v) ~= "string" then
            error("bad argument #1 to 'new' (config.credentials." .. pair[1] .. " must be a string)", 3)
        end
        fields[#fields + 1] = present(v) and v or false
    end
    local id, secret, token = fields[1], fields[2], fields[3]
    if id and secret then return new_credentials(id, secret, token or nil, nil, "config") end
    local missing = {}
    if not id then missing[#missing + 1] = "accessKeyId" end
    if not secret then missing[#missing + 1] = "secretAccessKey" end
    raise("config.credentials is incomplete: missing %s", table.concat(missing, " and "))
end

local function check(v, kind, name)
    if v ~= nil and type(v) ~= kind then
        error("bad argument #1 to 'new' (config." .. name .. " must be a " .. kind .. ")", 3)
    end
end

-- new(config) -> provider. All fields optional (unknown fields are ignored: the client passes its
-- own config): credentials, profile, env(name), now(), home, transport_factory(opts),
-- metadata_connect_timeout_ms (1000), metadata_timeout_ms (2000), metadata_attempts (2).
-- May raise CredentialsError for half-filled config.credentials.
-- All state lives in the provider (none in the module), so each OpenResty worker or coroutine
-- owner may keep its own; two coroutines may both refresh at once, which is harmless.
function _M.new(config)
    config = config or {}
    if type(config) ~= "table" then error("bad argument #1 to 'new' (table expected)", 2) end
    check(config.profile, "string", "profile")
    check(config.env, "function", "env")
    check(config.now, "function", "now")
    check(config.home, "string", "home")
    check(config.transport_factory, "function", "transport_factory")
    check(config.metadata_connect_timeout_ms, "number", "metadata_connect_timeout_ms")
    check(config.metadata_timeout_ms, "number", "metadata_timeout_ms")
    check(config.metadata_attempts, "number", "metadata_attempts")
    local attempts = config.metadata_attempts
    if attempts ~= nil and (attempts < 1 or attempts ~= math.floor(attempts)) then
        error("bad argument #1 to 'new' (config.metadata_attempts must be a positive integer)", 2)
    end
    return setmetatable({
        _static = explicit_credentials(config.credentials),
        _profile = present(config.profile) and config.profile or nil,
        _profile_from_config = present(config.profile),
        _env = config.env or os.getenv,
        _now = config.now or os.time,
        _home = present(config.home) and config.home or nil, -- else HOME, read when needed
        _factory = config.transport_factory or function(opts)
            return require("authhero.aws.transport.curl").new(opts)
        end,
        _connect_ms = config.metadata_connect_timeout_ms or DEFAULT_CONNECT_MS,
        _timeout_ms = config.metadata_timeout_ms or DEFAULT_TIMEOUT_MS,
        _attempts = attempts or DEFAULT_ATTEMPTS,
        _cached = nil,
        _retry_at = nil, -- no refresh attempt before this time while the cached ones still work
    }, mt)
end

-- get() -> { access_key_id, secret_access_key, session_token, expiration, source }; the same
-- table until refreshed (do not modify it). Raises CredentialsError when nothing yields any.
-- Within REFRESH_WINDOW of expiration it refreshes; if that fails while the cached credentials
-- are still valid it returns those and waits RETRY_AFTER seconds before trying again.
function _M.get(self)
    local now = self._now()
    local c = self._cached
    if c then
        if not c.expiration or now < c.expiration - REFRESH_WINDOW then return c end
        if self._retry_at and now < self._retry_at and now < c.expiration then return c end
    end
    local ok, fresh = pcall(resolve, self)
    if not ok then
        if c and now < c.expiration and errors.is(fresh) then
            self._retry_at = now + RETRY_AFTER
            return c
        end
        error(fresh, 0)
    end
    self._cached = fresh
    -- credentials that arrive already inside the window are used for a while, not refetched per call
    self._retry_at = fresh.expiration and fresh.expiration - REFRESH_WINDOW <= now and now + RETRY_AFTER or nil
    return fresh
end

-- Forgets the cached credentials; the next get() resolves the chain again (the client calls this
-- after an expired-token error).
function _M.invalidate(self)
    self._cached = nil
    self._retry_at = nil
end

return _M
