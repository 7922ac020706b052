-- The table: names, key attributes and indexes of AuthHero's single-table design, and
-- create_table, which makes exactly that table (or accepts a compatible existing one).
-- Entity key layouts arrive with the adapters; this file owns the table-level facts.
local errors = require "authhero.aws.errors"
local core = require "authhero.aws.core"

local _M = {}

_M.DEFAULT_TABLE_NAME = "authhero"
_M.TTL_ATTRIBUTE = "ttl"
-- index name -> { partition key attribute, sort key attribute }
_M.INDEXES = {
    GSI1 = { "GSI1PK", "GSI1SK" }, -- user by email
    GSI2 = { "GSI2PK", "GSI2SK" }, -- tenant by custom domain
}

-- Every key of every entity (adapter contract §8), in one place. Each function returns a table of
-- key attributes; every value interpolated goes through core.key's escaping (§2.4); emails and
-- domains are lower-cased first. `prefix.X` are the sort-key prefixes range queries use.
local key = core.key
local function lower(s) return (s:lower()) end

_M.keys = {
    tenant = function(t) return { PK = key("TENANT", t), SK = "TENANT" } end,
    tenant_index = function(t) return { GSI1PK = "TENANTS", GSI1SK = key("TENANT", t) } end,
    tenant_partition = function(t) return key("TENANT", t) end,

    user = function(t, u) return { PK = key("TENANT", t), SK = key("USER", u) } end,
    user_email_index = function(t, email) return { GSI1PK = key("TENANT", t, "EMAIL", lower(email)), GSI1SK = "USER" } end,
    user_linked_index = function(t, primary, u)
        return { GSI2PK = key("TENANT", t, "LINKED_TO", primary), GSI2SK = key("USER", u) }
    end,
    user_email_guard = function(t, email, provider)
        return { PK = key("TENANT", t), SK = key("USER_EMAIL", lower(email), provider) }
    end,
    user_username_guard = function(t, username, provider)
        return { PK = key("TENANT", t), SK = key("USER_USERNAME", lower(username), provider) }
    end,
    user_partition = function(t, u) return key("TENANT", t, "USER", u) end,

    session = function(t, id) return { PK = key("TENANT", t), SK = key("SESSION", id) } end,
    -- GSI1 partition of one user: sessions, memberships (and later refresh tokens, ...) by user
    user_index_partition = function(t, u) return key("TENANT", t, "USER", u) end,
    session_user_index = function(t, u, id) return { GSI1PK = key("TENANT", t, "USER", u), GSI1SK = key("SESSION", id) } end,

    client = function(t, c) return { PK = key("TENANT", t), SK = key("CLIENT", c) } end,
    client_id_pointer = function(c) return { PK = key("CLIENT_ID", c), SK = "CLIENT_ID" } end,

    connection = function(t, id) return { PK = key("TENANT", t), SK = key("CONNECTION", id) } end,
    connection_name_index = function(t, name)
        return { GSI1PK = key("TENANT", t, "CONNECTION_NAME", name), GSI1SK = "CONNECTION" }
    end,

    code = function(t, id) return { PK = key("TENANT", t), SK = key("CODE", id) } end,

    password = function(t, u, id) return { PK = key("TENANT", t, "USER", u), SK = key("PASSWORD", id) } end,

    organization = function(t, o) return { PK = key("TENANT", t), SK = key("ORG", o) } end,
    organization_name_guard = function(t, name) return { PK = key("TENANT", t), SK = key("ORG_NAME", name) } end,
    organization_partition = function(t, o) return key("TENANT", t, "ORG", o) end,

    member = function(t, o, u) return { PK = key("TENANT", t, "ORG", o), SK = key("MEMBER", u) } end,
    member_user_index = function(t, u, o) return { GSI1PK = key("TENANT", t, "USER", u), GSI1SK = key("MEMBER", o) } end,
    member_id_pointer = function(t, id) return { PK = key("TENANT", t), SK = key("MEMBER_ID", id) } end,

    role = function(t, r) return { PK = key("TENANT", t), SK = key("ROLE", r) } end,
    role_name_guard = function(t, name) return { PK = key("TENANT", t), SK = key("ROLE_NAME", name) } end,
    role_partition = function(t, r) return key("TENANT", t, "ROLE", r) end,

    -- permission id = {resource_server_identifier}#{permission_name}, each part escaped
    role_permission = function(t, r, rs, perm)
        return { PK = key("TENANT", t, "ROLE", r), SK = key("PERMISSION", rs, perm) }
    end,

    custom_domain = function(t, id) return { PK = key("TENANT", t), SK = key("CUSTOM_DOMAIN", id) } end,
    custom_domain_index = function(domain) return { GSI2PK = key("DOMAIN", domain), GSI2SK = "CUSTOM_DOMAIN" } end,
    domain_claim = function(domain) return { PK = key("DOMAIN", domain), SK = "CLAIM" } end,
}

