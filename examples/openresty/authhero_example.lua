-- The example's request handler: sign-up, password login with a session, user lookup and listing
-- over AuthHero's adapters, plus /slow (ngx.sleep then a DynamoDB read) to show that requests run
-- concurrently in one worker. The client is made per worker on its first request (cosockets do not
-- exist in init phases). Passwords are bcrypt hashes at cost 10 (authhero.aws.password), the ones
-- AuthHero itself writes and reads, so users signed up here or by AuthHero log in on either side.
-- Each hash or check holds the worker ~50 ms of CPU (README.md beside this file). Left out on
-- purpose: tokens, rate limits, CSRF: this shows the storage layer, not an auth server.
--
--   POST /signup   {"email", "password"}  -> 201 {user}      | 400 | 409 already exists
--   POST /login    {"email", "password"}  -> 200 {session_id, user_id} | 401
--   GET  /users/{id}                      -> 200 {user}      | 404
--   GET  /users?q=...&per_page=&page=     -> 200 {users, total?}
--   GET  /slow?ms=N                       -> 200 {slept_ms, tenant}   (N <= 10000)
--   GET  /health                          -> 200 {ok, transport}
-- luacheck: globals ngx
local cjson = require "cjson.safe"
local aws = require "authhero.aws"
local pwhash = require "authhero.aws.password"

local _M = {}

local CONNECTION = "Username-Password-Authentication"
local PROVIDER = "auth2"
-- What AuthHero 9.6.1 writes on sign-up (bcryptjs, cost 10) and the only kind its login checks.
local ALGORITHM = "bcrypt"
local SESSION_SECONDS = 24 * 3600

local function env(name, default)
    local v = os.getenv(name)
    if v == nil or v == "" then return default end
    return v
end

-- per worker, made on the first request
local state

local function app()
    if state then return state end
    local transport = env("TRANSPORT") -- nil: the client picks "cosocket" inside request phases
    local client = aws.client.new({
        endpoint = env("DYNAMODB_ENDPOINT"),
        transport = transport,
        sleep = ngx.sleep, -- retries back off without blocking the worker
        timeout_ms = 5000,
    })
    state = {
        client = client,
        transport = transport or "cosocket",
        tenant = env("TENANT_ID", "example"),
        adapters = aws.create_adapters(client, { tableName = env("DYNAMODB_TABLE_NAME") }),
    }
    return state
end

-- ---- helpers ----

local HttpError = {}

-- fail(status, code, message): leaves the handler with that answer (caught in serve).
local function fail(status, code, message)
    error(setmetatable({ status = status, code = code, message = message }, HttpError), 0)
end

local function reply(status, doc)
    ngx.status = status
    ngx.header["Content-Type"] = "application/json"
    ngx.header["Cache-Control"] = "no-store"
    ngx.print(cjson.encode(doc), "\n")
end

local function json_body()
    ngx.req.read_body()
    local body = ngx.req.get_body_data()
    local doc = body and cjson.decode(body)
    if type(doc) ~= "table" then fail(400, "bad_request", "body must be a JSON object") end
    return doc
end

