-- codes adapter (contract §4.6) against DynamoDB Local: create/get by type, used, consume exactly
-- once, TTL expiry with the injected clock, list, remove, cleanup, validation, hostile ids.
local fx = require "support.adapters"
local core = require "authhero.aws.core"
local util = require "authhero.aws.util"
local schema = require "authhero.aws.schema"

local T0 = math.floor(core.now()) * 1000
local MIN = 60 * 1000

local function iso(ms) return util.iso(ms) end
local function raw_item(t, id) return fx.raw_get(schema.keys.code(t, id)) end

local function code(id, extra)
    local c = { code_id = id, code_type = "authorization_code", login_id = "login-1",
        expires_at = iso(T0 + 10 * MIN) }
    for k, v in pairs(extra or {}) do c[k] = v end
    return c
end

local function ids(list) return fx.ids(list, "code_id") end

describe("codes adapter", function()
    local codes

    setup(function() codes = fx.adapters().codes end)
    before_each(function() fx.set_now(T0) end)
    after_each(function() fx.reset_clock() end)

    describe("create / get", function()
        it("stores every field and returns the code as get does", function()
            local t = fx.tenant()
            local c = codes.create(t, code("c1", {
                code_type = "otp", otp = "123456", user_id = "auth2|u", connection_id = "con1",
                code_verifier = "v", code_challenge = "ch", code_challenge_method = "S256",
                redirect_uri = "https://app/cb", nonce = "n", state = "st",
                expires_at = "2099-01-01T00:00:00+02:00",
            }))
            assert.equal("c1", c.code_id)
            assert.equal("otp", c.code_type)
            assert.equal("123456", c.otp)
            assert.equal("S256", c.code_challenge_method)
            assert.equal("2098-12-31T22:00:00.000Z", c.expires_at)
            assert.equal(iso(T0), c.created_at)
            assert.is_nil(c.used_at)
            for _, k in ipairs({ "PK", "SK", "entityType", "ttl", "tenant_id" }) do assert.is_nil(c[k], k) end
            assert.same(c, codes.get(t, "c1", "otp"))
            local it = raw_item(t, "c1")
            assert.equal("CODE", it.entityType)
            assert.equal(schema.keys.code(t, "c1").SK, it.SK)
            assert.equal("CODE#c1", it.SK)
            assert.equal(t, it.tenant_id)
            assert.equal(math.floor(util.parse_iso("2098-12-31T22:00:00.000Z") / 1000), it.ttl)
        end)

        it("returns nil for another code type, a missing code, another tenant", function()
            local t = fx.tenant()
            codes.create(t, code("c1", { code_type = "password_reset" }))
            assert.is_not_nil(codes.get(t, "c1", "password_reset"))
            assert.is_nil(codes.get(t, "c1", "authorization_code"))
            assert.is_nil(codes.get(t, "c1", "email_verification"))
            assert.is_nil(codes.get(t, "c2", "password_reset"))
            assert.is_nil(codes.get(fx.tenant(), "c1", "password_reset"))
        end)

        it("refuses a live code with the same id (any type) with 409", function()
            local t = fx.tenant()
            codes.create(t, code("c1"))
            fx.raises(409, "Conflict", codes.create, t, code("c1"))
            fx.raises(409, "Conflict", codes.create, t, code("c1", { code_type = "otp" }))
            assert.is_not_nil(codes.get(t, "c1", "authorization_code"))
        end)

        it("expires with the clock and may then be overwritten", function()
            local t = fx.tenant()
            codes.create(t, code("c1", { expires_at = iso(T0 + 30 * 1000) }))
            fx.advance(29)
            assert.is_not_nil(codes.get(t, "c1", "authorization_code"))
            fx.advance(1)
            assert.is_nil(codes.get(t, "c1", "authorization_code"))
            assert.equal(0, codes.list(t).length)
            local c = codes.create(t, code("c1", { code_type = "otp", expires_at = iso(T0 + 10 * MIN) }))
            assert.equal("otp", c.code_type)
            assert.is_not_nil(codes.get(t, "c1", "otp"))
        end)

        it("validates before sending anything", function()
            local t = fx.tenant()
            fx.rejects(codes.create, t, code(nil))
            fx.rejects(codes.create, t, code("c", { code_type = "bogus" }))
            fx.rejects(codes.create, t, code("c", { code_type = core.null }))
            fx.rejects(codes.create, t, code("c", { login_id = "" }))
            fx.rejects(codes.create, t, code("c", { expires_at = core.null }))
            fx.rejects(codes.create, t, code("c", { expires_at = "later" }))
            fx.rejects(codes.create, t, code("c", { used_at = "never" }))
            fx.rejects(codes.create, t, code("c", { code_challenge_method = "S512" }))
            fx.rejects(codes.create, t, 42)
            fx.rejects(codes.get, t, "c", nil)
            fx.rejects(codes.get, t, nil, "otp")
            fx.rejects(codes.get, nil, "c", "otp")
        end)

        it("works with a colon call", function()
            local t = fx.tenant()
            codes:create(t, code("c1"))
            assert.is_true(codes:consume(t, "c1"))
        end)
    end)

    describe("consume", function()
        it("is true exactly once, even when called twice", function()
            local t = fx.tenant()
            codes.create(t, code("c1"))
            fx.advance(3)
            assert.is_true(codes.consume(t, "c1"))
            assert.is_false(codes.consume(t, "c1"))
            assert.is_false(codes.consume(t, "c1"))
            assert.equal(iso(T0 + 3000), codes.get(t, "c1", "authorization_code").used_at)
        end)

        it("is false for a missing code and after expiry", function()
            local t = fx.tenant()
            assert.is_false(codes.consume(t, "nope"))
            codes.create(t, code("c1", { expires_at = iso(T0 + 1000) }))
            fx.advance(1)
            assert.is_false(codes.consume(t, "c1"))
            assert.is_nil(raw_item(t, "c1").used_at)
        end)

        it("is false for a code already marked used", function()
            local t = fx.tenant()
            codes.create(t, code("c1"))
            assert.is_true(codes.used(t, "c1"))
            assert.is_false(codes.consume(t, "c1"))
            codes.create(t, code("c2", { used_at = iso(T0 - MIN) }))
            assert.is_false(codes.consume(t, "c2"))
        end)

        it("does not reach another tenant's code", function()
            local t, other = fx.tenant(), fx.tenant()
            codes.create(t, code("c1"))
            assert.is_false(codes.consume(other, "c1"))
            assert.is_true(codes.consume(t, "c1"))
        end)
    end)

    describe("used", function()
        it("sets used_at on a live code, again if already used; false when missing or expired", function()
            local t = fx.tenant()
            codes.create(t, code("c1", { expires_at = iso(T0 + 5000) }))
            assert.is_true(codes.used(t, "c1"))
            assert.equal(iso(T0), codes.get(t, "c1", "authorization_code").used_at)
            fx.advance(2)
            assert.is_true(codes.used(t, "c1"))
            assert.equal(iso(T0 + 2000), codes.get(t, "c1", "authorization_code").used_at)
            assert.is_false(codes.used(t, "nope"))
            fx.advance(3)
            assert.is_false(codes.used(t, "c1"))
        end)
    end)

    describe("list", function()
        local t
        setup(function()
            t = fx.tenant()
            fx.set_now(T0)
            for i = 1, 11 do
                codes.create(t, code(string.format("c%02d", i), {
                    code_type = i % 2 == 0 and "otp" or "authorization_code",
                    login_id = i <= 4 and "login-a" or "login-b",
                    user_id = i == 5 and "auth2|five" or nil,
                }))
            end
            codes.create(t, code("gone", { expires_at = iso(T0 + 1000) }))
            fx.reset_clock()
        end)
        before_each(function() fx.set_now(T0 + 2000) end)

        it("pages in offset mode with a real total, skipping expired codes", function()
            local p = codes.list(t, { page = 1, per_page = 4, include_totals = true })
            assert.same({ "c05", "c06", "c07", "c08" }, ids(p.codes))
            assert.equal(4, p.start)
            assert.equal(11, p.length) -- the total, with include_totals (contract §9.3 #4)
            assert.equal(11, p.total)
            assert.equal(11, codes.list(t, { per_page = 100 }).length)
        end)

        it("walks every code exactly once in keyset mode", function()
            local walked = fx.keyset_walk(function(o) return codes.list(t, o) end, "codes", "code_id", 4)
            assert.equal(11, #walked)
        end)

        it("filters with q", function()
            local r = codes.list(t, { q = "code_type:otp login_id:login-a", include_totals = true })
            assert.same({ "c02", "c04" }, ids(r.codes))
            assert.equal(2, r.total)
            assert.same({ "c05" }, ids(codes.list(t, { q = "user_id:auth2|five" }).codes))
            assert.same({ "c07" }, ids(codes.list(t, { q = "code_id:c07" }).codes))
            assert.equal(0, codes.list(t, { q = "code_id:gone" }).length)
            assert.equal(4, codes.list(t, { q = "login-a" }).length)
            assert.equal(10, codes.list(t, { q = "-_exists_:user_id" }).length)
        end)

        it("refuses an unknown q field before sending anything", function()
            fx.rejects(codes.list, t, { q = "otp:123456" })
            fx.rejects(codes.list, t, { q = "nope:1" })
        end)
    end)

    describe("remove / cleanup", function()
        it("removes once; expired counts as absent; cleanup returns 0", function()
            local t = fx.tenant()
            codes.create(t, code("c1"))
            codes.create(t, code("c2", { expires_at = iso(T0 + 1000) }))
            assert.is_true(codes.remove(t, "c1"))
            assert.is_false(codes.remove(t, "c1"))
            assert.is_nil(codes.get(t, "c1", "authorization_code"))
            fx.advance(1)
            assert.is_false(codes.remove(t, "c2"))
            assert.equal(0, codes.cleanup(iso(T0)))
            fx.rejects(codes.remove, t, nil)
        end)
    end)

    describe("hostile ids", function()
        it("keeps tenants and code ids with # % | and unicode apart", function()
            local base = fx.tenant()
            local evil = base .. "#CODE#x"
            codes.create(base, code("x"))
            assert.is_nil(codes.get(evil, "x", "authorization_code"))
            assert.is_false(codes.consume(evil, "x"))
            local odd = { "a#CODE#b", "a%23CODE%23b", "mfa:login|1", "ćödé ✓", "%", "#" }
            for _, id in ipairs(odd) do codes.create(evil, code(id)) end
            for _, id in ipairs(odd) do
                assert.equal(id, codes.get(evil, id, "authorization_code").code_id)
                assert.is_nil(codes.get(base, id, "authorization_code"))
            end
            assert.is_true(codes.consume(evil, "a#CODE#b"))
            assert.is_true(codes.consume(evil, "a%23CODE%23b"))
            assert.same({ "x" }, ids(codes.list(base).codes))
            assert.equal(#odd, codes.list(evil).length)
            for _, it in ipairs(fx.raw_partition(schema.keys.tenant_partition(base))) do
                assert.equal(base, it.tenant_id)
            end
        end)
    end)
end)
