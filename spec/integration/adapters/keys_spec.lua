-- keys (contract §5.3) against DynamoDB Local: the global KEYS partition, create/list/update, the
-- exact q shapes AuthHero sends to pick signing keys (tenant keys, shared keys, by kid, SAML),
-- revoked keys hidden by the injected clock, pagination, hostile kids, the tenant cascade and a
-- create race. Most tests run in a table of their own, so the KEYS partition holds only theirs.
local fx = require "support.adapters"
local aws = require "authhero.aws"
local core = require "authhero.aws.core"
local util = require "authhero.aws.util"
local schema = require "authhero.aws.schema"

local T0 = math.floor(core.now()) * 1000
local MIN = 60 * 1000

local function iso(ms) return util.iso(ms) end

local function key(kid, extra)
    local name = tostring(kid)
    local k = { kid = kid, cert = "cert-" .. name, fingerprint = "fp-" .. name, thumbprint = "tp-" .. name,
        type = "jwt_signing" }
    for f, v in pairs(extra or {}) do k[f] = v end
    return k
end

local function kids(page) return fx.ids(page.signingKeys, "kid") end

-- AuthHero's own calls (packages/authhero/src/helpers/signing-keys.ts and the keys routes)
local function by_tenant(keys, t, typ)
    return keys.list({ q = "type:" .. typ .. " AND tenant_id:" .. t, per_page = 1000,
        sort = { sort_by = "created_at", sort_order = "desc" } })
end
local function shared(keys, typ)
    return keys.list({ q = "type:" .. typ .. " AND -_exists_:tenant_id", per_page = 1000,
        sort = { sort_by = "created_at", sort_order = "desc" } })
end

