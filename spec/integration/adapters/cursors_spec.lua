-- Forged keyset cursors (contract §3.3, §2.10) against DynamoDB Local: a cursor with the right
-- fingerprint (anyone can copy it from a genuine cursor) around a key that lies outside the query —
-- another partition, another sort-key prefix, another index's key, extra or missing attributes,
-- empty or oversized values, non-strings — restarts the listing: no DynamoDB ValidationException,
-- no record of another tenant or entity. Base-table listings (users, sessions) and an index listing
-- (tenants, GSI1).
local fx = require "support.adapters"
local core = require "authhero.aws.core"
local util = require "authhero.aws.util"
local schema = require "authhero.aws.schema"

local keys = schema.keys

local function decode(cursor)
    return core.json_decode(util.unb64url(cursor))
end

local function encode(c)
    return util.b64url(core.json_encode(c))
end

-- the cursor with its key replaced by mutate(copy of the key) (the fingerprint kept)
local function forge(cursor, mutate)
    local c = decode(cursor)
    local k = util.shallow_copy(c.k)
    c.k = mutate(k) or k
    return encode(c)
end

describe("forged keyset cursors", function()
    local A, t, other
    local users, others = {}, {}

    setup(function()
        A = fx.adapters()
        t, other = fx.tenant("cur"), fx.tenant("cur-other")
        for _, tid in ipairs({ t, other }) do
            A.tenants.create({ id = tid, friendly_name = "cursor tenant " .. tid })
        end
        for i = 1, 5 do
            local u = A.users.create(t, { user_id = "auth2|u" .. i, email = "u" .. i .. "@example.com",
                connection = "Username-Password-Authentication", provider = "auth2" })
            users[#users + 1] = u.user_id
            local o = A.users.create(other, { user_id = "auth2|o" .. i, email = "o" .. i .. "@example.com",
                connection = "Username-Password-Authentication", provider = "auth2" })
            others[#others + 1] = o.user_id
        end
        for i = 1, 4 do
            A.sessions.create(t, { id = "s" .. i, user_id = users[1], login_session_id = "ls1", clients = { "c" },
                expires_at = util.iso(fx.now_ms() + 86400000), device = {
                    last_ip = "", initial_ip = "", last_user_agent = "", initial_user_agent = "",
                    initial_asn = "", last_asn = "" } })
        end
    end)

    local function user_ids(r) return fx.ids(r.users, "user_id") end

    it("a genuine users cursor continues and every forged one restarts", function()
        local first = A.users.list(t, { take = 2 })
        assert.same({ "auth2|u1", "auth2|u2" }, user_ids(first))
        assert.same({ "auth2|u3", "auth2|u4" }, user_ids(A.users.list(t, { take = 2, from = first.next })))
        local c = decode(first.next)
        assert.same({ "PK", "SK" }, util.sorted_keys(c.k))

        local other_pk = keys.tenant_partition(other)
        local forged = {
            -- the key moved to another tenant's partition (a user there)
            other_partition = forge(first.next, function(k) k.PK = other_pk; k.SK = "USER#auth2|o2" end),
            other_partition_only = forge(first.next, function(k) k.PK = other_pk end),
            -- same partition, another entity's prefix
            other_prefix = forge(first.next, function(k) k.SK = "SESSION#s1" end),
            before_prefix = forge(first.next, function(k) k.SK = "A" end),
            -- another index's key, alone or added
            index_key_added = forge(first.next, function(k)
                k.GSI1PK = "TENANT#" .. t .. "#EMAIL#u2@example.com"
                k.GSI1SK = "USER"
            end),
            index_key_only = forge(first.next, function()
                return { GSI1PK = "TENANT#" .. t .. "#EMAIL#u2@example.com", GSI1SK = "USER" }
            end),
            extra_attribute = forge(first.next, function(k) k.email = "u2@example.com" end),
            missing_sk = forge(first.next, function(k) k.SK = nil end),
            empty_sk = forge(first.next, function(k) k.SK = "" end),
            empty_pk = forge(first.next, function(k) k.PK = "" end),
            oversized_sk = forge(first.next, function(k) k.SK = "USER#" .. string.rep("x", 1100) end),
            number_sk = forge(first.next, function(k) k.SK = 5 end),
            list_key = forge(first.next, function(k) return { k.PK, k.SK } end),
        }
        for name, cursor in pairs(forged) do
            local ok, r = pcall(A.users.list, t, { take = 2, from = cursor })
            assert(ok, name .. ": " .. tostring(r))
            assert.same({ "auth2|u1", "auth2|u2" }, user_ids(r), name)
        end
        -- a walk from a forged cursor still visits this tenant's users only
        local seen = {}
        local r = A.users.list(t, { take = 2, from = forged.other_partition })
        while true do
            for _, id in ipairs(user_ids(r)) do seen[#seen + 1] = id end
            if not r.next then break end
            r = A.users.list(t, { take = 2, from = r.next })
        end
        assert.same(users, seen)
    end)

    it("a sessions cursor moved onto the users' prefix restarts", function()
        local first = A.sessions.list(t, { take = 2 })
        local page1 = fx.ids(first.sessions)
        assert.equals(2, #page1)
        assert.is_string(first.next)
        for name, cursor in pairs({
            users_prefix = forge(first.next, function(k) k.SK = "USER#auth2|u3" end),
            other_tenant = forge(first.next, function(k) k.PK = keys.tenant_partition(other) end),
            extra = forge(first.next, function(k) k.GSI2PK = "x"; k.GSI2SK = "y" end),
        }) do
            local ok, r = pcall(A.sessions.list, t, { take = 2, from = cursor })
            assert(ok, name .. ": " .. tostring(r))
            assert.same(page1, fx.ids(r.sessions), name)
        end
    end)

    it("an index cursor (tenants, GSI1) must hold exactly that index's key inside the query", function()
        local first = A.tenants.list({ take = 1 })
        local page1 = fx.ids(first.tenants)
        local next = first.totals.next
        assert.is_string(next)
        local c = decode(next)
        assert.is_string(c.k.GSI1PK)
        assert.is_string(c.k.GSI1SK)
        local second = A.tenants.list({ take = 1, from = next })
        assert.are_not.same(page1, fx.ids(second.tenants))
        for name, cursor in pairs({
            other_index_partition = forge(next, function(k) k.GSI1PK = "TENANT#" .. t .. "#EMAIL#u1@example.com" end),
            other_index_prefix = forge(next, function(k) k.GSI1SK = "USER" end),
            base_key_only = forge(next, function(k) k.GSI1PK = nil; k.GSI1SK = nil end),
            gsi2_instead = forge(next, function(k)
                k.GSI2PK, k.GSI2SK, k.GSI1PK, k.GSI1SK = k.GSI1PK, k.GSI1SK, nil, nil
            end),
            both_indexes = forge(next, function(k) k.GSI2PK = "DOMAIN#x"; k.GSI2SK = "CUSTOM_DOMAIN" end),
            empty_base_pk = forge(next, function(k) k.PK = "" end),
            oversized_index_sk = forge(next, function(k) k.GSI1SK = k.GSI1SK .. string.rep("x", 1100) end),
        }) do
            local ok, r = pcall(A.tenants.list, { take = 1, from = cursor })
            assert(ok, name .. ": " .. tostring(r))
            assert.same(page1, fx.ids(r.tenants), name)
        end
    end)

    it("a logs cursor must name exactly the four key attributes, within the key limits", function()
        for i = 1, 4 do A.logs.create(t, { log_id = "L" .. i, type = "s", isMobile = false }) end
        local first = A.logs.list(t, { take = 2 })
        local page1 = fx.ids(first.logs, "log_id")
        assert.equals(2, #page1)
        local c = decode(first.next)
        local function forged(mutate)
            local k = util.shallow_copy(c.k)
            mutate(k)
            return encode({ f = c.f, d = c.d, k = k })
        end
        for name, cursor in pairs({
            missing_sk = forged(function(k) k.SK, k.foo = nil, "x" end),
            missing_index_sk = forged(function(k) k.GSI1SK, k.foo = nil, "x" end),
            oversized_sk = forged(function(k) k.SK = k.SK .. string.rep("x", 1100) end),
            oversized_index_sk = forged(function(k) k.GSI1SK = k.GSI1SK .. string.rep("x", 1100) end),
        }) do
            local ok, r = pcall(A.logs.list, t, { take = 2, from = cursor })
            assert(ok, name .. ": " .. tostring(r))
            assert.same(page1, fx.ids(r.logs, "log_id"), name)
        end
    end)
end)
