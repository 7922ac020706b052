-- A first look at authhero-aws: an AuthHero-style story told through the adapters, the way an
-- auth server uses them: a tenant with an application and a database connection, a sign-up with a
-- password hash, a login by email, a session, a one-time login code, a role with permissions, an
-- organization, a custom domain, and a filtered user list. Each step prints what it did and what it
-- cost (requests, and the capacity DynamoDB reports with ReturnConsumedCapacity = TOTAL).
-- Run by `make demo`; or: DYNAMODB_ENDPOINT=http://127.0.0.1:8000 lua5.4 examples/quickstart.lua
-- (DYNAMODB_TABLE_NAME picks the table, default authhero; without DYNAMODB_ENDPOINT it talks to
-- AWS with the usual region and credentials.)
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = "build/5.4/?.so;" .. package.cpath
local aws = require "authhero.aws"
local pwhash = require "authhero.aws.password"

local endpoint = os.getenv("DYNAMODB_ENDPOINT")
local client = aws.client.new({
    region = os.getenv("AWS_REGION") or "us-east-1",
    endpoint = endpoint,
    -- DynamoDB Local accepts any credentials; against AWS leave this out and the chain finds them
    credentials = endpoint and { accessKeyId = "local", secretAccessKey = "local" } or nil,
    return_consumed_capacity = "TOTAL", -- every data call reports its cost into client.stats
})
local TABLE = aws.schema.table_name()

local last = { requests = 0, read = 0, write = 0 }
local function step(what)
    local s = client.stats
    print(string.format("[%2d req %4.1f RCU %5.1f WCU] %s", s.requests - last.requests, s.read_capacity - last.read,
        s.write_capacity - last.write, what))
    last = { requests = s.requests, read = s.read_capacity, write = s.write_capacity }
end
local function iso(offset_s)
    return os.date("!%Y-%m-%dT%H:%M:%S.000Z", os.time() + (offset_s or 0))
end

aws.schema.create_table(client, { tableName = TABLE })
step("table " .. TABLE .. " is ready (GSI1, GSI2, TTL on ttl)")

local db = aws.create_adapters(client, { tableName = TABLE })
local T = "acme"

-- a clean slate: remove the demo tenant an earlier run left behind (a cascading delete)
if db.tenants.get(T) then
    db.tenants.remove(T)
    step("removed tenant acme left by an earlier run (with everything it owned)")
else
    step("no tenant acme from an earlier run")
end

db.tenants.create({ id = T, friendly_name = "Acme Corp", sender_email = "login@acme.example" })
step("created tenant acme")

local app = db.clients.create(T, { client_id = "acme-web", name = "Acme Web",
    callbacks = { "https://app.acme.example/callback" }, grant_types = { "authorization_code" } })
step("created client " .. app.client_id .. " (+ its global client-id pointer, one transaction)")

local conn = db.connections.create(T, { id = "con-db", name = "Username-Password-Authentication",
    strategy = "Username-Password-Authentication" })
step("created connection " .. conn.name)

-- sign-up: the auth server hashes the password (bcrypt at cost 10, as AuthHero does, so AuthHero
-- can check it too); the adapter stores the hash with the user
local HASH = pwhash.hash("correct horse battery staple")
local ada = db.users.create(T, { email = "Ada@Acme.Example", connection = conn.name, provider = "auth2",
    name = "Ada Lovelace", password = { hash = HASH, algorithm = "bcrypt" } })
step("signed up " .. ada.email .. " as " .. ada.user_id .. " (user, email guard, password: 1 transaction)")

local ok, err = pcall(db.users.create, T, { email = "ada@acme.example", connection = conn.name, provider = "auth2" })
assert(not ok and aws.errors.is(err, "Conflict"))
step("signing up ada@acme.example again -> " .. tostring(err))

-- login: find the user by email (GSI1), check the current password, count the login
local found = db.users.getByEmail(T, "ADA@acme.example")
local pw = db.passwords.get(T, found.user_id)
assert(found.user_id == ada.user_id and pw.password == HASH)
assert(pwhash.verify("correct horse battery staple", pw.password) and not pwhash.verify("wrong horse", pw.password))
db.users.update(T, found.user_id, { login_count = found.login_count + 1, last_login = iso() })
step("logged in by email: found " .. found.user_id .. ", bcrypt password check passed, login counted")

local session = db.sessions.create(T, { id = "ses-" .. os.time(), user_id = ada.user_id, login_session_id = "ls-1",
    clients = { app.client_id }, expires_at = iso(24 * 3600) })
step("opened session " .. session.id .. " (expires in a day; DynamoDB's TTL deletes it after)")

local code = db.codes.create(T, { code_id = "otp-" .. os.time(), code_type = "otp", login_id = "ls-1",
    otp = "493817", expires_at = iso(300) })
local first, second = db.codes.consume(T, code.code_id), db.codes.consume(T, code.code_id)
assert(first == true and second == false)
step("issued login code " .. code.code_id .. ", consumed it (again -> " .. tostring(second) .. ")")

local role = db.roles.create(T, { id = "rol-admin", name = "admin", description = "Full access" })
db.rolePermissions.assign(T, role.id, {
    { resource_server_identifier = "https://api.acme.example", permission_name = "read:reports" },
    { resource_server_identifier = "https://api.acme.example", permission_name = "manage:users" },
})
local perms = db.rolePermissions.list(T, role.id)
step("created role admin with " .. #perms .. " permissions: " .. perms[1].permission_name .. ", "
    .. perms[2].permission_name)

local org = db.organizations.create(T, { id = "org-eng", name = "engineering", display_name = "Engineering" })
db.userOrganizations.create(T, { user_id = ada.user_id, organization_id = org.id })
local orgs = db.userOrganizations.listUserOrganizations(T, ada.user_id).organizations
step("created organization engineering and added " .. ada.email .. " to it -> member of " .. orgs[1].display_name)

db.customDomains.create(T, { custom_domain_id = "cd-login", domain = "login.acme.example",
    type = "auth0_managed_certs", status = "ready" })
local dom = db.customDomains.getByDomain("Login.ACME.example.")
step("registered login.acme.example; looked host Login.ACME.example. up -> tenant " .. dom.tenant_id)

for i, name in ipairs({ "Grace Hopper", "Linus Pauling", "Margaret Hamilton" }) do
    db.users.create(T, { user_id = "auth2|demo" .. i, email = name:match("^(%a+)"):lower() .. "@acme.example",
        connection = conn.name, name = name, email_verified = i ~= 2 })
end
step("signed up 3 more users")

local q = "email_verified:true -_exists_:linked_to"
local page = db.users.list(T, { q = q, per_page = 10, include_totals = true })
local emails = {}
for _, u in ipairs(page.users) do emails[#emails + 1] = u.email end
step(string.format("listed users with q = %q -> %d of %d: %s", q, page.length, page.total, table.concat(emails, ", ")))

local s = client.stats
print(string.format("total: %d requests, %d retries, %.1f RCU, %.1f WCU", s.requests, s.retries, s.read_capacity,
    s.write_capacity))
client:close()