describe("keys", function()
    local client, tbl, a, keys
    local tables = {}

    -- a table of one's own: its KEYS partition holds only what the test put there
    local function own_table()
        local name = "keys_" .. os.time() .. "_" .. math.random(1000000)
        aws.schema.create_table(client, { tableName = name })
        tables[#tables + 1] = name
        return name, fx.adapters({ tableName = name })
    end

    local function raw_get(kid)
        return client:call("GetItem", { TableName = tbl, Key = schema.keys.signing_key(kid), ConsistentRead = true }).Item
    end

    setup(function()
        client = fx.client()
        tbl, a = own_table()
        keys = a.keys
    end)
    teardown(function()
        fx.reset_clock()
        for _, name in ipairs(tables) do client:call("DeleteTable", { TableName = name }) end
    end)
    before_each(function() fx.set_now(T0) end)
    after_each(function() fx.reset_clock() end)

    describe("create", function()
        it("stores the key in the KEYS partition with tenant_id and returns nothing", function()
            local n = select("#", keys.create(key("c-1", { tenant_id = "acme", pkcs7 = "PRIVATE", current = true,
                next = false, connection = "conn", current_since = "2024-01-02T03:04:05+02:00" })))
            assert.equal(0, n)
            local it = raw_get("c-1")
            assert.equal("KEYS", it.PK)
            assert.equal("KEY#c-1", it.SK)
            assert.equal("KEY", it.entityType)
            assert.equal("acme", it.tenant_id)
            assert.equal(true, it.current)
            assert.equal(false, it.next)
            assert.equal("2024-01-02T01:04:05.000Z", it.current_since)
            assert.equal(iso(T0), it.created_at)
            assert.equal(iso(T0), it.updated_at)
            local got = keys.list({ q = "kid:c-1" }).signingKeys
            assert.same({ { kid = "c-1", tenant_id = "acme", cert = "cert-c-1", fingerprint = "fp-c-1",
                thumbprint = "tp-c-1", type = "jwt_signing", pkcs7 = "PRIVATE", current = true, next = false,
                connection = "conn", current_since = "2024-01-02T01:04:05.000Z", created_at = iso(T0),
                updated_at = iso(T0) } }, got)
            -- a shared key has no tenant_id at all
            keys:create(key("c-2"))
            assert.is_nil(raw_get("c-2").tenant_id)
            assert.is_nil(keys.list({ q = "kid:c-2" }).signingKeys[1].tenant_id)
        end)

        it("refuses an existing kid with 409 and keeps the first key", function()
            keys.create(key("c-dup", { tenant_id = "first" }))
            fx.raises(409, "Conflict", keys.create, key("c-dup", { tenant_id = "second", cert = "other" }))
            local it = raw_get("c-dup")
            assert.equal("first", it.tenant_id)
            assert.equal("cert-c-dup", it.cert)
        end)

        it("takes the kid and timestamps from importMetadata", function()
            keys.create(key("ignored"), { importMetadata = { id = "c-imp", created_at = "2023-05-06T07:08:09Z" } })
            assert.is_nil(raw_get("ignored"))
            local it = raw_get("c-imp")
            assert.equal("c-imp", it.kid)
            assert.equal("2023-05-06T07:08:09.000Z", it.created_at)
            assert.equal("2023-05-06T07:08:09.000Z", it.updated_at)
        end)

        it("validates before sending anything", function()
            fx.rejects(keys.create, nil)
            fx.rejects(keys.create, "k")
            fx.rejects(keys.create, key(nil))
            fx.rejects(keys.create, key(""))
            fx.rejects(keys.create, key("v", { cert = core.null }))
            fx.rejects(keys.create, key("v", { fingerprint = 1 }))
            fx.rejects(keys.create, key("v", { thumbprint = "" }))
            fx.rejects(keys.create, key("v", { type = "rsa" }))
            fx.rejects(keys.create, key("v", { type = core.null }))
            fx.rejects(keys.create, key("v", { tenant_id = "" }))
            fx.rejects(keys.create, key("v", { tenant_id = 7 }))
            fx.rejects(keys.create, key("v", { current = "yes" }))
            fx.rejects(keys.create, key("v", { revoked = 1 }))
            fx.rejects(keys.create, key("v", { revoked_at = "tomorrow" }))
            fx.rejects(keys.create, key("v", { current_until = 5 }))
            fx.rejects(keys.create, key("v", { pkcs7 = {} }))
            fx.rejects(keys.create, key(string.rep("k", 1021))) -- SK KEY#… over 1024 bytes
            fx.rejects(keys.update, nil, {})
            fx.rejects(keys.update, "v", nil)
            fx.rejects(keys.update, "v", { type = core.null })
            fx.rejects(keys.update, "v", { type = "x" })
            fx.rejects(keys.update, "v", { cert = core.null })
            fx.rejects(keys.update, "v", { revoked_at = "later" })
            fx.rejects(keys.update, "v", { tenant_id = "" })
            fx.rejects(keys.list, { q = "pkcs7:x" })
            fx.rejects(keys.list, { q = "cert:x" })
            fx.rejects(keys.list, { per_page = "many" })
            fx.rejects(keys.list, "type:jwt_signing")
            assert.is_nil(raw_get("v"))
        end)
    end)

    describe("update", function()
        it("patches fields, revokes, moves between tenants; false when the kid is missing", function()
            keys.create(key("u-1", { tenant_id = "acme", current = true }))
            fx.advance(5)
            assert.is_true(keys.update("u-1", { current = false, previous = true, revoked_at = "2099-01-01T00:00:00Z",
                kid = "other", created_at = "2000-01-01T00:00:00Z", connection = "c" }))
            local it = raw_get("u-1")
            assert.equal(false, it.current)
            assert.equal(true, it.previous)
            assert.equal("2099-01-01T00:00:00.000Z", it.revoked_at)
            assert.equal("u-1", it.kid)
            assert.equal(iso(T0), it.created_at)
            assert.equal(iso(T0 + 5000), it.updated_at)
            assert.is_nil(raw_get("other"))
            -- null removes; tenant_id null makes it a shared key
            assert.is_true(keys:update("u-1", { connection = core.null, tenant_id = core.null }))
            it = raw_get("u-1")
            assert.is_nil(it.connection)
            assert.is_nil(it.tenant_id)
            assert.is_true(keys.update("u-1", { tenant_id = "beta" }))
            assert.equal("beta", raw_get("u-1").tenant_id)
            assert.is_false(keys.update("u-missing", { revoked_at = iso(T0) }))
            assert.is_nil(raw_get("u-missing"))
            assert.is_false(keys.update(string.rep("k", 2000), { revoked = true }))
        end)
    end)

    describe("the listings AuthHero uses to pick keys", function()
        local keys -- luacheck: ignore 431 (this describe's own table)
        setup(function()
            keys = select(2, own_table()).keys
            local function at(min, k)
                fx.set_now(T0 + min * MIN)
                keys.create(k)
            end
            -- tenant ta: jwt keys created in this order; one revoked in the past, one at "now",
            -- one in the future; a SAML key. Tenants whose ids extend ta's must stay apart.
            at(1, key("ta-old", { tenant_id = "ta" }))
            at(2, key("ta-gone", { tenant_id = "ta", revoked_at = iso(T0 - MIN) }))
            at(3, key("ta-new", { tenant_id = "ta", current_since = iso(T0 + 3 * MIN) }))
            at(4, key("ta-grace", { tenant_id = "ta", revoked_at = iso(T0 + 60 * MIN) }))
            at(5, key("ta-now", { tenant_id = "ta", revoked_at = iso(T0 + 10 * MIN) }))
            at(6, key("ta-saml", { tenant_id = "ta", type = "saml_encryption" }))
            at(7, key("tb-1", { tenant_id = "tb" }))
            at(8, key("tax-1", { tenant_id = "tax" }))
            at(9, key("ta#x-1", { tenant_id = "ta#x" }))
            at(10, key("shared-1"))
            at(11, key("shared-2", { revoked = true, revoked_at = iso(T0 - 1) }))
            at(12, key("shared-3", { revoked_at = iso(T0 + 30 * MIN) }))
            at(13, key("shared-saml", { type = "saml_encryption" }))
            fx.reset_clock()
        end)
        before_each(function() fx.set_now(T0 + 10 * MIN) end) -- ta-now is revoked exactly now

        it("type:{t} AND tenant_id:{id}: that tenant's live keys, newest first", function()
            local r = by_tenant(keys, "ta", "jwt_signing")
            assert.same({ "ta-grace", "ta-new", "ta-old" }, kids(r))
            assert.equal(0, r.start)
            assert.equal(1000, r.limit)
            assert.equal(3, r.length)
            assert.is_nil(r.total)
            assert.same({ "ta-saml" }, kids(by_tenant(keys, "ta", "saml_encryption")))
            assert.same({ "tb-1" }, kids(by_tenant(keys, "tb", "jwt_signing")))
            assert.same({ "tax-1" }, kids(by_tenant(keys, "tax", "jwt_signing")))
            assert.same({}, kids(by_tenant(keys, "t", "jwt_signing")))
            assert.same({ "ta#x-1" }, kids(keys.list({ q = 'type:jwt_signing AND tenant_id:"ta#x"' })))
            -- once the grace period is over the key is gone
            fx.set_now(T0 + 60 * MIN)
            assert.same({ "ta-new", "ta-old" }, kids(by_tenant(keys, "ta", "jwt_signing")))
            -- and before ta-now's revocation it was still there
            fx.set_now(T0 + 10 * MIN - 1)
            assert.same({ "ta-now", "ta-grace", "ta-new", "ta-old" }, kids(by_tenant(keys, "ta", "jwt_signing")))
        end)

        it("type:{t} AND -_exists_:tenant_id: only the shared keys", function()
            assert.same({ "shared-3", "shared-1" }, kids(shared(keys, "jwt_signing")))
            assert.same({ "shared-saml" }, kids(shared(keys, "saml_encryption")))
            fx.set_now(T0 + 30 * MIN)
            assert.same({ "shared-1" }, kids(shared(keys, "jwt_signing")))
        end)

        it("type:jwt_signing AND kid:{kid}: that key, whoever's, unless revoked", function()
            local r = keys.list({ q = "type:jwt_signing AND kid:tb-1" })
            assert.same({ "tb-1" }, kids(r))
            assert.equal("tb", r.signingKeys[1].tenant_id)
            assert.same({ "shared-1" }, kids(keys.list({ q = "type:jwt_signing AND kid:shared-1" })))
            assert.same({}, kids(keys.list({ q = "type:jwt_signing AND kid:ta-saml" })))
            assert.same({}, kids(keys.list({ q = "type:jwt_signing AND kid:ta-gone" })))
            assert.same({}, kids(keys.list({ q = "type:jwt_signing AND kid:ta-now" })))
            assert.same({}, kids(keys.list({ q = "type:jwt_signing AND kid:ta" })))
            assert.same({}, kids(keys.list({ q = "type:jwt_signing AND kid:nope" })))
            assert.same({ "ta#x-1" }, kids(keys.list({ q = 'type:jwt_signing AND kid:"ta#x-1"' })))
        end)

        it("answers kid: with one consistent GetItem", function()
            local ops = {}
            local spy = setmetatable({ call = function(_, op, req)
                ops[#ops + 1] = op .. ":" .. tostring(req.ConsistentRead)
                return client:call(op, req)
            end }, { __index = client })
            local name = tables[#tables]
            local spied = aws.create_adapters(spy, { tableName = name, now = fx.now_ms }).keys
            assert.same({ "tb-1" }, kids(spied.list({ q = "type:jwt_signing AND kid:tb-1" })))
            assert.same({ "GetItem:true" }, ops)
            ops = {}
            assert.same({ "tb-1" }, kids(spied.list({ q = "type:jwt_signing AND tenant_id:tb" })))
            assert.same({ "Query:true" }, ops)
        end)

        it("type:saml_encryption: every live SAML key", function()
            assert.same({ "shared-saml", "ta-saml" }, kids(keys.list({ q = "type:saml_encryption" })))
        end)

        it("without q: every live key, counted, paged, walked", function()
            local live = { "shared-1", "shared-3", "shared-saml", "ta#x-1", "ta-grace", "ta-new", "ta-old", "ta-saml",
                "tax-1", "tb-1" }
            local all = keys.list({ per_page = 1000 })
            assert.same(live, kids(all))
            local p = keys.list({ page = 1, per_page = 4, include_totals = true })
            assert.same({ "ta-grace", "ta-new", "ta-old", "ta-saml" }, kids(p))
            assert.equal(4, p.start)
            assert.equal(4, p.limit)
            assert.equal(10, p.total)
            assert.equal(10, p.length)
            local last = keys.list({ page = 2, per_page = 4, include_totals = true })
            assert.same({ "tax-1", "tb-1" }, kids(last))
            local walked, pages = fx.keyset_walk(keys.list, "signingKeys", "kid", 3, function(page)
                assert.equal(0, page.start)
                assert.equal(3, page.limit)
                assert.is_nil(page.total)
            end)
            assert.same(live, walked)
            assert.equal(4, pages)
            -- keyset with a filter: only tenant ta's, two at a time
            local ta = fx.keyset_walk(function(o)
                o.q = "tenant_id:ta"
                return keys.list(o)
            end, "signingKeys", "kid", 2)
            assert.same({ "ta-grace", "ta-new", "ta-old", "ta-saml" }, ta)
            -- a foreign cursor restarts the listing
            local first = keys.list({ take = 2 })
            local other = keys.list({ take = 2, from = first.next, q = "tenant_id:ta" })
            assert.same({ "ta-grace", "ta-new" }, kids(other))
        end)

        it("filters on the other q fields and free text", function()
            assert.same({ "ta-new" }, kids(keys.list({ q = "current_since:>2000-01-01" })))
            assert.same({ "shared-3", "ta-grace" }, kids(keys.list({ q = "_exists_:revoked_at" })))
            assert.same({ "tb-1" }, kids(keys.list({ q = "fingerprint:fp-tb-1" })))
            assert.same({ "tax-1" }, kids(keys.list({ q = "tax" })))
            local s = keys.list({ q = "type:jwt_signing", sort = { sort_by = "kid", sort_order = "desc" }, per_page = 3 })
            assert.same({ "tb-1", "tax-1", "ta-old" }, kids(s))
            assert.equal(0, keys.list({ q = "current:true" }).length)
        end)
    end)

    it("keeps kids with # and % apart", function()
        local odd = { "h#KEY#x", "h%23KEY%23x", "h%", "h#" }
        for i, kid in ipairs(odd) do keys.create(key(kid, { tenant_id = "hostile", connection = "c" .. i })) end
        for i, kid in ipairs(odd) do
            local r = keys.list({ q = 'kid:"' .. kid .. '"' })
            assert.same({ kid }, kids(r))
            assert.equal("c" .. i, r.signingKeys[1].connection)
        end
        assert.is_true(keys.update("h#KEY#x", { connection = "changed" }))
        assert.equal("c2", keys.list({ q = 'kid:"h%23KEY%23x"' }).signingKeys[1].connection)
        assert.equal("changed", raw_get("h#KEY#x").connection)
        assert.equal("KEY#h%23KEY%23x", schema.keys.signing_key("h#KEY#x").SK)
        assert.equal(4, keys.list({ q = "tenant_id:hostile", include_totals = true }).total)
    end)

    it("removing a tenant removes its keys and no one else's", function()
        local t = fx.tenant()
        a.tenants.create({ id = t, friendly_name = "Doomed" })
        keys.create(key("cas-mine-1", { tenant_id = t }))
        keys.create(key("cas-mine-2", { tenant_id = t, type = "saml_encryption", revoked_at = iso(T0 - 1) }))
        keys.create(key("cas-other", { tenant_id = t .. "x" }))
        keys.create(key("cas-shared"))
        assert.is_true(a.tenants.remove(t))
        assert.is_nil(raw_get("cas-mine-1"))
        assert.is_nil(raw_get("cas-mine-2"))
        assert.equal(t .. "x", raw_get("cas-other").tenant_id)
        assert.is_table(raw_get("cas-shared"))
        assert.same({}, kids(keys.list({ q = "tenant_id:" .. t })))
    end)

    it("creates one key when several processes race for a kid", function()
        local kid = "race-" .. fx.tenant()
        local out = fx.race(6, string.format([[function(a, i)
            a.keys.create({ kid = %q, cert = "c" .. i, fingerprint = "f", thumbprint = "t", type = "jwt_signing",
                tenant_id = "racer" .. i })
            return "ok"
        end]], kid))
        local ok, conflicts = 0, 0
        for _, o in ipairs(out) do
            if o == "ok" then ok = ok + 1 elseif o == "error: Conflict" then conflicts = conflicts + 1 end
        end
        assert.equal(1, ok, table.concat(out, ", "))
        assert.equal(5, conflicts, table.concat(out, ", "))
        local shared_keys = fx.adapters().keys
        local got = shared_keys.list({ q = 'kid:"' .. kid .. '"' }).signingKeys
        assert.equal(1, #got)
        local winner
        for i, o in ipairs(out) do if o == "ok" then winner = i end end
        assert.equal("c" .. winner, got[1].cert)
        assert.equal("racer" .. winner, got[1].tenant_id)
    end)
end)