-- Sort-key prefixes for range reads; each ends in '#', so USER# never matches USER_EMAIL#.
_M.prefix = {
    user = "USER#", session = "SESSION#", client = "CLIENT#", connection = "CONNECTION#",
    code = "CODE#", password = "PASSWORD#", organization = "ORG#", member = "MEMBER#",
    member_id = "MEMBER_ID#", role = "ROLE#", permission = "PERMISSION#",
    custom_domain = "CUSTOM_DOMAIN#", tenant = "TENANT#",
}

-- table_name([name]) -> name, else DYNAMODB_TABLE_NAME, else "authhero".
function _M.table_name(name)
    if name ~= nil and type(name) ~= "string" then errors.validation("tableName must be a string") end
    local env = os.getenv("DYNAMODB_TABLE_NAME")
    return name or (env ~= "" and env) or _M.DEFAULT_TABLE_NAME
end

local function key_schema(pk, sk)
    return { { AttributeName = pk, KeyType = "HASH" }, { AttributeName = sk, KeyType = "RANGE" } }
end

-- The CreateTable request for the documented table.
function _M.definition(table_name, billing_mode, rcu, wcu)
    local provisioned = billing_mode == "PROVISIONED"
    local throughput = provisioned and { ReadCapacityUnits = rcu or 5, WriteCapacityUnits = wcu or 5 } or nil
    local attrs = { { AttributeName = "PK", AttributeType = "S" }, { AttributeName = "SK", AttributeType = "S" } }
    local gsis = {}
    for _, name in ipairs({ "GSI1", "GSI2" }) do
        local pk, sk = _M.INDEXES[name][1], _M.INDEXES[name][2]
        attrs[#attrs + 1] = { AttributeName = pk, AttributeType = "S" }
        attrs[#attrs + 1] = { AttributeName = sk, AttributeType = "S" }
        gsis[#gsis + 1] = {
            IndexName = name,
            KeySchema = key_schema(pk, sk),
            Projection = { ProjectionType = "ALL" },
            ProvisionedThroughput = throughput,
        }
    end
    return {
        TableName = table_name,
        AttributeDefinitions = attrs,
        KeySchema = key_schema("PK", "SK"),
        GlobalSecondaryIndexes = gsis,
        BillingMode = provisioned and "PROVISIONED" or "PAY_PER_REQUEST",
        ProvisionedThroughput = throughput,
    }
end

local function same_keys(ks, pk, sk)
    if type(ks) ~= "table" or #ks ~= 2 then return false end
    local h, r
    for _, k in ipairs(ks) do
        if k.KeyType == "HASH" then h = k.AttributeName elseif k.KeyType == "RANGE" then r = k.AttributeName end
    end
    return h == pk and r == sk
end

-- Problems that make an existing table unusable, as a list of strings (empty when compatible).
function _M.incompatibilities(desc)
    local problems = {}
    if not same_keys(desc.KeySchema, "PK", "SK") then
        problems[#problems + 1] = "key schema is not PK (HASH) / SK (RANGE)"
    end
    local types = {}
    for _, a in ipairs(desc.AttributeDefinitions or {}) do types[a.AttributeName] = a.AttributeType end
    for _, name in ipairs({ "GSI1", "GSI2" }) do
        local found
        for _, g in ipairs(desc.GlobalSecondaryIndexes or {}) do
            if g.IndexName == name then found = g end
        end
        local pk, sk = _M.INDEXES[name][1], _M.INDEXES[name][2]
        if not found then
            problems[#problems + 1] = "index " .. name .. " is missing"
        else
            if not same_keys(found.KeySchema, pk, sk) then
                problems[#problems + 1] = "index " .. name .. " is not keyed on " .. pk .. "/" .. sk
            end
            if not (found.Projection and found.Projection.ProjectionType == "ALL") then
                problems[#problems + 1] = "index " .. name .. " does not project ALL attributes"
            end
        end
    end
    for _, a in ipairs({ "PK", "SK", "GSI1PK", "GSI1SK", "GSI2PK", "GSI2SK" }) do
        if types[a] and types[a] ~= "S" then problems[#problems + 1] = "attribute " .. a .. " is not a string (S)" end
    end
    return problems
end

local function wait_active(client, table_name, timeout, sleep, now)
    local deadline = now() + timeout
    while true do
        local t = client:call("DescribeTable", { TableName = table_name }).Table
        local ready = t.TableStatus == "ACTIVE"
        for _, g in ipairs(t.GlobalSecondaryIndexes or {}) do
            if g.IndexStatus and g.IndexStatus ~= "ACTIVE" then ready = false end
        end
        if ready then return t end
        if now() > deadline then
            errors.raise(0, "TimeoutError", "table " .. table_name .. " did not become ACTIVE in " .. timeout .. " s")
        end
        sleep(0.5)
    end
end

-- create_table(client, { tableName, billing_mode, read_capacity, write_capacity, timeout })
-- -> the table description. Creates the documented table, waits until it and its indexes are
-- ACTIVE and enables TTL on `ttl`. An existing compatible table is fine; an incompatible one
-- raises a ValidationError listing why.
function _M.create_table(client, opts)
    opts = opts or {}
    local name = _M.table_name(opts.tableName or opts.table_name)
    local billing = opts.billing_mode or "PAY_PER_REQUEST"
    if billing ~= "PAY_PER_REQUEST" and billing ~= "PROVISIONED" then
        errors.validation("billing_mode must be PAY_PER_REQUEST or PROVISIONED, got %s", tostring(billing))
    end
    local sleep, now = opts.sleep or core.sleep, opts.now or core.now
    local ok, err = pcall(client.call, client, "CreateTable",
        _M.definition(name, billing, opts.read_capacity, opts.write_capacity))
    if not ok and not errors.is(err, "ResourceInUseException") then error(err, 0) end
    local desc = wait_active(client, name, opts.timeout or 120, sleep, now)
    local problems = _M.incompatibilities(desc)
    if #problems > 0 then
        errors.raise(400, "ValidationError",
            "table " .. name .. " exists but is not compatible: " .. table.concat(problems, "; "))
    end
    local ttl = client:call("DescribeTimeToLive", { TableName = name }).TimeToLiveDescription or {}
    local status = ttl.TimeToLiveStatus
    if status == "ENABLED" or status == "ENABLING" then
        if ttl.AttributeName ~= _M.TTL_ATTRIBUTE then
            errors.raise(400, "ValidationError", "table " .. name .. " has TTL on " .. tostring(ttl.AttributeName)
                .. ", not on " .. _M.TTL_ATTRIBUTE)
        end
    else
        client:call("UpdateTimeToLive", {
            TableName = name,
            TimeToLiveSpecification = { Enabled = true, AttributeName = _M.TTL_ATTRIBUTE },
        })
    end
    return desc
end

return _M
