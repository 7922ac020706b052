-- userOrganizations (contract §4.9) against DynamoDB Local: member item + GSI1 + id pointer written
-- together, duplicates, the three list paths, listUserOrganizations and hostile ids.
local fx = require "support.adapters"
local core = require "authhero.aws.core"
local schema = require "authhero.aws.schema"

local ISO = "^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$"

local function pairs_of(list)
    local out = {}
    for i, m in ipairs(list) do out[i] = m.user_id .. "@" .. m.organization_id end
    table.sort(out)
    return out
end

describe("userOrganizations", function()
    local a, uo, t

    setup(function()
        a = fx.adapters()
        uo = a.userOrganizations
        t = fx.tenant()
    end)

    it("creates the member item, its GSI1 keys and the id pointer in one go", function()
        local m = uo.create(t, { user_id = "auth2|u1", organization_id = "org1" })
        assert.equal(21, #m.id)
        assert.equal("auth2|u1", m.user_id)
        assert.equal("org1", m.organization_id)
        assert.matches(ISO, m.created_at)
        assert.equal(m.created_at, m.updated_at)
        for _, k in ipairs({ "PK", "SK", "GSI1PK", "entityType", "tenant_id" }) do assert.is_nil(m[k]) end

        local item = fx.raw_get(schema.keys.member(t, "org1", "auth2|u1"))
        assert.equal("USER_ORGANIZATION", item.entityType)
        local idx = schema.keys.member_user_index(t, "auth2|u1", "org1")
        assert.equal(idx.GSI1PK, item.GSI1PK)
        assert.equal(idx.GSI1SK, item.GSI1SK)
        assert.equal(m.id, item.id)
        assert.equal(t, item.tenant_id)
        local ptr = fx.raw_get(schema.keys.member_id_pointer(t, m.id))
        assert.equal("USER_ORGANIZATION_ID", ptr.entityType)
        assert.equal("auth2|u1", ptr.user_id)
        assert.equal("org1", ptr.organization_id)

        assert.same(m, uo.get(t, m.id))
        assert.same(m, uo:get(t, m.id))
        assert.is_nil(uo.get(t, "nope"))
        assert.is_nil(uo.get(fx.tenant(), m.id))
    end)

    it("409 'User is already a member of this organization' on a duplicate pair", function()
        uo.create(t, { user_id = "dupu", organization_id = "dupo" })
        local e = fx.raises(409, "Conflict", uo.create, t, { user_id = "dupu", organization_id = "dupo" })
        assert.equal("User is already a member of this organization", e.message)
        local p = uo.list(t, { q = "user_id:dupu" })
        assert.equal(1, p.length)
        -- the same user in another organization is fine
        assert.equal("dupo2", uo.create(t, { user_id = "dupu", organization_id = "dupo2" }).organization_id)
    end)

    it("honours importMetadata and 409 on an imported id that exists", function()
        local m = uo.create(t, { user_id = "iu", organization_id = "io" }, { importMetadata = {
            id = "mem_imp", created_at = "2023-05-06T07:08:09Z" } })
        assert.equal("mem_imp", m.id)
        assert.equal("2023-05-06T07:08:09.000Z", m.created_at)
        fx.raises(409, "Conflict", uo.create, t, { user_id = "iu2", organization_id = "io" },
            { importMetadata = { id = "mem_imp" } })
        assert.is_nil(fx.raw_get(schema.keys.member(t, "io", "iu2")))
    end)

    it("400 before any request on invalid input", function()
        fx.rejects(uo.create, t, nil)
        fx.rejects(uo.create, t, { user_id = "u" })
        fx.rejects(uo.create, t, { organization_id = "o" })
        fx.rejects(uo.create, t, { user_id = "", organization_id = "o" })
        fx.rejects(uo.create, nil, { user_id = "u", organization_id = "o" })
        fx.rejects(uo.get, t, nil)
        fx.rejects(uo.remove, t, "")
        fx.rejects(uo.update, t, "x", nil)
        fx.rejects(uo.update, t, "x", { user_id = 5 })
        fx.rejects(uo.update, t, "x", { organization_id = core.null })
        fx.rejects(uo.list, t, { q = "email:x" })
        fx.rejects(uo.list, t, { q = "id:x" })
        fx.rejects(uo.list, t, { q = "freetext" })
        fx.rejects(uo.list, t, 5)
        fx.rejects(uo.listUserOrganizations, t, nil)
        fx.rejects(uo.listUserOrganizations, t, "u", { q = "name:x" })
        fx.rejects(uo.listUserOrganizations, t, "u", { per_page = "x" })
        fx.rejects(uo.listUserOrganizations, t, "u", { page = -1 })
    end)

    it("update touches only updated_at; moving the membership is a 400", function()
        local m = uo.create(t, { user_id = "upu", organization_id = "upo" })
        fx.advance(2)
        assert.is_true(uo.update(t, m.id, { user_id = "upu", organization_id = "upo", created_at = "2000-01-01T00:00:00Z" }))
        fx.reset_clock()
        local got = uo.get(t, m.id)
        assert.equal(m.created_at, got.created_at)
        assert.is_true(got.updated_at > m.updated_at)
        local item = fx.raw_get(schema.keys.member(t, "upo", "upu"))
        assert.equal(got.updated_at, item.updated_at)

        fx.raises(400, "ValidationError", uo.update, t, m.id, { user_id = "other" })
        fx.raises(400, "ValidationError", uo.update, t, m.id, { organization_id = "other" })
        assert.same(got, uo.get(t, m.id))
        assert.is_false(uo.update(t, "missing", {}))
    end)

    it("remove deletes the member item and the pointer; false when absent", function()
        local m = uo.create(t, { user_id = "rmu", organization_id = "rmo" })
        assert.is_true(uo.remove(t, m.id))
        assert.is_nil(uo.get(t, m.id))
        assert.is_nil(fx.raw_get(schema.keys.member(t, "rmo", "rmu")))
        assert.is_nil(fx.raw_get(schema.keys.member_id_pointer(t, m.id)))
        assert.is_false(uo.remove(t, m.id))
        assert.is_false(uo.remove(t, "never"))
        -- the pair can be created again
        local again = uo.create(t, { user_id = "rmu", organization_id = "rmo" })
        assert.is_not.equal(m.id, again.id)
    end)

    describe("list", function()
        local lt
        setup(function()
            lt = fx.tenant()
            for _, p in ipairs({ { "u1", "oA" }, { "u1", "oB" }, { "u2", "oA" }, { "u3", "oA" }, { "u2", "oC" } }) do
                uo.create(lt, { user_id = p[1], organization_id = p[2] })
            end
            uo.create(fx.tenant(), { user_id = "u1", organization_id = "oA" }) -- another tenant
        end)

        it("by user_id (GSI1), organization_id (partition), both, or all", function()
            assert.same({ "u1@oA", "u1@oB" }, pairs_of(uo.list(lt, { q = "user_id:u1" }).userOrganizations))
            assert.same({ "u1@oA", "u2@oA", "u3@oA" },
                pairs_of(uo.list(lt, { q = "organization_id:oA" }).userOrganizations))
            assert.same({ "u2@oA" }, pairs_of(uo.list(lt, { q = "user_id:u2 organization_id:oA" }).userOrganizations))
            assert.same({}, pairs_of(uo.list(lt, { q = "user_id:u3 organization_id:oB" }).userOrganizations))
            assert.same({ "u1@oA", "u1@oB", "u2@oA", "u2@oC", "u3@oA" }, pairs_of(uo.list(lt).userOrganizations))
            assert.same({ "u1@oB", "u2@oC" },
                pairs_of(uo.list(lt, { q = "-organization_id:oA" }).userOrganizations))
            assert.same({ "u1@oB", "u3@oA" },
                pairs_of(uo.list(lt, { q = "user_id:u3 OR organization_id:oB" }).userOrganizations))
            assert.same({}, uo.list(lt, { q = "user_id:nobody" }).userOrganizations)
            -- a big per_page as AuthHero sends for authorization checks
            local p = uo.list(lt, { q = "user_id:u2", per_page = 1000, include_totals = true })
            assert.equal(2, p.total)
            assert.equal(2, p.length)
        end)

        it("pages with offsets, totals and keyset cursors", function()
            local p0 = uo.list(lt, { page = 0, per_page = 2, include_totals = true })
            assert.equal(5, p0.length) -- the total, with include_totals (contract §9.3 #4)
            assert.equal(2, #p0.userOrganizations)
            assert.equal(5, p0.total)
            local p2 = uo.list(lt, { page = 2, per_page = 2 })
            assert.equal(1, p2.length)
            assert.equal(4, p2.start)
            assert.equal(5, #fx.keyset_walk(function(o) return uo.list(lt, o) end, "userOrganizations", "id", 2))
            local o = uo.list(lt, { q = "organization_id:oA", take = 2 })
            assert.equal(2, o.length)
            local o2 = uo.list(lt, { q = "organization_id:oA", take = 2, from = o.next })
            assert.equal(1, o2.length)
            assert.is_nil(o2.next)
        end)
    end)

    it("listUserOrganizations returns the organizations, skipping deleted ones", function()
        local lt = fx.tenant()
        local orgs = a.organizations
        local names = { "one", "two", "three", "four" }
        for i, n in ipairs(names) do
            orgs.create(lt, { id = "org" .. i, name = n })
            uo.create(lt, { user_id = "auth2|me", organization_id = "org" .. i })
        end
        orgs.create(lt, { id = "org9", name = "not-mine" })
        uo.create(lt, { user_id = "auth2|other", organization_id = "org9" })
        -- delete one organization item behind the adapter's back: the membership stays
        fx.raw_delete(schema.keys.organization(lt, "org2"))
        uo.create(lt, { user_id = "auth2|me", organization_id = "never-existed" })

        local all = uo.listUserOrganizations(lt, "auth2|me")
        assert.same({ "org1", "org3", "org4" }, fx.ids(all.organizations))
        assert.equal("one", all.organizations[1].name)
        assert.same({}, all.organizations[1].metadata)
        assert.is_nil(all.organizations[1].tenant_id)

        local p0 = uo.listUserOrganizations(lt, "auth2|me", { page = 0, per_page = 2, include_totals = true })
        assert.same({ "org1", "org3" }, fx.ids(p0.organizations))
        assert.equal(3, p0.total)
        assert.equal(3, p0.length) -- the total, with include_totals (contract §9.3 #4)
        local p1 = uo.listUserOrganizations(lt, "auth2|me", { page = 1, per_page = 2 })
        assert.same({ "org4" }, fx.ids(p1.organizations))
        assert.equal(2, p1.start)

        local k1 = uo.listUserOrganizations(lt, "auth2|me", { take = 2 })
        assert.same({ "org1", "org3" }, fx.ids(k1.organizations))
        assert.is_string(k1.next)
        local k2 = uo.listUserOrganizations(lt, "auth2|me", { take = 2, from = k1.next })
        assert.same({ "org4" }, fx.ids(k2.organizations))
        assert.is_nil(k2.next)
        -- a cursor of another user restarts
        local k3 = uo.listUserOrganizations(lt, "auth2|other", { take = 2, from = k1.next })
        assert.same({ "org9" }, fx.ids(k3.organizations))

        assert.same({}, uo.listUserOrganizations(lt, "auth2|nobody").organizations)
        -- organizations.remove takes the memberships with it
        orgs.remove(lt, "org3")
        assert.same({ "org1", "org4" }, fx.ids(uo.listUserOrganizations(lt, "auth2|me").organizations))
    end)

    it("keeps hostile ids and tenants apart", function()
        local base = fx.tenant()
        local evil = base .. "#ORG#o"
        local m = uo.create(base, { user_id = "u", organization_id = "o" })
        -- unescaped, the evil tenant's partition TENANT#{base}#ORG#o would be base's organization "o"
        local e = uo.create(evil, { user_id = "u", organization_id = "o" })
        assert.equal(1, uo.list(base, { q = "organization_id:o" }).length)
        assert.equal(1, uo.list(evil, { q = "organization_id:o" }).length)
        assert.same({ m.id }, fx.ids(uo.list(base).userOrganizations))
        assert.same({ e.id }, fx.ids(uo.list(evil).userOrganizations))
        assert.is_nil(uo.get(base, e.id))
        assert.is_true(uo.remove(evil, e.id))
        assert.same(m, uo.get(base, m.id))

        local evil_user = base .. "#USER#u"
        uo.create(evil_user, { user_id = "z", organization_id = "w" })
        assert.same({ m.id }, fx.ids(uo.list(base, { q = "user_id:u" }).userOrganizations))

        local h = fx.tenant()
        local weird = { { "a#b", "o|1" }, { "a", "b#o|1" }, { "a%23b", "o|1" }, { "ü#%", "ö%23" } }
        for _, w in ipairs(weird) do uo.create(h, { user_id = w[1], organization_id = w[2] }) end
        assert.same({ "a#b@o|1", "a%23b@o|1" }, pairs_of(uo.list(h, { q = 'organization_id:"o|1"' }).userOrganizations))
        assert.same({ "a#b@o|1" }, pairs_of(uo.list(h, { q = 'user_id:"a#b"' }).userOrganizations))
        assert.same({ "ü#%@ö%23" }, pairs_of(uo.list(h, { q = "user_id:ü#%" }).userOrganizations))
        assert.equal(4, uo.list(h, { include_totals = true }).total)
    end)
end)
