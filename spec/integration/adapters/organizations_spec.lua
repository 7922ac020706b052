-- organizations (contract §4.8) against DynamoDB Local: the name guard, get by id or name, rename,
-- the cascading remove, listing and hostile ids.
local fx = require "support.adapters"
local core = require "authhero.aws.core"
local schema = require "authhero.aws.schema"

local ISO = "^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$"

describe("organizations", function()
    local a, orgs, t

    setup(function()
        a = fx.adapters()
        orgs = a.organizations
        t = fx.tenant()
    end)

    it("creates with defaults and reads back by id and by exact name", function()
        local o = orgs.create(t, { name = "acme", display_name = "Acme Inc." })
        assert.is_string(o.id)
        assert.equal(21, #o.id)
        assert.equal("acme", o.name)
        assert.equal("Acme Inc.", o.display_name)
        assert.same({}, o.metadata)
        assert.is_true(core.is_array(o.enabled_connections))
        assert.equal(0, #o.enabled_connections)
        assert.matches(ISO, o.created_at)
        assert.equal(o.created_at, o.updated_at)
        for _, k in ipairs({ "PK", "SK", "entityType", "tenant_id", "GSI1PK" }) do assert.is_nil(o[k]) end

        assert.same(o, orgs.get(t, o.id))
        assert.same(o, orgs.get(t, "acme"))
        assert.is_nil(orgs.get(t, "Acme")) -- exact name only
        assert.is_nil(orgs.get(t, "nope"))
        assert.same(o, orgs:get(t, o.id)) -- colon call

        local guard = fx.raw_get(schema.keys.organization_name_guard(t, "acme"))
        assert.equal(o.id, guard.organization_id)
        local item = fx.raw_get(schema.keys.organization(t, o.id))
        assert.equal(t, item.tenant_id)
        assert.equal("ORGANIZATION", item.entityType)
    end)

    it("stores structured fields as JSON strings and reads them back", function()
        local o = orgs.create(t, {
            id = "org_json", name = "json-org",
            branding = { logo_url = "https://x/logo.png", colors = { primary = "#000", page_background = "#fff" } },
            metadata = { plan = "gold" }, enabled_connections = { { connection_id = "c1" } },
            token_quota = { client_credentials = { per_day = 10 } },
        })
        assert.equal("org_json", o.id)
        local item = fx.raw_get(schema.keys.organization(t, "org_json"))
        assert.is_string(item.branding)
        assert.is_string(item.metadata)
        assert.is_string(item.enabled_connections)
        assert.is_string(item.token_quota)
        local got = orgs.get(t, "org_json")
        assert.equal("#000", got.branding.colors.primary)
        assert.equal("gold", got.metadata.plan)
        assert.equal("c1", got.enabled_connections[1].connection_id)
        assert.equal(10, got.token_quota.client_credentials.per_day)
    end)

    it("honours importMetadata (id and timestamps)", function()
        local o = orgs.create(t, { id = "ignored", name = "imported" }, { importMetadata = {
            id = "org_imp", created_at = "2024-01-02T03:04:05Z", updated_at = "2024-02-03T04:05:06.007+00:00" } })
        assert.equal("org_imp", o.id)
        assert.equal("2024-01-02T03:04:05.000Z", o.created_at)
        assert.equal("2024-02-03T04:05:06.007Z", o.updated_at)
        assert.is_nil(orgs.get(t, "ignored"))
    end)

    it("409 when the id or the name is taken, writing nothing", function()
        local o = orgs.create(t, { id = "dup1", name = "dup-name" })
        local e = fx.raises(409, "Conflict", orgs.create, t, { id = "dup1", name = "other-name" })
        assert.matches("already exists", e.message)
        assert.is_nil(orgs.get(t, "other-name")) -- the transaction wrote no guard
        fx.raises(409, "Conflict", orgs.create, t, { id = "dup2", name = "dup-name" })
        assert.is_nil(orgs.get(t, "dup2"))
        assert.same(o, orgs.get(t, "dup-name"))
    end)

    it("400 before any request on invalid input", function()
        fx.rejects(orgs.create, t, nil)
        fx.rejects(orgs.create, t, {})
        fx.rejects(orgs.create, t, { name = "" })
        fx.rejects(orgs.create, t, { name = 5 })
        fx.rejects(orgs.create, t, { name = "x", display_name = 5 })
        fx.rejects(orgs.create, t, { name = "x", metadata = "nope" })
        fx.rejects(orgs.create, nil, { name = "x" })
        fx.rejects(orgs.get, t, nil)
        fx.rejects(orgs.get, t, "")
        fx.rejects(orgs.update, t, "x", nil)
        fx.rejects(orgs.update, t, "x", { name = "" })
        fx.rejects(orgs.update, t, "x", { name = core.null })
        fx.rejects(orgs.update, t, nil, { display_name = "x" })
        fx.rejects(orgs.remove, t, nil)
        fx.rejects(orgs.list, t, { q = "bogus:1" })
        fx.rejects(orgs.list, t, { page = -1 })
        fx.rejects(orgs.list, t, { per_page = 1.5 })
    end)

    it("updates fields without touching created_at; false when absent", function()
        local o = orgs.create(t, { id = "upd", name = "upd-name", display_name = "Before" })
        fx.advance(2)
        assert.is_true(orgs.update(t, "upd", { display_name = "After", metadata = { a = 1 },
            created_at = "2000-01-01T00:00:00.000Z", id = "hijack" }))
        fx.reset_clock()
        local got = orgs.get(t, "upd")
        assert.equal("After", got.display_name)
        assert.equal(1, got.metadata.a)
        assert.equal(o.created_at, got.created_at)
        assert.is_true(got.updated_at > o.updated_at)
        assert.is_nil(orgs.get(t, "hijack"))

        assert.is_true(orgs.update(t, "upd", { display_name = core.null }))
        assert.is_nil(orgs.get(t, "upd").display_name)

        assert.is_false(orgs.update(t, "missing", { display_name = "x" }))
        assert.is_false(orgs.update(t, "missing", { name = "missing-name" }))
        assert.is_nil(fx.raw_get(schema.keys.organization_name_guard(t, "missing-name")))
    end)

    it("a rename moves the guard: the old name is free, a taken name is 409", function()
        orgs.create(t, { id = "ren1", name = "old-name" })
        orgs.create(t, { id = "ren2", name = "taken-name" })
        assert.is_true(orgs.update(t, "ren1", { name = "new-name" }))
        assert.equal("ren1", orgs.get(t, "new-name").id)
        assert.is_nil(orgs.get(t, "old-name"))
        assert.is_nil(fx.raw_get(schema.keys.organization_name_guard(t, "old-name")))
        -- the old name can be used again
        assert.equal("ren3", orgs.create(t, { id = "ren3", name = "old-name" }).id)

        fx.raises(409, "Conflict", orgs.update, t, "ren1", { name = "taken-name", display_name = "X" })
        local r1 = orgs.get(t, "ren1")
        assert.equal("new-name", r1.name)
        assert.is_nil(r1.display_name) -- nothing of the failed update was written
        assert.equal("ren2", orgs.get(t, "taken-name").id)

        -- renaming to the same name is a plain update
        assert.is_true(orgs.update(t, "ren1", { name = "new-name", display_name = "Same" }))
        assert.equal("Same", orgs.get(t, "new-name").display_name)
    end)

    it("remove deletes the guard, the members with their pointers, connections and invites", function()
        local tt = fx.tenant()
        local o = orgs.create(tt, { id = "gone", name = "gone-name" })
        local keep = orgs.create(tt, { id = "kept", name = "kept-name" })
        local m1 = a.userOrganizations.create(tt, { user_id = "u1", organization_id = o.id })
        local m2 = a.userOrganizations.create(tt, { user_id = "u2", organization_id = o.id })
        local m3 = a.userOrganizations.create(tt, { user_id = "u1", organization_id = keep.id })
        local part = schema.keys.organization_partition(tt, o.id)
        fx.raw_put({ PK = part, SK = "ORG_CONNECTION#c1", entityType = "ORGANIZATION_CONNECTION", tenant_id = tt })
        fx.raw_put({ PK = schema.keys.tenant_partition(tt), SK = "INVITE#inv1", entityType = "INVITE", tenant_id = tt,
            organization_id = o.id, GSI1PK = part, GSI1SK = "INVITE#inv1" })

        assert.is_true(orgs.remove(tt, o.id))
        assert.is_nil(orgs.get(tt, o.id))
        assert.is_nil(orgs.get(tt, "gone-name"))
        assert.is_nil(fx.raw_get(schema.keys.organization_name_guard(tt, "gone-name")))
        assert.same({}, fx.raw_partition(part))
        assert.is_nil(a.userOrganizations.get(tt, m1.id))
        assert.is_nil(a.userOrganizations.get(tt, m2.id))
        assert.is_nil(fx.raw_get({ PK = schema.keys.tenant_partition(tt), SK = "INVITE#inv1" }))
        -- the other organization and its member are untouched
        assert.same(keep, orgs.get(tt, "kept"))
        assert.same(m3, a.userOrganizations.get(tt, m3.id))

        assert.is_false(orgs.remove(tt, o.id))
        assert.is_false(orgs.remove(tt, "never"))
        -- the name can be reused
        assert.equal("gone2", orgs.create(tt, { id = "gone2", name = "gone-name" }).id)
    end)

    describe("list", function()
        local lt
        local all = {}

        setup(function()
            lt = fx.tenant()
            local names = { "delta", "alpha", "echo", "charlie", "bravo", "golf", "foxtrot" }
            for i, n in ipairs(names) do
                all[i] = orgs.create(lt, { id = string.format("o%02d", i), name = n,
                    display_name = (i % 2 == 0) and "Even " .. n or nil })
            end
            -- another tenant's organization never shows up
            orgs.create(fx.tenant(), { id = "o01", name = "alpha" })
        end)

        it("offset pages in id order with a real total", function()
            local p0 = orgs.list(lt, { page = 0, per_page = 3, include_totals = true })
            assert.same({ "o01", "o02", "o03" }, fx.ids(p0.organizations))
            assert.equal(0, p0.start)
            assert.equal(3, p0.limit)
            assert.equal(7, p0.length) -- the total, with include_totals (contract §9.3 #4)
            assert.equal(7, p0.total)
            local p2 = orgs.list(lt, { page = 2, per_page = 3 })
            assert.same({ "o07" }, fx.ids(p2.organizations))
            assert.equal(6, p2.start)
            assert.is_nil(p2.total)
            assert.equal(7, #orgs.list(lt).organizations)
            assert.equal(0, orgs.list(lt, { page = 5, per_page = 3 }).length)
        end)

        it("walks every record exactly once with keyset cursors", function()
            local walked, pages = fx.keyset_walk(function(o) return orgs.list(lt, o) end, "organizations", "id", 3)
            assert.equal(3, pages)
            local seen = {}
            for _, id in ipairs(walked) do seen[id] = true end
            for _, o in ipairs(all) do assert.is_true(seen[o.id]) end
            -- a garbage cursor restarts from the beginning
            assert.same({ "o01", "o02" }, fx.ids(orgs.list(lt, { take = 2, from = "garbage!" }).organizations))
        end)

        it("filters with q, uses the id and name fast paths, sorts", function()
            assert.same({ "o03" }, fx.ids(orgs.list(lt, { q = "name:echo" }).organizations))
            assert.same({ "o03" }, fx.ids(orgs.list(lt, { q = "id:o03" }).organizations))
            assert.same({}, fx.ids(orgs.list(lt, { q = "id:o03 name:alpha" }).organizations))
            assert.same({ "o02", "o04", "o06" }, fx.ids(orgs.list(lt, { q = "_exists_:display_name" }).organizations))
            assert.same({ "o02", "o04", "o06" }, fx.ids(orgs.list(lt, { q = "even" }).organizations)) -- free text
            assert.same({ "o01", "o05" }, fx.ids(orgs.list(lt, { q = "name:bravo OR name:delta" }).organizations))
            local p = orgs.list(lt, { q = "-name:alpha", include_totals = true })
            assert.equal(6, p.total)
            local sorted = orgs.list(lt, { sort = { sort_by = "name", sort_order = "asc" }, per_page = 3 })
            assert.same({ "alpha", "bravo", "charlie" }, {
                sorted.organizations[1].name, sorted.organizations[2].name, sorted.organizations[3].name })
            local desc = orgs.list(lt, { sort = { sort_by = "name", sort_order = "desc" }, per_page = 1 })
            assert.equal("golf", desc.organizations[1].name)
            fx.raises(400, "ValidationError", orgs.list, lt, { q = "tenant_id:x" })
        end)
    end)

    it("keeps hostile ids and tenants apart", function()
        local base = fx.tenant()
        local evil = base .. "#ORG#victim"
        local victim = orgs.create(base, { id = "victim", name = "victim" })
        local m = a.userOrganizations.create(base, { user_id = "u", organization_id = "victim" })
        local o2 = orgs.create(evil, { id = "x", name = "victim" }) -- same name, other tenant: fine
        assert.same({ "victim" }, fx.ids(orgs.list(base).organizations))
        assert.same({ "x" }, fx.ids(orgs.list(evil).organizations))
        assert.equal(1, #fx.raw_partition(schema.keys.organization_partition(base, "victim")))
        assert.is_true(orgs.remove(evil, "x"))
        assert.same(victim, orgs.get(base, "victim"))
        assert.same(m, a.userOrganizations.get(base, m.id))
        assert.is_nil(orgs.get(evil, o2.id))
        -- unescaped, removing base's "victim" would wipe the evil tenant's partition (its cascade)
        orgs.create(evil, { id = "z", name = "z" })
        assert.is_true(orgs.remove(base, "victim"))
        assert.equal("z", orgs.get(evil, "z").id)
        assert.equal("z", orgs.get(evil, "z").name)

        local h = fx.tenant()
        local weird = { "a#b", "a%23b", "a|b", "ünï#%|", "ORG#x" }
        for i, id in ipairs(weird) do orgs.create(h, { id = id, name = id .. "-n" .. i }) end
        for i, id in ipairs(weird) do
            assert.equal(id, orgs.get(h, id).id)
            assert.equal(id, orgs.get(h, id .. "-n" .. i).id)
        end
        assert.equal(#weird, orgs.list(h, { include_totals = true }).total)
        assert.is_true(orgs.remove(h, "a#b"))
        assert.equal("a%23b", orgs.get(h, "a%23b").id)
        assert.is_nil(orgs.get(h, "a#b"))
    end)
end)
