-- authenticationMethods (contract §6) against DynamoDB Local: create with the per-type required
-- fields (400 before any request), get, getByCredentialId through GSI2 (one Query, no Scan), list
-- through GSI1, update returning the record (nil when missing), remove, the credential-id guard (409,
-- moves, stale guards, a race across processes), and the cascades from users and tenants.
local fx = require "support.adapters"
local core = require "authhero.aws.core"
local util = require "authhero.aws.util"
local schema = require "authhero.aws.schema"

local T0 = math.floor(core.now()) * 1000
local keys = schema.keys
local null = core.null

local function raw(t, id) return fx.raw_get(keys.authentication_method(t, id)) end
local function guard_of(t, cid) return fx.raw_get(keys.authentication_method_credential_guard(t, cid)) end

-- every item of an index partition (consistency of what the adapters wrote)
local function raw_index(index, pk)
    local out = {}
    for page in fx.client():paginate("Query", { TableName = fx.table_name(), IndexName = index,
        KeyConditionExpression = "#p = :p", ExpressionAttributeNames = { ["#p"] = index .. "PK" },
        ExpressionAttributeValues = { [":p"] = pk } }) do
        for _, it in ipairs(page.Items) do out[#out + 1] = it end
    end
    return out
end

local function passkey(user_id, cid, extra)
    local m = { user_id = user_id, type = "passkey", credential_id = cid, public_key = "pk-" .. cid }
    for k, v in pairs(extra or {}) do m[k] = v end
    return m
end

-- operation:index of each request fn sends
local function ops(fn)
    return fx.ops(fn, function(op, p) return op .. (p.IndexName and (":" .. p.IndexName) or "") end)
end

describe("authenticationMethods", function()
    local a, methods

    setup(function()
        a = fx.adapters()
        methods = a.authenticationMethods
    end)
    before_each(function() fx.set_now(T0) end)
    after_each(function() fx.reset_clock() end)

    describe("create", function()
        it("stores a method with confirmed false, its GSI1 key, and returns it as get does", function()
            local t = fx.tenant()
            local m = methods.create(t, { user_id = "auth2|u1", type = "totp", totp_secret = "JBSWY3DPEHPK3PXP",
                friendly_name = "Phone app" })
            assert.equal(21, #m.id)
            assert.same({ id = m.id, user_id = "auth2|u1", type = "totp", totp_secret = "JBSWY3DPEHPK3PXP",
                friendly_name = "Phone app", confirmed = false, created_at = util.iso(T0), updated_at = util.iso(T0) }, m)
            assert.same(m, methods.get(t, m.id))
            assert.same(m, methods:get(t, m.id))
            local it = raw(t, m.id)
            assert.equal("AUTHENTICATION_METHOD", it.entityType)
            assert.equal(t, it.tenant_id)
            assert.equal(core.key("TENANT", t, "USER", "auth2|u1"), it.GSI1PK)
            assert.equal(core.key("AUTHENTICATION_METHOD", m.id), it.GSI1SK)
            assert.is_nil(it.GSI2PK) -- no credential id: no credential index, no guard
            assert.is_nil(it.ttl)
        end)

        it("stores a passkey with its credential index, its guard and transports as JSON", function()
            local t = fx.tenant()
            local m = methods.create(t, passkey("auth2|u1", "cred-1", { sign_count = 0, credential_backed_up = true,
                transports = { "internal", "hybrid" }, confirmed = true }))
            assert.same({ "internal", "hybrid" }, m.transports)
            assert.is_true(core.is_array(m.transports))
            assert.is_true(m.confirmed)
            assert.equal(0, m.sign_count)
            assert.is_true(m.credential_backed_up)
            assert.same(m, methods.get(t, m.id))
            local it = raw(t, m.id)
            assert.equal('["internal","hybrid"]', it.transports)
            assert.equal(core.key("TENANT", t, "CREDENTIAL", "cred-1"), it.GSI2PK)
            assert.equal("AUTHENTICATION_METHOD", it.GSI2SK)
            local g = guard_of(t, "cred-1")
            assert.equal(core.key("AUTHENTICATION_METHOD_CREDENTIAL", "cred-1"), g.SK)
            assert.equal("AUTHENTICATION_METHOD_CREDENTIAL", g.entityType)
            assert.equal(m.id, g.authentication_method_id)
            assert.equal(t, g.tenant_id)
            -- empty transports stay an array
            local e = methods.create(t, passkey("auth2|u1", "cred-2", { transports = {} }))
            assert.equal("[]", raw(t, e.id).transports)
            assert.is_true(core.is_array(methods.get(t, e.id).transports))
        end)

        it("takes importMetadata's id and timestamps, else the caller's id", function()
            local t = fx.tenant()
            assert.equal("am_mine", methods.create(t, { id = "am_mine", user_id = "u", type = "email" }).id)
            local imp = methods.create(t, { id = "ignored", user_id = "u", type = "push" },
                { importMetadata = { id = "am_imp", created_at = "2022-02-02T02:02:02+01:00" } })
            assert.equal("am_imp", imp.id)
            assert.equal("2022-02-02T01:02:02.000Z", imp.created_at)
            assert.equal("2022-02-02T01:02:02.000Z", imp.updated_at)
            assert.is_nil(methods.get(t, "ignored"))
            fx.raises(409, "Conflict", methods.create, t, { id = "am_mine", user_id = "u", type = "email" })
        end)

        it("needs each type's fields: 400 before any request, nothing written", function()
            local t = fx.tenant()
            fx.rejects(methods.create, t, { user_id = "u", type = "phone" })
            fx.rejects(methods.create, t, { user_id = "u", type = "phone", phone_number = "" })
            fx.rejects(methods.create, t, { user_id = "u", type = "totp" })
            fx.rejects(methods.create, t, { user_id = "u", type = "totp", phone_number = "+4670000" })
            for _, ty in ipairs({ "webauthn-roaming", "webauthn-platform", "passkey" }) do
                fx.rejects(methods.create, t, { user_id = "u", type = ty })
                fx.rejects(methods.create, t, { user_id = "u", type = ty, credential_id = "c" })
                fx.rejects(methods.create, t, { user_id = "u", type = ty, public_key = "k" })
                fx.rejects(methods.create, t, { user_id = "u", type = ty, credential_id = "c", public_key = null })
            end
            local e = fx.rejects(methods.create, t, { user_id = "u", type = "passkey", credential_id = "c" })
            assert.matches("public_key is required", e.message)
            fx.rejects(methods.create, t, { type = "email" })
            fx.rejects(methods.create, t, { user_id = "", type = "email" })
            fx.rejects(methods.create, t, { user_id = "u" })
            fx.rejects(methods.create, t, { user_id = "u", type = "sms" })
            fx.rejects(methods.create, t, { user_id = "u", type = "email", confirmed = "yes" })
            fx.rejects(methods.create, t, { user_id = "u", type = "email", credential_backed_up = 1 })
            fx.rejects(methods.create, t, { user_id = "u", type = "email", sign_count = -1 })
            fx.rejects(methods.create, t, { user_id = "u", type = "email", sign_count = "3" })
            fx.rejects(methods.create, t, { user_id = "u", type = "email", transports = "usb" })
            fx.rejects(methods.create, t, { user_id = "u", type = "email", transports = { 1 } })
            fx.rejects(methods.create, t, { user_id = "u", type = "email", transports = { a = "usb" } })
            fx.rejects(methods.create, t, { user_id = "u", type = "email", friendly_name = 5 })
            fx.rejects(methods.create, t, passkey("u", string.rep("c", 1000)))
            fx.rejects(methods.create, t, nil)
            fx.rejects(methods.create, nil, { user_id = "u", type = "email" })
            assert.same({}, fx.raw_partition(keys.tenant_partition(t)))
            -- what each type needs is enough
            assert.equal("phone", methods.create(t, { user_id = "u", type = "phone", phone_number = "+46700" }).type)
            assert.equal("email", methods.create(t, { user_id = "u", type = "email" }).type)
            assert.equal("push", methods.create(t, { user_id = "u", type = "push" }).type)
            for _, ty in ipairs({ "webauthn-roaming", "webauthn-platform" }) do
                assert.equal(ty, methods.create(t, { user_id = "u", type = ty, credential_id = ty, public_key = "k" }).type)
            end
        end)

        it("leaves out fields AuthHero's record does not have", function()
            local t = fx.tenant()
            local m = methods.create(t, { user_id = "u", type = "email", tenant_id = "other", PK = "x", junk = 1 })
            assert.is_nil(m.junk)
            assert.is_nil(m.tenant_id)
            assert.equal(t, raw(t, m.id).tenant_id)
            assert.is_nil(raw(t, m.id).junk)
        end)
    end)

    describe("the credential id", function()
        it("belongs to one method per tenant: 409, nothing written; other tenants are free", function()
            local t = fx.tenant()
            local first = methods.create(t, passkey("auth2|u1", "dup"))
            local e = fx.raises(409, "Conflict", methods.create, t, passkey("auth2|u2", "dup", { id = "second" }))
            assert.matches("credential id", e.message)
            assert.is_nil(methods.get(t, "second"))
            assert.equal(first.id, guard_of(t, "dup").authentication_method_id)
            assert.same(first, methods.getByCredentialId(t, "dup"))
            local t2 = fx.tenant()
            local other = methods.create(t2, passkey("auth2|u1", "dup"))
            assert.same(other, methods.getByCredentialId(t2, "dup"))
            assert.same(first, methods.getByCredentialId(t, "dup"))
            -- removed: free again
            assert.is_true(methods.remove(t, first.id))
            assert.is_nil(guard_of(t, "dup"))
            assert.equal("auth2|u2", methods.create(t, passkey("auth2|u2", "dup")).user_id)
        end)

        it("takes over a guard whose method is gone or has another credential id", function()
            local t = fx.tenant()
            local gk = keys.authentication_method_credential_guard(t, "c1")
            fx.raw_put({ PK = gk.PK, SK = gk.SK, entityType = "AUTHENTICATION_METHOD_CREDENTIAL", tenant_id = t,
                authentication_method_id = "long-gone", credential_id = "c1" })
            local m = methods.create(t, passkey("u", "c1"))
            assert.equal(m.id, guard_of(t, "c1").authentication_method_id)
            local moved = methods.create(t, passkey("u", "c2"))
            local gk3 = keys.authentication_method_credential_guard(t, "c3")
            fx.raw_put({ PK = gk3.PK, SK = gk3.SK, entityType = "AUTHENTICATION_METHOD_CREDENTIAL", tenant_id = t,
                authentication_method_id = moved.id, credential_id = "c3" })
            assert.equal("fresh", methods.create(t, passkey("u", "c3", { id = "fresh" })).id)
            -- an update to a credential id whose guard is left over takes it over too
            local gk4 = keys.authentication_method_credential_guard(t, "c4")
            fx.raw_put({ PK = gk4.PK, SK = gk4.SK, entityType = "AUTHENTICATION_METHOD_CREDENTIAL", tenant_id = t,
                authentication_method_id = "long-gone", credential_id = "c4" })
            assert.equal("c4", methods.update(t, m.id, { credential_id = "c4" }).credential_id)
            assert.equal(m.id, guard_of(t, "c4").authentication_method_id)
            assert.is_nil(guard_of(t, "c1"))
            -- a guard whose method still has the credential id is not taken over
            fx.raises(409, "Conflict", methods.update, t, m.id, { credential_id = "c2" })
            assert.equal(moved.id, guard_of(t, "c2").authentication_method_id)
        end)

        it("is taken by exactly one of several processes racing for it", function()
            local t = fx.tenant()
            local out = fx.race(4, string.format([[function(a, i)
                return a.authenticationMethods.create(%q, { user_id = "u" .. i, type = "passkey",
                    credential_id = "contested", public_key = "k" .. i }).user_id
            end]], t))
            local won, lost = 0, 0
            for i, o in ipairs(out) do
                if o == "u" .. i then won = won + 1 elseif o == "error: Conflict" then lost = lost + 1 end
            end
            assert.equal(1, won, table.concat(out, ", "))
            assert.equal(3, lost, table.concat(out, ", "))
            local m = methods.getByCredentialId(t, "contested")
            assert.equal(m.id, guard_of(t, "contested").authentication_method_id)
            local n = 0
            for _, it in ipairs(fx.raw_partition(keys.tenant_partition(t))) do
                if it.entityType == "AUTHENTICATION_METHOD" then n = n + 1 end
            end
            assert.equal(1, n)
        end)
    end)

    describe("getByCredentialId", function()
        it("answers with one Query of GSI2 (never a Scan), re-checked for tenant and credential", function()
            local t = fx.tenant()
            local m = methods.create(t, passkey("auth2|u1", "cred-A", { confirmed = true }))
            methods.create(t, passkey("auth2|u1", "cred-B"))
            local got, sent = ops(function() return methods.getByCredentialId(t, "cred-A") end)
            assert.same(m, got)
            assert.same({ "Query:GSI2" }, sent)
            assert.is_nil(methods.getByCredentialId(t, "cred-C"))
            assert.is_nil(methods.getByCredentialId(fx.tenant(), "cred-A"))
            -- an index entry whose attributes disagree with its key is not believed
            local ix = keys.authentication_method_credential_index(t, "cred-X")
            fx.raw_put({ PK = keys.tenant_partition(t), SK = "AUTHENTICATION_METHOD#forged", entityType = "AUTHENTICATION_METHOD",
                id = "forged", tenant_id = t, user_id = "evil", type = "passkey", credential_id = "cred-Y",
                public_key = "k", GSI2PK = ix.GSI2PK, GSI2SK = ix.GSI2SK })
            assert.is_nil(methods.getByCredentialId(t, "cred-X"))
            local _, none = ops(function() return methods.getByCredentialId(t, string.rep("x", 2100)) end)
            assert.same({}, none)
        end)

        it("picks the oldest when items written without the guard share a credential id", function()
            local t = fx.tenant()
            local ix = keys.authentication_method_credential_index(t, "shared")
            for i, id in ipairs({ "b-newer", "a-older", "c-newest" }) do
                local when = ({ "2024-01-02T00:00:00.000Z", "2024-01-01T00:00:00.000Z", "2024-01-03T00:00:00.000Z" })[i]
                local k = keys.authentication_method(t, id)
                fx.raw_put({ PK = k.PK, SK = k.SK, entityType = "AUTHENTICATION_METHOD", id = id, tenant_id = t,
                    user_id = "u-" .. id, type = "passkey", credential_id = "shared", public_key = "k",
                    transports = { "usb" }, created_at = when, updated_at = when, GSI2PK = ix.GSI2PK, GSI2SK = ix.GSI2SK })
            end
            local m = methods.getByCredentialId(t, "shared")
            assert.equal("a-older", m.id)
            assert.same({ "usb" }, m.transports) -- a native list (other writers) reads as it is
            assert.is_false(m.confirmed)
        end)
    end)

    describe("list", function()
        it("returns a user's methods oldest first with one Query of GSI1, nothing else of the user", function()
            local t = fx.tenant()
            local u = "auth2|lister"
            fx.set_now(T0 + 2000)
            local m2 = methods.create(t, { id = "m-a", user_id = u, type = "email" })
            fx.set_now(T0 + 1000)
            local m1 = methods.create(t, passkey(u, "lc1", { id = "m-z" }))
            fx.set_now(T0 + 3000)
            local m3 = methods.create(t, { id = "m-b", user_id = u, type = "phone", phone_number = "+1555" })
            methods.create(t, { user_id = "auth2|someone-else", type = "email" })
            methods.create(fx.tenant(), { user_id = u, type = "email" })
            -- the user's GSI1 partition also holds sessions, refresh tokens, memberships ...
            a.sessions.create(t, { id = "s1", user_id = u, login_session_id = "l1" })
            local got, sent = ops(function() return methods.list(t, u) end)
            assert.same({ m1, m2, m3 }, got)
            assert.is_true(core.is_array(got))
            assert.same({ "Query:GSI1" }, sent)
            assert.same({}, methods.list(t, "auth2|nobody"))
            assert.is_true(core.is_array(methods.list(t, "auth2|nobody")))
            fx.rejects(methods.list, t, nil)
            fx.rejects(methods.list, nil, u)
        end)
    end)

    describe("update", function()
        it("returns the updated method with one UpdateItem, nil when there is none", function()
            local t = fx.tenant()
            local m = methods.create(t, passkey("auth2|u1", "uc1", { sign_count = 1 }))
            fx.set_now(T0 + 5000)
            local got, sent = ops(function() return methods.update(t, m.id, { sign_count = 7, confirmed = true }) end)
            assert.same({ "UpdateItem" }, sent)
            assert.equal(7, got.sign_count)
            assert.is_true(got.confirmed)
            assert.equal(util.iso(T0 + 5000), got.updated_at)
            assert.equal(m.created_at, got.created_at)
            assert.same(got, methods.get(t, m.id))
            assert.is_nil(methods.update(t, "missing", { confirmed = true }))
            assert.is_nil(methods.get(t, "missing"))
            assert.is_nil(methods.update(fx.tenant(), m.id, { confirmed = true }))
            -- user_id, type, id and created_at stay; confirmed null is false; friendly_name null removes it
            local after = methods.update(t, m.id, { user_id = "evil", type = "totp", id = "x", created_at = "2000-01-01T00:00:00Z",
                friendly_name = "Key", transports = { "nfc" } })
            assert.equal("auth2|u1", after.user_id)
            assert.equal("passkey", after.type)
            assert.equal(m.id, after.id)
            assert.equal(m.created_at, after.created_at)
            assert.same({ "nfc" }, after.transports)
            assert.equal('["nfc"]', raw(t, m.id).transports)
            local cleared = methods.update(t, m.id, { friendly_name = null, confirmed = null })
            assert.is_nil(cleared.friendly_name)
            assert.is_false(cleared.confirmed)
            assert.equal(raw(t, m.id).GSI1PK, core.key("TENANT", t, "USER", "auth2|u1"))
        end)

        it("moves GSI2 and the guard with a new credential id; 409 when another method has it", function()
            local t = fx.tenant()
            local m = methods.create(t, passkey("u1", "old-cred"))
            local other = methods.create(t, passkey("u2", "taken-cred"))
            local got = methods.update(t, m.id, { credential_id = "new-cred", public_key = "pk2" })
            assert.equal("new-cred", got.credential_id)
            assert.equal("pk2", got.public_key)
            assert.is_nil(guard_of(t, "old-cred"))
            assert.equal(m.id, guard_of(t, "new-cred").authentication_method_id)
            assert.is_nil(methods.getByCredentialId(t, "old-cred"))
            assert.equal(m.id, methods.getByCredentialId(t, "new-cred").id)
            assert.same({}, raw_index("GSI2", keys.authentication_method_credential_index(t, "old-cred").GSI2PK))
            fx.raises(409, "Conflict", methods.update, t, m.id, { credential_id = "taken-cred" })
            assert.equal("new-cred", methods.get(t, m.id).credential_id)
            assert.equal(other.id, guard_of(t, "taken-cred").authentication_method_id)
            assert.equal(m.id, guard_of(t, "new-cred").authentication_method_id)
            -- the same id again: nothing moves
            assert.equal("new-cred", methods.update(t, m.id, { credential_id = "new-cred" }).credential_id)
            assert.equal(m.id, guard_of(t, "new-cred").authentication_method_id)
            assert.is_nil(methods.update(t, "missing", { credential_id = "free-cred" }))
            assert.is_nil(guard_of(t, "free-cred"))
        end)

        it("validates before sending anything", function()
            local t = fx.tenant()
            for _, f in ipairs({ "phone_number", "totp_secret", "credential_id", "public_key" }) do
                fx.rejects(methods.update, t, "m", { [f] = null })
                fx.rejects(methods.update, t, "m", { [f] = "" })
            end
            fx.rejects(methods.update, t, "m", { confirmed = "no" })
            fx.rejects(methods.update, t, "m", { sign_count = 1.5 })
            fx.rejects(methods.update, t, "m", { transports = { true } })
            fx.rejects(methods.update, t, "m", { credential_id = string.rep("c", 1000) })
            fx.rejects(methods.update, t, "m", nil)
            fx.rejects(methods.update, t, nil, {})
            fx.rejects(methods.get, t, nil)
            fx.rejects(methods.getByCredentialId, t, "")
            fx.rejects(methods.remove, t, nil)
        end)
    end)

    describe("remove", function()
        it("deletes the method and its own guard; false when there is none", function()
            local t = fx.tenant()
            local m = methods.create(t, passkey("u", "rc"))
            local plain = methods.create(t, { user_id = "u", type = "email" })
            assert.is_false(methods.remove(fx.tenant(), m.id))
            assert.is_true(methods.remove(t, m.id))
            assert.is_nil(methods.get(t, m.id))
            assert.is_nil(guard_of(t, "rc"))
            assert.is_false(methods.remove(t, m.id))
            assert.is_true(methods.remove(t, plain.id))
            -- a guard another method holds is left alone
            local holder = methods.create(t, passkey("u", "held"))
            local k = keys.authentication_method(t, "intruder")
            local ix = keys.authentication_method_credential_index(t, "held")
            fx.raw_put({ PK = k.PK, SK = k.SK, entityType = "AUTHENTICATION_METHOD", id = "intruder", tenant_id = t,
                user_id = "u", type = "passkey", credential_id = "held", public_key = "k", GSI2PK = ix.GSI2PK,
                GSI2SK = ix.GSI2SK })
            assert.is_true(methods.remove(t, "intruder"))
            assert.equal(holder.id, guard_of(t, "held").authentication_method_id)
        end)
    end)

    describe("cascades", function()
        it("users.remove takes the user's methods and their guards, not other users'", function()
            local t = fx.tenant()
            a.users.create(t, { user_id = "auth2|gone", connection = "Username-Password-Authentication",
                email = "gone@example.com" })
            local m1 = methods.create(t, passkey("auth2|gone", "g1"))
            local m2 = methods.create(t, { user_id = "auth2|gone", type = "totp", totp_secret = "S" })
            local keep = methods.create(t, passkey("auth2|stays", "s1"))
            assert.is_true(a.users.remove(t, "auth2|gone"))
            assert.is_nil(methods.get(t, m1.id))
            assert.is_nil(methods.get(t, m2.id))
            assert.is_nil(guard_of(t, "g1"))
            assert.same({}, methods.list(t, "auth2|gone"))
            assert.same(keep, methods.get(t, keep.id))
            assert.equal(keep.id, guard_of(t, "s1").authentication_method_id)
        end)

        it("tenants.remove takes every method and guard of the tenant", function()
            local t = fx.tenant()
            a.tenants.create({ id = t, friendly_name = "Doomed" })
            methods.create(t, passkey("u1", "t1"))
            methods.create(t, { user_id = "u2", type = "email" })
            local other = fx.tenant()
            local keep = methods.create(other, passkey("u1", "t1"))
            assert.is_true(a.tenants.remove(t))
            assert.same({}, fx.raw_partition(keys.tenant_partition(t)))
            assert.same({}, raw_index("GSI2", keys.authentication_method_credential_index(t, "t1").GSI2PK))
            assert.same(keep, methods.getByCredentialId(other, "t1"))
        end)
    end)

    it("keeps hostile ids apart (escaped keys)", function()
        local t = fx.tenant()
        local evil = methods.create(t, passkey("a#USER#b", "x#CREDENTIAL#y", { id = "i#d%" }))
        local plain = methods.create(t, passkey("a", "x"))
        assert.same(evil, methods.get(t, "i#d%"))
        assert.same(evil, methods.getByCredentialId(t, "x#CREDENTIAL#y"))
        assert.same(plain, methods.getByCredentialId(t, "x"))
        assert.same({ evil }, methods.list(t, "a#USER#b"))
        assert.same({ plain }, methods.list(t, "a"))
        assert.is_true(methods.remove(t, "i#d%"))
        assert.same(plain, methods.getByCredentialId(t, "x"))
    end)
end)