-- /dev/urandom: a 16-byte read, no network; fine in a request.
local function random_hex(n)
    local f = assert(io.open("/dev/urandom", "rb"))
    local bytes = f:read(n)
    f:close()
    return (bytes:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

-- A hash no password matches, checked when the email is unknown, so that a login for an unknown
-- address takes as long as one with a wrong password (no user enumeration by timing).
local NO_USER_HASH

-- check_password(password, stored) -> boolean. A stored hash authhero.aws.password cannot read (a
-- format other than bcrypt or argon2id) is logged and refuses the login, not a 400 to the user.
local function check_password(password, stored, user_id)
    if stored == nil then
        NO_USER_HASH = NO_USER_HASH or pwhash.hash(random_hex(16), { cost = pwhash.BCRYPT_COST })
        pwhash.verify(password, NO_USER_HASH)
        return false
    end
    local ok, res = pcall(pwhash.verify, password, stored)
    if ok then return res end
    if not aws.errors.is(res, "ValidationError") then error(res, 0) end
    ngx.log(ngx.ERR, "user ", user_id, ": stored password hash is not one authhero.aws.password reads: ", res.message)
    return false
end

local function credentials_of(doc)
    local email, password = doc.email, doc.password
    if type(email) ~= "string" or not email:match("^[^%s\"\\@]+@[^%s\"\\@]+$") or #email > 254 then
        fail(400, "bad_request", "email must be an address")
    end
    if type(password) ~= "string" or #password < 8 or #password > 256 then
        fail(400, "bad_request", "password must be 8 to 256 characters")
    end
    return email:lower(), password
end

local function iso(t)
    return os.date("!%Y-%m-%dT%H:%M:%S.000Z", t)
end

local function ensure_tenant(s)
    if s.tenant_ready then return end
    local t = s.adapters.tenants
    if not t.get(s.tenant) then
        local ok, err = pcall(t.create, { id = s.tenant, friendly_name = "Example tenant" })
        if not ok and not aws.errors.is(err, "Conflict") then error(err, 0) end
    end
    s.tenant_ready = true
end

-- ---- routes ----

local function signup(s)
    local email, password = credentials_of(json_body())
    ensure_tenant(s)
    local user = s.adapters.users.create(s.tenant, {
        email = email, connection = CONNECTION, provider = PROVIDER, email_verified = false,
        password = { hash = pwhash.hash(password), algorithm = ALGORITHM },
    })
    reply(201, user)
end

local function login(s)
    local email, password = credentials_of(json_body())
    local A = s.adapters
    -- the lookup AuthHero's login code makes: q on email and provider
    local q = 'email:"' .. email .. '" provider:' .. PROVIDER
    local user = A.users.list(s.tenant, { q = q, per_page = 1 }).users[1]
    local pw = user and A.passwords.get(s.tenant, user.user_id)
    if not check_password(password, pw and pw.password, user and user.user_id) then
        fail(401, "invalid_credentials", "wrong email or password")
    end
    local now = ngx.time()
    local session = A.sessions.create(s.tenant, {
        id = random_hex(16), user_id = user.user_id, login_session_id = random_hex(16),
        expires_at = iso(now + SESSION_SECONDS),
        device = { last_ip = ngx.var.remote_addr, last_user_agent = ngx.var.http_user_agent or "" },
    })
    reply(200, { session_id = session.id, user_id = user.user_id, expires_at = session.expires_at })
end

local function get_user(s, id)
    local user = s.adapters.users.get(s.tenant, id)
    if not user then fail(404, "not_found", "no such user") end
    reply(200, user)
end

local function list_users(s)
    local args = ngx.req.get_uri_args(20)
    local q = args.q
    if q ~= nil and type(q) ~= "string" then fail(400, "bad_request", "one q, please") end
    local res = s.adapters.users.list(s.tenant, {
        q = q, per_page = tonumber(args.per_page) or 50, page = tonumber(args.page),
        include_totals = args.include_totals == "true" or nil,
    })
    reply(200, { users = res.users, total = res.total })
end

local function slow(s)
    local ms = tonumber(ngx.var.arg_ms) or 1000
    if ms < 0 or ms > 10000 then fail(400, "bad_request", "ms must be 0 to 10000") end
    ngx.sleep(ms / 1000)
    local tenant = s.adapters.tenants.get(s.tenant)
    reply(200, { slept_ms = ms, tenant = tenant and tenant.id or cjson.null })
end

-- an error object's code -> our status; everything else is the server's fault (502 or 500)
local STATUS = { Conflict = 409, ValidationError = 400, NotFound = 404 }

-- The request boundary: the one place that catches.
function _M.serve()
    local method, uri = ngx.req.get_method(), ngx.var.uri
    local ok, err = pcall(function()
        if uri == "/health" then
            return reply(200, { ok = true, transport = env("TRANSPORT", "cosocket") })
        end
        local s = app()
        if uri == "/signup" and method == "POST" then return signup(s) end
        if uri == "/login" and method == "POST" then return login(s) end
        if uri == "/users" and method == "GET" then return list_users(s) end
        if uri == "/slow" and method == "GET" then return slow(s) end
        local id = uri:match("^/users/(.+)$")
        if id and method == "GET" then return get_user(s, id) end
        if uri == "/signup" or uri == "/login" or uri == "/users" or uri == "/slow" or id then
            fail(405, "method_not_allowed", "method not allowed")
        end
        fail(404, "not_found", "no such endpoint")
    end)
    if ok then return end
    if getmetatable(err) == HttpError then
        return reply(err.status, { error = err.code, message = err.message })
    end
    if aws.errors.is(err) and STATUS[err.code] then
        return reply(STATUS[err.code], { error = err.code, message = err.message })
    end
    ngx.log(ngx.ERR, "request failed: ", tostring(err))
    if aws.errors.is(err) then
        return reply(502, { error = "storage_unavailable", message = "the user store did not answer" })
    end
    return reply(500, { error = "internal", message = "internal error" })
end

return _M
