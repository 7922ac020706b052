-- invites (contract §6) against DynamoDB Local: create (defaults, JSON fields, ttl_sec and the
-- expiry it sets, 409), get (expired invites are absent), list ({invites, ...totals}, q on
-- organization_id through GSI1, client_id, connection_id, keyset), update (ttl_sec recomputes
-- expires_at and ttl, a new organization moves GSI1), remove, validation before any request, and
-- the cascades from organizations and tenants.
local fx = require "support.adapters"
local core = require "authhero.aws.core"
local util = require "authhero.aws.util"
local schema = require "authhero.aws.schema"

local T0 = math.floor(core.now()) * 1000
local keys = schema.keys
local null = core.null
local WEEK, MAX = 604800, 2592000

local function raw(t, id) return fx.raw_get(keys.invite(t, id)) end

local function invite(org, extra)
    local r = { organization_id = org, client_id = "app", invitation_url = "https://login.example.com/invite?x=1",
        inviter = { name = "Alice" }, invitee = { email = "bob@example.com" } }
    for k, v in pairs(extra or {}) do r[k] = v end
    return r
end

local function ops(fn)
    return fx.ops(fn, function(op, p) return op .. (p.IndexName and (":" .. p.IndexName) or "") end)
end

describe("invites", function()
    local a, invites

    setup(function()
        a = fx.adapters()
        invites = a.invites
    end)
    before_each(function() fx.set_now(T0) end)
    after_each(function() fx.reset_clock() end)

    describe("create", function()
        it("stores the invite with the defaults, expiring ttl_sec (a week) after creation", function()
            local t = fx.tenant()
            local r = invites.create(t, invite("org1"))
            assert.equal(21, #r.id)
            assert.same({ id = r.id, organization_id = "org1", client_id = "app",
                invitation_url = "https://login.example.com/invite?x=1", inviter = { name = "Alice" },
                invitee = { email = "bob@example.com" }, app_metadata = {}, user_metadata = {}, roles = {},
                ttl_sec = WEEK, send_invitation_email = true, created_at = util.iso(T0),
                expires_at = util.iso(T0 + WEEK * 1000) }, r)
            assert.is_true(core.is_array(r.roles))
            assert.same(r, invites.get(t, r.id))
            assert.same(r, invites:get(t, r.id))
            local it = raw(t, r.id)
            assert.equal("INVITE", it.entityType)
            assert.equal(t, it.tenant_id)
            assert.equal('{"name":"Alice"}', it.inviter)
            assert.equal("[]", it.roles)
            assert.equal("{}", it.app_metadata)
            assert.equal(math.floor(T0 / 1000) + WEEK, it.ttl)
            assert.equal(core.key("TENANT", t, "ORG", "org1"), it.GSI1PK)
            assert.equal(core.key("INVITE", r.id), it.GSI1SK)
        end)

        it("keeps what is given: ttl_sec up to 30 days, roles, metadata, connection, no email", function()
            local t = fx.tenant()
            local r = invites.create(t, invite("org1", { id = "inv1", ttl_sec = MAX, roles = { "admin", "viewer" },
                app_metadata = { plan = "pro" }, user_metadata = { lang = "sv" }, connection_id = "con1",
                send_invitation_email = false, junk = "dropped" }))
            assert.equal("inv1", r.id)
            assert.equal(MAX, r.ttl_sec)
            assert.equal(util.iso(T0 + MAX * 1000), r.expires_at)
            assert.same({ "admin", "viewer" }, r.roles)
            assert.same({ plan = "pro" }, r.app_metadata)
            assert.equal("con1", r.connection_id)
            assert.is_false(r.send_invitation_email)
            assert.is_nil(r.junk)
            assert.same(r, invites.get(t, "inv1"))
            assert.equal(math.floor(T0 / 1000) + MAX, raw(t, "inv1").ttl)
            -- 0 means the default, as in SQL
            assert.equal(WEEK, invites.create(t, invite("org1", { ttl_sec = 0 })).ttl_sec)
        end)

        it("counts the expiry from importMetadata's creation time", function()
            local t = fx.tenant()
            local r = invites.create(t, invite("org1", { id = "ignored", ttl_sec = 3600 }),
                { importMetadata = { id = "imp", created_at = "2030-01-01T00:00:00+02:00" } })
            assert.equal("imp", r.id)
            assert.equal("2029-12-31T22:00:00.000Z", r.created_at)
            assert.equal("2029-12-31T23:00:00.000Z", r.expires_at)
            assert.is_nil(invites.get(t, "ignored"))
        end)

        it("409 on an existing id", function()
            local t = fx.tenant()
            local first = invites.create(t, invite("org1", { id = "dup" }))
            fx.raises(409, "Conflict", invites.create, t, invite("org2", { id = "dup" }))
            assert.same(first, invites.get(t, "dup"))
            assert.equal("dup", invites.create(fx.tenant(), invite("org2", { id = "dup" })).id)
        end)

        it("validates before sending anything", function()
            local t = fx.tenant()
            fx.rejects(invites.create, t, invite("org1", { ttl_sec = MAX + 1 }))
            fx.rejects(invites.create, t, invite("org1", { ttl_sec = -1 }))
            fx.rejects(invites.create, t, invite("org1", { ttl_sec = 1.5 }))
            fx.rejects(invites.create, t, invite("org1", { ttl_sec = "3600" }))
            fx.rejects(invites.create, t, invite(nil))
            fx.rejects(invites.create, t, invite(""))
            fx.rejects(invites.create, t, invite("org1", { client_id = null }))
            fx.rejects(invites.create, t, invite("org1", { invitation_url = 5 }))
            fx.rejects(invites.create, t, invite("org1", { inviter = "Alice" }))
            fx.rejects(invites.create, t, invite("org1", { invitee = { "bob" } }))
            fx.rejects(invites.create, t, invite("org1", { app_metadata = "x" }))
            fx.rejects(invites.create, t, invite("org1", { roles = "admin" }))
            fx.rejects(invites.create, t, invite("org1", { roles = { 1 } }))
            fx.rejects(invites.create, t, invite("org1", { send_invitation_email = "yes" }))
            fx.rejects(invites.create, t, invite("org1", { connection_id = 5 }))
            fx.rejects(invites.create, t, invite(string.rep("o", 2100)))
            fx.rejects(invites.create, t, nil)
            fx.rejects(invites.create, nil, invite("org1"))
            fx.rejects(invites.get, t, nil)
            fx.rejects(invites.update, t, "i", { ttl_sec = MAX + 1 })
            fx.rejects(invites.update, t, "i", { organization_id = null })
            fx.rejects(invites.update, t, "i", { client_id = "" })
            fx.rejects(invites.update, t, "i", { inviter = null })
            fx.rejects(invites.update, t, "i", { roles = { false } })
            fx.rejects(invites.update, t, "i", { organization_id = string.rep("o", 2100) })
            fx.rejects(invites.update, t, "i", nil)
            fx.rejects(invites.remove, t, nil)
            fx.rejects(invites.list, t, { q = "invitation_url:x" })
            fx.rejects(invites.list, t, { q = "roles:admin" })
            fx.rejects(invites.list, nil)
            assert.same({}, fx.raw_partition(keys.tenant_partition(t)))
        end)
    end)

    describe("get", function()
        it("returns nil when missing, another tenant's, or expired", function()
            local t = fx.tenant()
            local r = invites.create(t, invite("org1", { ttl_sec = 60 }))
            assert.is_nil(invites.get(t, "nope"))
            assert.is_nil(invites.get(fx.tenant(), r.id))
            fx.set_now(T0 + 59 * 1000)
            assert.same(r, invites.get(t, r.id))
            fx.set_now(T0 + 60 * 1000)
            assert.is_nil(invites.get(t, r.id))
            assert.is_false(invites.update(t, r.id, { roles = { "x" } }))
            assert.is_false(invites.remove(t, r.id))
        end)
    end)

    describe("list", function()
        local lt
        setup(function()
            lt = fx.tenant()
            fx.set_now(T0)
            for i = 1, 9 do
                invites.create(lt, invite(i <= 5 and "orgA" or "orgB", { id = string.format("i%02d", i),
                    client_id = i % 2 == 0 and "even" or "odd", connection_id = i == 3 and "con3" or nil }))
            end
            invites.create(lt, invite("orgA", { id = "short", ttl_sec = 10 }))
            invites.create(fx.tenant(), invite("orgA", { id = "foreign" }))
            fx.reset_clock()
        end)

        it("returns { invites, start, limit, length } and totals, expired invites left out", function()
            fx.set_now(T0 + 11 * 1000)
            local page = invites.list(lt)
            assert.same({ "i01", "i02", "i03", "i04", "i05", "i06", "i07", "i08", "i09" }, fx.ids(page.invites))
            assert.equal(0, page.start)
            assert.equal(50, page.limit)
            assert.equal(9, page.length)
            assert.is_nil(page.total)
            local p1 = invites.list(lt, { page = 1, per_page = 4, include_totals = true })
            assert.same({ "i05", "i06", "i07", "i08" }, fx.ids(p1.invites))
            assert.equal(4, p1.start)
            assert.equal(9, p1.total)
            assert.equal(9, p1.length)
            fx.set_now(T0)
            assert.equal(10, #invites.list(lt).invites)
        end)

        it("answers organization_id: from GSI1 (one Query) and filters client_id and connection_id", function()
            fx.set_now(T0 + 11 * 1000)
            local page, sent = ops(function() return invites.list(lt, { q = "organization_id:orgB" }) end)
            assert.same({ "i06", "i07", "i08", "i09" }, fx.ids(page.invites))
            assert.same({ "Query:GSI1" }, sent)
            assert.same({ "i06", "i08" }, fx.ids(invites.list(lt, { q = 'organization_id:"orgB" client_id:even' }).invites))
            assert.same({ "i01", "i03", "i05", "i07", "i09" }, fx.ids(invites.list(lt, { q = "client_id:odd" }).invites))
            assert.same({ "i03" }, fx.ids(invites.list(lt, { q = "connection_id:con3" }).invites))
            assert.same({ "i01", "i02", "i04", "i05" },
                fx.ids(invites.list(lt, { q = "organization_id:orgA -connection_id:con3" }).invites))
            assert.same({}, invites.list(lt, { q = "organization_id:orgC" }).invites)
            local counted = invites.list(lt, { q = "organization_id:orgA", include_totals = true, per_page = 2 })
            assert.equal(5, counted.total) -- i01..i05; "short" has expired
            assert.equal(2, #counted.invites)
        end)

        it("walks every live invite once by keyset, and sorts by created_at", function()
            fx.set_now(T0 + 11 * 1000)
            local ids = fx.keyset_walk(function(p) return invites.list(lt, p) end, "invites", "id", 4)
            assert.same({ "i01", "i02", "i03", "i04", "i05", "i06", "i07", "i08", "i09" }, ids)
            local sorted = invites.list(lt, { sort = { sort_by = "created_at", sort_order = "desc" } })
            assert.equal(9, #sorted.invites)
        end)
    end)

    describe("update", function()
        it("changes fields with one UpdateItem; false when there is none", function()
            local t = fx.tenant()
            local r = invites.create(t, invite("org1", { id = "u1", roles = { "a" } }))
            local ok, sent = ops(function()
                return invites.update(t, "u1", { roles = { "b", "c" }, invitee = { email = "carol@example.com" },
                    send_invitation_email = false, id = "hijack", created_at = "2000-01-01T00:00:00Z" })
            end)
            assert.is_true(ok)
            assert.same({ "UpdateItem" }, sent)
            local got = invites.get(t, "u1")
            assert.same({ "b", "c" }, got.roles)
            assert.same({ email = "carol@example.com" }, got.invitee)
            assert.is_false(got.send_invitation_email)
            assert.equal(r.created_at, got.created_at)
            assert.equal(r.expires_at, got.expires_at) -- no ttl_sec: the expiry stays
            assert.is_nil(invites.get(t, "hijack"))
            assert.is_true(invites.update(t, "u1", { connection_id = "c9" }))
            assert.is_true(invites.update(t, "u1", { connection_id = null, app_metadata = null }))
            assert.is_nil(invites.get(t, "u1").connection_id)
            assert.same({}, invites.get(t, "u1").app_metadata)
            assert.is_false(invites.update(t, "missing", { roles = {} }))
            assert.is_nil(invites.get(t, "missing"))
            assert.is_false(invites.update(fx.tenant(), "u1", { roles = {} }))
        end)

        it("a new ttl_sec sets expires_at from now, and ttl with it", function()
            local t = fx.tenant()
            invites.create(t, invite("org1", { id = "x1" }))
            fx.set_now(T0 + 3600 * 1000)
            assert.is_true(invites.update(t, "x1", { ttl_sec = 7200 }))
            local got = invites.get(t, "x1")
            assert.equal(7200, got.ttl_sec)
            assert.equal(util.iso(T0 + (3600 + 7200) * 1000), got.expires_at)
            assert.equal(math.floor(T0 / 1000) + 3600 + 7200, raw(t, "x1").ttl)
            fx.set_now(T0 + (3600 + 7200) * 1000)
            assert.is_nil(invites.get(t, "x1"))
        end)

        it("a new organization_id moves GSI1", function()
            local t = fx.tenant()
            invites.create(t, invite("from", { id = "mv" }))
            assert.is_true(invites.update(t, "mv", { organization_id = "to" }))
            assert.same({}, invites.list(t, { q = "organization_id:from" }).invites)
            assert.same({ "mv" }, fx.ids(invites.list(t, { q = "organization_id:to" }).invites))
            assert.equal(core.key("TENANT", t, "ORG", "to"), raw(t, "mv").GSI1PK)
        end)
    end)

    describe("remove", function()
        it("deletes the invite; false when there is none", function()
            local t = fx.tenant()
            invites.create(t, invite("org1", { id = "r1" }))
            assert.is_false(invites.remove(fx.tenant(), "r1"))
            assert.is_true(invites.remove(t, "r1"))
            assert.is_nil(invites.get(t, "r1"))
            assert.is_false(invites.remove(t, "r1"))
        end)
    end)

    describe("cascades", function()
        it("organizations.remove takes the organization's invites (GSI1), not other organizations'", function()
            local t = fx.tenant()
            a.organizations.create(t, { id = "doomed", name = "doomed" })
            a.organizations.create(t, { id = "kept", name = "kept" })
            invites.create(t, invite("doomed", { id = "d1" }))
            invites.create(t, invite("doomed", { id = "d2", ttl_sec = 5 }))
            invites.create(t, invite("kept", { id = "k1" }))
            fx.set_now(T0 + 10 * 1000) -- an expired invite is removed too
            assert.is_true(a.organizations.remove(t, "doomed"))
            assert.is_nil(raw(t, "d1"))
            assert.is_nil(raw(t, "d2"))
            assert.is_table(invites.get(t, "k1"))
        end)

        it("tenants.remove takes every invite", function()
            local t = fx.tenant()
            a.tenants.create({ id = t, friendly_name = "Doomed" })
            invites.create(t, invite("o1", { id = "a1" }))
            invites.create(t, invite("o2", { id = "a2" }))
            assert.is_true(a.tenants.remove(t))
            assert.same({}, fx.raw_partition(keys.tenant_partition(t)))
        end)
    end)

    it("keeps hostile ids apart (escaped keys)", function()
        local t = fx.tenant()
        invites.create(t, invite("o#INVITE#x", { id = "i%" }))
        invites.create(t, invite("o", { id = "x#INVITE#i%" }))
        assert.same({ "i%" }, fx.ids(invites.list(t, { q = 'organization_id:"o#INVITE#x"' }).invites))
        assert.same({ "x#INVITE#i%" }, fx.ids(invites.list(t, { q = "organization_id:o" }).invites))
        assert.is_true(invites.remove(t, "i%"))
        assert.equal(1, #invites.list(t).invites)
    end)
end)
