-- clientGrants (contract §5.4) against DynamoDB Local: create/get/list/update/remove, SQL's
-- defaults, the (client_id, audience) guard (409, moves, stale guards, races across processes), the
-- GSI1 fast path behind AuthHero's `client_id:"…"`, the cascades from clients and tenants, and
-- hostile ids.
local fx = require "support.adapters"
local aws = require "authhero.aws"
local core = require "authhero.aws.core"
local util = require "authhero.aws.util"
local schema = require "authhero.aws.schema"

local T0 = math.floor(core.now()) * 1000
local keys = schema.keys

local function guard_of(t, client_id, audience) return fx.raw_get(keys.client_grant_guard(t, client_id, audience)) end
local function raw(t, id) return fx.raw_get(keys.client_grant(t, id)) end

-- Every grant of the tenant has exactly its guard, and no guard is without its grant.
local function assert_guards_true(t)
    local grants, guards = {}, {}
    for _, it in ipairs(fx.raw_partition(keys.tenant_partition(t))) do
        if it.entityType == "CLIENT_GRANT" then grants[it.id] = it end
        if it.entityType == "CLIENT_GRANT_KEY" then guards[#guards + 1] = it end
    end
    local n = 0
    for id, g in pairs(grants) do
        n = n + 1
        local guard = guard_of(t, g.client_id, g.audience)
        assert.is_table(guard, "no guard for grant " .. id)
        assert.equal(id, guard.client_grant_id)
        assert.equal(t, guard.tenant_id)
        local idx = keys.client_grant_client_index(t, g.client_id, g.audience)
        assert.equal(idx.GSI1PK, g.GSI1PK)
        assert.equal(idx.GSI1SK, g.GSI1SK)
    end
    assert.equal(n, #guards, "guards without a grant")
end

local function wins(out, ok_value)
    local ok, conflicts = 0, 0
    for _, o in ipairs(out) do
        if o == ok_value then ok = ok + 1 elseif o == "error: Conflict" then conflicts = conflicts + 1 end
    end
    return ok, conflicts
end

describe("clientGrants", function()
    local a, grants

    setup(function()
        a = fx.adapters()
        grants = a.clientGrants
    end)
    before_each(function() fx.set_now(T0) end)
    after_each(function() fx.reset_clock() end)

    describe("create", function()
        it("stores the grant with SQL's defaults, GSI1 and the guard, and returns it as get does", function()
            local t = fx.tenant()
            local g = grants.create(t, { client_id = "app", audience = "https://api.example.com/" })
            assert.equal(21, #g.id)
            assert.same({ id = g.id, client_id = "app", audience = "https://api.example.com/", scope = {},
                authorization_details_types = {}, allow_any_organization = false, is_system = false,
                created_at = util.iso(T0), updated_at = util.iso(T0) }, g)
            assert.is_true(core.is_array(g.scope))
            assert.is_true(core.is_array(g.authorization_details_types))
            assert.same(g, grants.get(t, g.id))
            assert.same(g, grants:get(t, g.id))
            local it = raw(t, g.id)
            assert.equal("CLIENT_GRANT", it.entityType)
            assert.equal(t, it.tenant_id)
            assert.equal("[]", it.scope)
            assert.equal(core.key("TENANT", t, "CLIENT", "app"), it.GSI1PK)
            assert.equal(core.key("CLIENT_GRANT", "https://api.example.com/"), it.GSI1SK)
            local guard = guard_of(t, "app", "https://api.example.com/")
            assert.equal(core.key("CLIENT_GRANT_KEY", "app", "https://api.example.com/"), guard.SK)
            assert.equal("CLIENT_GRANT_KEY", guard.entityType)
            assert.equal(g.id, guard.client_grant_id)
            assert.equal(t, guard.tenant_id)
        end)

        it("keeps every field as given (is_system false stays false)", function()
            local t = fx.tenant()
            local g = grants.create(t, { client_id = "app", audience = "api", scope = { "read:users", "write:users" },
                organization_usage = "allow", allow_any_organization = true, is_system = false, subject_type = "client",
                authorization_details_types = { "payment_initiation" } })
            assert.same({ "read:users", "write:users" }, g.scope)
            assert.equal("allow", g.organization_usage)
            assert.is_true(g.allow_any_organization)
            assert.is_false(g.is_system)
            assert.equal("client", g.subject_type)
            assert.same({ "payment_initiation" }, g.authorization_details_types)
            assert.same(g, grants.get(t, g.id))
            assert.equal('["read:users","write:users"]', raw(t, g.id).scope)
        end)

        it("takes the caller's id, or importMetadata's id and timestamps", function()
            local t = fx.tenant()
            assert.equal("cg_mine", grants.create(t, { id = "cg_mine", client_id = "a", audience = "x" }).id)
            local imp = grants.create(t, { id = "ignored", client_id = "a", audience = "y" },
                { importMetadata = { id = "cg_imp", created_at = "2022-02-02T02:02:02+01:00" } })
            assert.equal("cg_imp", imp.id)
            assert.equal("2022-02-02T01:02:02.000Z", imp.created_at)
            assert.equal("2022-02-02T01:02:02.000Z", imp.updated_at)
            assert.is_nil(grants.get(t, "ignored"))
        end)

        it("409 for a taken id or a taken (client_id, audience); other pairs and tenants are free", function()
            local t = fx.tenant()
            local first = grants.create(t, { id = "g1", client_id = "app", audience = "api", scope = { "a" } })
            fx.raises(409, "Conflict", grants.create, t, { id = "g1", client_id = "app", audience = "other" })
            assert.is_nil(guard_of(t, "app", "other"))
            local e = fx.raises(409, "Conflict", grants.create, t, { id = "g2", client_id = "app", audience = "api" })
            assert.matches("client and audience", e.message)
            assert.is_nil(grants.get(t, "g2"))
            assert.same(first, grants.get(t, "g1"))
            assert.equal("g1", guard_of(t, "app", "api").client_grant_id)
            grants.create(t, { id = "g3", client_id = "app", audience = "api2" })
            grants.create(t, { id = "g4", client_id = "app2", audience = "api" })
            grants.create(fx.tenant(), { id = "g1", client_id = "app", audience = "api" })
            assert_guards_true(t)
        end)

        it("takes over a guard whose grant is gone", function()
            local t = fx.tenant()
            local gk = keys.client_grant_guard(t, "app", "api")
            fx.raw_put({ PK = gk.PK, SK = gk.SK, entityType = "CLIENT_GRANT_KEY", tenant_id = t,
                client_grant_id = "long-gone", client_id = "app", audience = "api" })
            local g = grants.create(t, { client_id = "app", audience = "api" })
            assert.equal(g.id, guard_of(t, "app", "api").client_grant_id)
            -- a guard whose grant now has another pair is stale too
            local other = grants.create(t, { id = "moved", client_id = "app", audience = "api-old" })
            fx.raw_put({ PK = gk.PK, SK = core.key("CLIENT_GRANT_KEY", "app", "api-x"), entityType = "CLIENT_GRANT_KEY",
                tenant_id = t, client_grant_id = other.id, client_id = "app", audience = "api-x" })
            assert.equal("fresh", grants.create(t, { id = "fresh", client_id = "app", audience = "api-x" }).id)
            assert_guards_true(t)
        end)

        it("validates before sending anything", function()
            local t = fx.tenant()
            fx.rejects(grants.create, t, nil)
            fx.rejects(grants.create, t, { audience = "api" })
            fx.rejects(grants.create, t, { client_id = "app" })
            fx.rejects(grants.create, t, { client_id = "", audience = "api" })
            fx.rejects(grants.create, t, { client_id = "app", audience = core.null })
            fx.rejects(grants.create, t, { client_id = "app", audience = "api", scope = "read" })
            fx.rejects(grants.create, t, { client_id = "app", audience = "api", scope = { 1 } })
            fx.rejects(grants.create, t, { client_id = "app", audience = "api", scope = { x = "y" } })
            fx.rejects(grants.create, t, { client_id = "app", audience = "api", authorization_details_types = "x" })
            fx.rejects(grants.create, t, { client_id = "app", audience = "api", organization_usage = "maybe" })
            fx.rejects(grants.create, t, { client_id = "app", audience = "api", subject_type = "robot" })
            fx.rejects(grants.create, t, { client_id = "app", audience = "api", allow_any_organization = "yes" })
            fx.rejects(grants.create, t, { client_id = "app", audience = "api", is_system = 0 })
            fx.rejects(grants.create, t, { client_id = "app", audience = string.rep("a", 1010) })
            fx.rejects(grants.create, nil, { client_id = "app", audience = "api" })
            fx.rejects(grants.get, t, nil)
            fx.rejects(grants.get, "", "g")
            fx.rejects(grants.update, t, "g", nil)
            fx.rejects(grants.update, t, "g", { client_id = core.null })
            fx.rejects(grants.update, t, "g", { audience = "" })
            fx.rejects(grants.update, t, "g", { scope = { false } })
            fx.rejects(grants.update, t, "g", { organization_usage = "x" })
            fx.rejects(grants.update, t, "g", { audience = string.rep("a", 1010) })
            fx.rejects(grants.remove, t, nil)
            fx.rejects(grants.list, t, { q = "scope:read" })
            fx.rejects(grants.list, t, { q = "tenant_id:x" })
            fx.rejects(grants.list, t, { q = 'client_id:"unterminated' })
            fx.rejects(grants.list, nil)
            assert.same({}, fx.raw_partition(keys.tenant_partition(t)))
        end)
    end)

    describe("get", function()
        it("returns nil for a missing grant and for another tenant's", function()
            local t = fx.tenant()
            local g = grants.create(t, { client_id = "app", audience = "api" })
            assert.is_nil(grants.get(t, "nope"))
            assert.is_nil(grants.get(fx.tenant(), g.id))
            assert.is_nil(grants.get(t, string.rep("x", 1100)))
        end)

        it("fills SQL's defaults into items written without them", function()
            local t = fx.tenant()
            local k = keys.client_grant(t, "bare")
            fx.raw_put({ PK = k.PK, SK = k.SK, entityType = "CLIENT_GRANT", tenant_id = t, id = "bare", client_id = "c",
                audience = "a", scope = { "native" }, created_at = util.iso(T0), updated_at = util.iso(T0) })
            assert.same({ id = "bare", client_id = "c", audience = "a", scope = { "native" },
                authorization_details_types = {}, allow_any_organization = false, is_system = false,
                created_at = util.iso(T0), updated_at = util.iso(T0) }, grants.get(t, "bare"))
        end)
    end)

    describe("list", function()
        local lt
        setup(function()
            lt = fx.tenant()
            fx.set_now(T0)
            local rows = {
                { "g01", "app", "https://a/" }, { "g02", "app", "https://b/" }, { "g03", "app10", "https://a/" },
                { "g04", "app#x", "https://a/" }, { "g05", "other", "https://a/", true },
                { "g06", "other", "https://c/", false, true }, { "g07", "app", "https://a/x" },
            }
            for i, r in ipairs(rows) do
                fx.set_now(T0 + i * 1000)
                grants.create(lt, { id = r[1], client_id = r[2], audience = r[3], allow_any_organization = r[4],
                    is_system = r[5], scope = { "s" .. i } })
            end
            -- another tenant's grant for the same client, and a stray GSI1 item claiming ours
            grants.create(fx.tenant(), { id = "g01", client_id = "app", audience = "https://z/" })
            local idx = keys.client_grant_client_index(lt, "app", "https://zz/")
            fx.raw_put({ PK = core.key("TENANT", "elsewhere"), SK = "CLIENT_GRANT#stray", entityType = "CLIENT_GRANT",
                tenant_id = "elsewhere", id = "stray", client_id = "app", audience = "https://zz/", GSI1PK = idx.GSI1PK,
                GSI1SK = idx.GSI1SK })
            fx.reset_clock()
        end)

        it("answers AuthHero's client_id:\"{id}\" exactly, through GSI1", function()
            assert.same({ "g01", "g07", "g02" }, fx.ids(grants.list(lt, { q = 'client_id:"app"' }).client_grants))
            assert.same({ "g03" }, fx.ids(grants.list(lt, { q = 'client_id:"app10"' }).client_grants))
            assert.same({ "g04" }, fx.ids(grants.list(lt, { q = 'client_id:"app#x"' }).client_grants))
            assert.same({}, fx.ids(grants.list(lt, { q = 'client_id:"ap"' }).client_grants))
            assert.same({}, fx.ids(grants.list(lt, { q = 'client_id:"APP"' }).client_grants))
            assert.same({ "g07" }, fx.ids(grants.list(lt, { q = 'client_id:app audience:"https://a/x"' }).client_grants))
            assert.same({ "g01" }, fx.ids(grants.list(lt, { q = 'client_id:"app" AND audience:"https://a/"' })
                .client_grants))
            assert.same({ "g07", "g02" }, fx.ids(grants.list(lt, { q = 'client_id:app -audience:"https://a/"' })
                .client_grants))
            local r = grants.list(lt, { q = 'client_id:"app"', include_totals = true, per_page = 2 })
            assert.equal(3, r.total)
            assert.equal(2, #r.client_grants)
            local g = grants.list(lt, { q = 'client_id:"app" audience:"https://b/"' }).client_grants[1]
            assert.same({ "s2" }, g.scope)
            assert.is_nil(g.tenant_id)
        end)

        it("reads one GSI1 partition for client_id (with audience: one sort key)", function()
            local ops = {}
            local client = fx.client()
            local spy = setmetatable({ call = function(_, op, req)
                ops[#ops + 1] = op .. ":" .. tostring(req.IndexName) .. ":" .. tostring(req.ExpressionAttributeValues
                    and req.ExpressionAttributeValues[":v2"])
                return client:call(op, req)
            end }, { __index = client })
            local spied = aws.create_adapters(spy, { tableName = fx.table_name(), now = fx.now_ms }).clientGrants
            assert.equal(3, #spied.list(lt, { q = 'client_id:"app"' }).client_grants)
            assert.same({ "Query:GSI1:CLIENT_GRANT#" }, ops)
            ops = {}
            assert.equal(1, #spied.list(lt, { q = 'client_id:"app" audience:"https://a/"' }).client_grants)
            assert.same({ "Query:GSI1:" .. core.key("CLIENT_GRANT", "https://a/") }, ops)
        end)

        it("pages with totals and walks by cursor", function()
            local p = grants.list(lt, { page = 1, per_page = 3, include_totals = true })
            assert.same({ "g04", "g05", "g06" }, fx.ids(p.client_grants))
            assert.equal(3, p.start)
            assert.equal(3, p.limit)
            assert.equal(7, p.total)
            assert.equal(7, p.length)
            assert.equal(3, grants.list(lt, { per_page = 3 }).length)
            local walked, pages = fx.keyset_walk(function(o) return grants.list(lt, o) end, "client_grants", "id", 3)
            assert.same({ "g01", "g02", "g03", "g04", "g05", "g06", "g07" }, walked)
            assert.equal(3, pages)
            local via_index = fx.keyset_walk(function(o)
                o.q = 'client_id:"app"'
                return grants.list(lt, o)
            end, "client_grants", "id", 2)
            assert.same({ "g01", "g07", "g02" }, via_index)
        end)

        it("filters on the other fields, defaults included, and free text", function()
            local function ids(q) return fx.ids(grants.list(lt, { q = q }).client_grants) end
            assert.same({ "g01", "g03", "g04", "g05" }, ids('audience:"https://a/"'))
            assert.same({ "g05" }, ids("allow_any_organization:true"))
            assert.same({ "g01", "g02", "g03", "g04", "g06", "g07" }, ids("allow_any_organization:false"))
            assert.same({ "g06" }, ids("is_system:true"))
            assert.same({ "g04" }, ids("app#x"))
            assert.same({ "g02" }, ids("id:g02"))
            assert.same({}, ids('id:""'))
            assert.same({ "g06" }, ids('"https://c"'))
            assert.same({ "g01", "g02", "g07" }, ids("client_id:app OR client_id:nobody"))
            local s = grants.list(lt, { sort = { sort_by = "created_at", sort_order = "desc" }, per_page = 2 })
            assert.same({ "g07", "g06" }, fx.ids(s.client_grants))
        end)
    end)

    describe("update", function()
        it("patches fields, resets nulls to defaults, keeps id and created_at", function()
            local t = fx.tenant()
            local g = grants.create(t, { client_id = "app", audience = "api", scope = { "a" }, allow_any_organization = true,
                organization_usage = "allow" })
            fx.advance(3)
            assert.is_true(grants.update(t, g.id, { scope = { "read:users" }, organization_usage = "deny",
                allow_any_organization = core.null, subject_type = "user", id = "x", created_at = "2000-01-01T00:00:00Z",
                tenant_id = "evil" }))
            local got = grants.get(t, g.id)
            assert.same({ "read:users" }, got.scope)
            assert.equal("deny", got.organization_usage)
            assert.is_false(got.allow_any_organization)
            assert.equal("user", got.subject_type)
            assert.equal(g.created_at, got.created_at)
            assert.equal(util.iso(T0 + 3000), got.updated_at)
            assert.equal(t, raw(t, g.id).tenant_id)
            assert.is_nil(grants.get(t, "x"))
            assert.is_true(grants.update(t, g.id, { scope = core.null, subject_type = core.null }))
            got = grants.get(t, g.id)
            assert.same({}, got.scope)
            assert.is_nil(got.subject_type)
            assert.equal("[]", raw(t, g.id).scope)
        end)

        it("moves GSI1 and the guard when client_id or audience changes; a taken pair is 409", function()
            local t = fx.tenant()
            grants.create(t, { id = "m1", client_id = "app", audience = "api" })
            grants.create(t, { id = "m2", client_id = "app", audience = "taken" })
            assert.is_true(grants.update(t, "m1", { audience = "api-2", scope = { "x" } }))
            assert.is_nil(guard_of(t, "app", "api"))
            assert.equal("m1", guard_of(t, "app", "api-2").client_grant_id)
            assert.same({ "m1" }, fx.ids(grants.list(t, { q = 'client_id:app audience:"api-2"' }).client_grants))
            assert.same({}, fx.ids(grants.list(t, { q = 'client_id:app audience:"api"' }).client_grants))
            assert.is_true(grants.update(t, "m1", { client_id = "app-b" }))
            assert.same({ "m2" }, fx.ids(grants.list(t, { q = 'client_id:"app"' }).client_grants))
            assert.same({ "m1" }, fx.ids(grants.list(t, { q = 'client_id:"app-b"' }).client_grants))
            assert.is_true(grants.update(t, "m1", { client_id = "app-c", audience = "api-3" }))
            assert.same({ "app-c", "api-3" }, { grants.get(t, "m1").client_id, grants.get(t, "m1").audience })
            assert_guards_true(t)
            -- the old pair is free again
            grants.create(t, { id = "m3", client_id = "app", audience = "api" })
            -- a taken pair: 409, nothing changed
            fx.raises(409, "Conflict", grants.update, t, "m1", { client_id = "app", audience = "taken", scope = { "y" } })
            local m1 = grants.get(t, "m1")
            assert.same({ "app-c", "api-3", { "x" } }, { m1.client_id, m1.audience, m1.scope })
            assert.equal("m2", guard_of(t, "app", "taken").client_grant_id)
            -- the same pair again is a plain update
            assert.is_true(grants.update(t, "m1", { client_id = "app-c", audience = "api-3", scope = { "z" } }))
            assert.same({ "z" }, grants.get(t, "m1").scope)
            assert_guards_true(t)
        end)

        it("returns false for a missing grant", function()
            local t = fx.tenant()
            assert.is_false(grants.update(t, "nope", { scope = { "a" } }))
            assert.is_false(grants.update(t, "nope", { audience = "api" }))
            assert.is_nil(guard_of(t, "app", "api"))
            assert.is_nil(raw(t, "nope"))
            assert.is_false(grants.update(t, string.rep("x", 1100), { scope = { "a" } }))
        end)
    end)

    describe("remove", function()
        it("deletes the grant and its guard once", function()
            local t = fx.tenant()
            local g = grants.create(t, { client_id = "app", audience = "api" })
            grants.create(t, { id = "keep", client_id = "app", audience = "api-2" })
            assert.is_true(grants.remove(t, g.id))
            assert.is_nil(grants.get(t, g.id))
            assert.is_nil(guard_of(t, "app", "api"))
            assert.is_false(grants.remove(t, g.id))
            assert.is_false(grants.remove(t, "never"))
            assert.is_false(grants.remove(fx.tenant(), "keep"))
            assert.is_table(grants.get(t, "keep"))
            grants.create(t, { client_id = "app", audience = "api" })
            assert_guards_true(t)
        end)

        it("goes with its client (clients.remove) and with its tenant", function()
            local t = fx.tenant()
            local doomed, kept = "doomed-" .. t, "kept-" .. t -- client ids are unique across tenants
            a.clients.create(t, { client_id = doomed, name = "Doomed" })
            a.clients.create(t, { client_id = kept, name = "Kept" })
            grants.create(t, { id = "d1", client_id = doomed, audience = "api-1" })
            grants.create(t, { id = "d2", client_id = doomed, audience = "api-2" })
            grants.create(t, { id = "k1", client_id = kept, audience = "api-1" })
            assert.is_true(a.clients.remove(t, doomed))
            assert.is_nil(grants.get(t, "d1"))
            assert.is_nil(grants.get(t, "d2"))
            assert.is_nil(guard_of(t, doomed, "api-1"))
            assert.is_nil(guard_of(t, doomed, "api-2"))
            assert.is_table(grants.get(t, "k1"))
            assert_guards_true(t)
            -- the pair can be granted again
            grants.create(t, { id = "d3", client_id = doomed, audience = "api-1" })

            local tt = fx.tenant()
            a.tenants.create({ id = tt, friendly_name = "Gone" })
            grants.create(tt, { id = "x1", client_id = "c", audience = "api" })
            assert.is_true(a.tenants.remove(tt))
            assert.same({}, fx.raw_partition(keys.tenant_partition(tt)))
        end)
    end)

    it("keeps hostile tenants, clients and audiences apart", function()
        local base = fx.tenant()
        local evil = base .. "#CLIENT#x"
        -- unescaped, (base, client "x#CLIENT#y") and (evil, client "y") would share a GSI1 partition
        grants.create(base, { id = "b1", client_id = "x#CLIENT#y", audience = "api" })
        grants.create(evil, { id = "e1", client_id = "y", audience = "api" })
        assert.same({ "b1" }, fx.ids(grants.list(base, { q = 'client_id:"x#CLIENT#y"' }).client_grants))
        assert.same({ "e1" }, fx.ids(grants.list(evil, { q = "client_id:y" }).client_grants))
        assert.same({}, fx.ids(grants.list(base, { q = "client_id:y" }).client_grants))
        -- unescaped, ("a#b", "c") and ("a", "b#c") would share one guard
        grants.create(base, { id = "p1", client_id = "a#b", audience = "c" })
        grants.create(base, { id = "p2", client_id = "a", audience = "b#c" })
        grants.create(base, { id = "p3", client_id = "a%23b", audience = "c" })
        fx.raises(409, "Conflict", grants.create, base, { client_id = "a#b", audience = "c" })
        assert.is_true(grants.remove(base, "p1"))
        assert.equal("p2", guard_of(base, "a", "b#c").client_grant_id)
        assert.equal("p3", guard_of(base, "a%23b", "c").client_grant_id)
        for _, id in ipairs({ "g#1", "g%231", "g|1" }) do grants.create(base, { id = id, client_id = id, audience = "z" }) end
        assert.equal("g%231", grants.get(base, "g%231").client_id)
        assert.is_true(grants.remove(base, "g#1"))
        assert.is_table(grants.get(base, "g%231"))
        assert_guards_true(base)
        assert_guards_true(evil)
    end)

    describe("races across processes", function()
        it("N creates of one (client_id, audience): exactly one wins, the rest are 409", function()
            local t = fx.tenant()
            local out = fx.race(6, string.format([[function(a, i)
                return a.clientGrants.create(%q, { id = "r" .. i, client_id = "app", audience = "api" }).id
            end]], t))
            local winners = {}
            for i, o in ipairs(out) do if o == "r" .. i then winners[#winners + 1] = o end end
            local _, conflicts = wins(out, "")
            assert.equal(1, #winners, table.concat(out, ", "))
            assert.equal(5, conflicts, table.concat(out, ", "))
            assert.same(winners, fx.ids(grants.list(t).client_grants))
            assert.equal(winners[1], guard_of(t, "app", "api").client_grant_id)
            assert_guards_true(t)
        end)

        it("N updates of different grants to one pair: exactly one wins", function()
            local t = fx.tenant()
            for i = 1, 6 do grants.create(t, { id = "u" .. i, client_id = "app", audience = "api-" .. i }) end
            local out = fx.race(6, string.format([[function(a, i)
                return tostring(a.clientGrants.update(%q, "u" .. i, { audience = "same" }))
            end]], t))
            local ok, conflicts = wins(out, "true")
            assert.equal(1, ok, table.concat(out, ", "))
            assert.equal(5, conflicts, table.concat(out, ", "))
            local holders = fx.ids(grants.list(t, { q = 'client_id:app audience:"same"' }).client_grants)
            assert.equal(1, #holders)
            assert.equal(holders[1], guard_of(t, "app", "same").client_grant_id)
            assert.equal(6, grants.list(t, { include_totals = true }).total)
            assert_guards_true(t)
        end)

        it("N processes moving one grant: it ends on one pair with one guard", function()
            local t = fx.tenant()
            grants.create(t, { id = "solo", client_id = "app", audience = "start" })
            local out = fx.race(5, string.format([[function(a, i)
                return tostring(a.clientGrants.update(%q, "solo", { audience = "to-" .. i }))
            end]], t))
            for _, o in ipairs(out) do assert.is_truthy(o == "true" or o == "error: Conflict", o) end
            local g = grants.get(t, "solo")
            assert.matches("^to%-%d$", g.audience)
            assert.is_nil(guard_of(t, "app", "start"))
            assert_guards_true(t)
        end)
    end)
end)
