-- The example's request handler: sign-up, password login with a session, user lookup and listing
-- over AuthHero's adapters, plus /slow (ngx.sleep then a DynamoDB read) to show that requests run
-- concurrently in one worker. The client is made per worker on its first request (cosockets do not
-- exist in init phases). Passwords are bcrypt hashes at cost 10 (authhero.aws.password), the ones
-- AuthHero itself writes and reads, so users signed up here or by AuthHero log in on either side.
-- Each hash or check holds the worker ~50 ms of CPU (README.md beside this file). Left out on
-- purpose: tokens, rate limits, CSRF: this shows the storage layer, not an auth server.
--
--   POST /signup   {"email", "password", "client_id"?}  -> 201 {user} | 400 | 409 already exists
--   POST /login    {"email", "password", "client_id"?}  -> 200 {session_id, user_id} | 401
--   GET  /login?client_id=                -> 200 what a login page shows: the tenant's name, the
--                                            client's, its connections, branding, prompt settings
--   GET  /users/{id}                      -> 200 {user}      | 404
--   GET  /users?q=...&per_page=&page=     -> 200 {users, total?}
--   GET  /slow?ms=N                       -> 200 {slept_ms, tenant}   (N <= 10000)
--   GET  /health                          -> 200 {ok, transport}
--   GET  /metrics                         -> 200 the DynamoDB requests in Prometheus's text format
--                                            (authhero.aws.metrics over lua_shared_dict
--                                            authhero_metrics: every worker's, from any worker)
--
-- Configuration is read the way AuthHero reads it, on every request: the tenant (every route but
-- /health and /metrics), and for the login page, login and sign-up the client (client_id, default
-- CLIENT_ID) and the connections enabled for it (the database connection must be one of them).
-- examples/openresty/seed.lua writes that configuration. Those reads go through the configuration
-- cache (authhero.aws.cache) unless CACHE=off: CACHE=shared (the default) keeps the cache's
-- generations in lua_shared_dict authhero_cache, so a write through any worker's adapters is seen
-- by the next read in every worker; CACHE=local keeps them per worker (another worker sees a change
-- when its entry's CACHE_TTL, default 300 s, runs out). Users, passwords and sessions are never
-- cached. Every reply names the worker that made it (X-Worker: ngx.worker.id()).
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
local state, metrics

-- The DynamoDB metrics: counted in the shared dict nginx.conf declares, so /metrics from any
-- worker shows them all; without the dict, this worker's only.
local function get_metrics()
    if not metrics then
        metrics = aws.metrics.new({ shared_dict = ngx.shared.authhero_metrics and "authhero_metrics" or nil })
    end
    return metrics
end

-- The configuration read cache of this worker (nil with CACHE=off); see the header.
local function make_cache()
    local mode = env("CACHE", "shared")
    if mode == "off" then return nil end
    if mode ~= "shared" and mode ~= "local" then error("CACHE must be shared, local or off, not " .. mode, 0) end
    local ttl = tonumber(env("CACHE_TTL", "300")) or error("CACHE_TTL must be a number of seconds", 0)
    return aws.cache.new({ ttl = ttl, max_entries = 10000, shared_dict = mode == "shared" and "authhero_cache" or nil })
end

local function app()
    if state then return state end
    local transport = env("TRANSPORT") -- nil: the client picks "cosocket" inside request phases
    local client = aws.client.new({
        endpoint = env("DYNAMODB_ENDPOINT"),
        transport = transport,
        sleep = ngx.sleep, -- retries back off without blocking the worker
        timeout_ms = 5000,
        on_request = get_metrics().observe, -- after every DynamoDB request (each attempt)
    })
    local cache = make_cache()
    state = {
        client = client,
        transport = transport or "cosocket",
        tenant = env("TENANT_ID", "example"),
        client_id = env("CLIENT_ID", "example-app"),
        cache = cache,
        adapters = aws.create_adapters(client, { tableName = env("DYNAMODB_TABLE_NAME"), cache = cache }),
    }
    return state
end
-- For the tests (spec/openresty/cache_checks.lua): this worker's client, cache and adapters.
_M.state = app

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
    ngx.header["X-Worker"] = tostring(ngx.worker.id())
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

-- The tenant, read first on every request as AuthHero does (from the cache when it is on).
local function tenant_of(s)
    local tenant = s.adapters.tenants.get(s.tenant)
    if not tenant then
        ngx.log(ngx.ERR, "tenant ", s.tenant, " does not exist: run examples/openresty/seed.lua")
        fail(503, "unknown_tenant", "this server's tenant is not set up")
    end
    return tenant
end

-- The application a login or sign-up is for (client_id, else CLIENT_ID) and the connections
-- enabled for it: the client by its id, then its connections, as AuthHero's login reads them.
local function client_of(s, tenant, client_id)
    if client_id == nil then client_id = s.client_id end
    if type(client_id) ~= "string" or client_id == "" or #client_id > 256 then
        fail(400, "bad_request", "client_id must be a string")
    end
    local client = s.adapters.clients.getByClientId(client_id)
    if not client or client.tenant_id ~= tenant.id then fail(400, "invalid_client", "unknown client_id") end
    return client, s.adapters.clientConnections.listByClient(tenant.id, client_id)
end

-- The database connection among a client's connections; a 400 when it is not enabled for it.
local function database_connection(connections)
    for _, c in ipairs(connections) do
        if c.name == CONNECTION then return c end
    end
    fail(400, "connection_disabled", "password logins are not enabled for this client")
end

-- ---- routes ----

local function signup(s)
    local doc = json_body()
    local email, password = credentials_of(doc)
    local tenant = tenant_of(s)
    local _, connections = client_of(s, tenant, doc.client_id)
    local connection = database_connection(connections)
    local user = s.adapters.users.create(tenant.id, {
        email = email, connection = connection.name, provider = PROVIDER, email_verified = false,
        password = { hash = pwhash.hash(password), algorithm = ALGORITHM },
    })
    reply(201, user)
end

-- GET /login?client_id=: what a login page is drawn from, all of it configuration.
local function login_page(s)
    local tenant = tenant_of(s)
    local client, connections = client_of(s, tenant, ngx.req.get_uri_args(20).client_id)
    local A = s.adapters
    local branding, prompt = A.branding.get(tenant.id), A.promptSettings.get(tenant.id)
    local names = {}
    for i, c in ipairs(connections) do names[i] = c.name end
    reply(200, {
        tenant = { id = tenant.id, friendly_name = tenant.friendly_name },
        client = { client_id = client.client_id, name = client.name },
        connections = names,
        logo_url = branding and branding.logo_url or cjson.null,
        colors = branding and branding.colors or cjson.null,
        identifier_first = prompt.identifier_first,
    })
end

local function login(s)
    local doc = json_body()
    local email, password = credentials_of(doc)
    local tenant = tenant_of(s)
    local _, connections = client_of(s, tenant, doc.client_id)
    database_connection(connections)
    local A = s.adapters
    -- the lookup AuthHero's login code makes: q on email and provider
    local q = 'email:"' .. email .. '" provider:' .. PROVIDER
    local user = A.users.list(tenant.id, { q = q, per_page = 1 }).users[1]
    local pw = user and A.passwords.get(tenant.id, user.user_id)
    if not check_password(password, pw and pw.password, user and user.user_id) then
        fail(401, "invalid_credentials", "wrong email or password")
    end
    local now = ngx.time()
    -- the tenant's session lifetime (hours), else a day
    local lifetime = tonumber(tenant.session_lifetime)
    local session = A.sessions.create(tenant.id, {
        id = random_hex(16), user_id = user.user_id, login_session_id = random_hex(16),
        expires_at = iso(now + (lifetime and lifetime * 3600 or SESSION_SECONDS)),
        device = { last_ip = ngx.var.remote_addr, last_user_agent = ngx.var.http_user_agent or "" },
    })
    reply(200, { session_id = session.id, user_id = user.user_id, expires_at = session.expires_at })
end

local function get_user(s, id)
    local user = s.adapters.users.get(tenant_of(s).id, id)
    if not user then fail(404, "not_found", "no such user") end
    reply(200, user)
end

local function list_users(s)
    local args = ngx.req.get_uri_args(20)
    local q = args.q
    if q ~= nil and type(q) ~= "string" then fail(400, "bad_request", "one q, please") end
    local res = s.adapters.users.list(tenant_of(s).id, {
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
        if uri == "/metrics" and method == "GET" then
            ngx.header["Content-Type"] = aws.metrics.CONTENT_TYPE
            ngx.header["Cache-Control"] = "no-store"
            return ngx.print(get_metrics():render())
        end
        local s = app()
        if uri == "/signup" and method == "POST" then return signup(s) end
        if uri == "/login" and method == "POST" then return login(s) end
        if uri == "/login" and method == "GET" then return login_page(s) end
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
