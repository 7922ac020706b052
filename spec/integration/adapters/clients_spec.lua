-- clients adapter (contract §4.4) against DynamoDB Local: defaults, the client-id pointer written
-- and deleted with the client (ids unique across tenants), getByClientId, list with totals,
-- update, remove, validation before any request, hostile ids.
local fx = require "support.adapters"
local core = require "authhero.aws.core"
local util = require "authhero.aws.util"
local schema = require "authhero.aws.schema"

local T0 = math.floor(core.now()) * 1000

local function iso(ms) return util.iso(ms) end
local function ids(list) return fx.ids(list, "client_id") end

describe("clients adapter", function()
    local clients

    setup(function() clients = fx.adapters().clients end)
    before_each(function() fx.set_now(T0) end)
    after_each(function() fx.reset_clock() end)

    describe("create", function()
        it("applies AuthHero's defaults and generates a client id and a secret", function()
            local t = fx.tenant()
            local c = clients.create(t, { name = "App" })
            assert.equal("string", type(c.client_id))
            assert.equal(21, #c.client_id)
            assert.equal("string", type(c.client_secret))
            assert.is_true(#c.client_secret >= 21)
            assert.equal("App", c.name)
            assert.is_false(c.global)
            assert.equal("regular_web", c.app_type)
            assert.is_true(c.is_first_party)
            assert.is_true(c.oidc_conformant)
            assert.is_true(c.auth0_conformant)
            for _, f in ipairs({ "sso", "sso_disabled", "cross_origin_authentication", "custom_login_page_on",
                "require_pushed_authorization_requests", "require_proof_of_possession",
                "hide_sign_up_disabled_error" }) do
                assert.is_false(c[f], f)
            end
            assert.equal("client_secret_basic", c.token_endpoint_auth_method)
            assert.equal("deny", c.organization_usage)
            assert.equal("no_prompt", c.organization_require_behavior)
            for _, f in ipairs({ "callbacks", "allowed_origins", "web_origins", "client_aliases", "allowed_clients",
                "connections", "allowed_logout_urls", "grant_types" }) do
                assert.same({}, c[f], f)
                assert.is_true(core.is_array(c[f]), f)
            end
            assert.same({}, c.addons)
            assert.same({}, c.client_metadata)
            assert.equal(iso(T0), c.created_at)
            assert.equal(iso(T0), c.updated_at)
            for _, k in ipairs({ "PK", "SK", "entityType", "tenant_id" }) do assert.is_nil(c[k], k) end
            assert.same(c, clients.get(t, c.client_id))
            local other = clients.create(t, { name = "App 2" })
            assert.are_not.equal(c.client_secret, other.client_secret)
        end)

        it("keeps the caller's client_id and fields, stores JSON attributes as strings", function()
            local t = fx.tenant()
            local c = clients.create(t, {
                client_id = "my-client", name = "Mine", client_secret = "s3cret", is_first_party = false,
                app_type = "spa", callbacks = { "https://a/cb" }, jwt_configuration = { alg = "RS256" },
                client_metadata = { k = "v" }, owner_user_id = "auth2|o", registration_type = "dynamic",
                registration_metadata = { x = 1 }, user_linking_mode = "builtin",
            })
            assert.equal("my-client", c.client_id)
            assert.equal("s3cret", c.client_secret)
            assert.is_false(c.is_first_party)
            assert.same({ "https://a/cb" }, c.callbacks)
            assert.same({ alg = "RS256" }, c.jwt_configuration)
            assert.equal("builtin", c.user_linking_mode)
            assert.same({ x = 1 }, c.registration_metadata)
            local it = fx.raw_get(schema.keys.client(t, "my-client"))
            assert.equal("CLIENT", it.entityType)
            assert.equal('["https://a/cb"]', it.callbacks)
            assert.equal("[]", it.web_origins)
            assert.equal("string", type(it.jwt_configuration))
            assert.equal(t, it.tenant_id)
            local p = fx.raw_get(schema.keys.client_id_pointer("my-client"))
            assert.equal("CLIENT_ID_POINTER", p.entityType)
            assert.equal(t, p.tenant_id)
            assert.equal("my-client", p.client_id)
        end)

        it("honours importMetadata", function()
            local t = fx.tenant()
            local c = clients.create(t, { client_id = "ignored", name = "Imp" }, { importMetadata = {
                id = "imported", created_at = "2020-01-01T00:00:00Z", updated_at = "2021-01-01T00:00:00.5Z" } })
            assert.equal("imported", c.client_id)
            assert.equal("2020-01-01T00:00:00.000Z", c.created_at)
            assert.equal("2021-01-01T00:00:00.500Z", c.updated_at)
            assert.is_nil(clients.get(t, "ignored"))
        end)

        it("refuses a client id taken in the same or another tenant with 409", function()
            local a, b = fx.tenant(), fx.tenant()
            local id = "dup-" .. a
            clients.create(a, { client_id = id, name = "A" })
            fx.raises(409, "Conflict", clients.create, a, { client_id = id, name = "A again" })
            fx.raises(409, "Conflict", clients.create, b, { client_id = id, name = "B" })
            assert.is_nil(clients.get(b, id))
            assert.equal("A", clients.get(a, id).name)
            assert.equal(a, clients.getByClientId(id).tenant_id)
            assert.equal(0, #fx.raw_partition(schema.keys.tenant_partition(b)))
        end)

        it("validates before sending anything", function()
            local t = fx.tenant()
            fx.rejects(clients.create, t, {})
            fx.rejects(clients.create, t, { name = "" })
            fx.rejects(clients.create, t, { name = "x", client_id = 5 })
            fx.rejects(clients.create, t, { name = "x", callbacks = "https://a" })
            fx.rejects(clients.create, t, { name = "x" }, { importMetadata = { created_at = "yesterday" } })
            fx.rejects(clients.create, nil, { name = "x" })
            fx.rejects(clients.create, t, { name = "x", client_metadata = { big = string.rep("x", 410 * 1024) } })
        end)
    end)

    describe("getByClientId", function()
        it("finds the client in its tenant and adds tenant_id", function()
            local t = fx.tenant()
            local id = "gbc-" .. t
            local c = clients.create(t, { client_id = id, name = "Found" })
            local r = clients.getByClientId(id)
            assert.equal(t, r.tenant_id)
            r.tenant_id = nil
            assert.same(c, r)
            assert.is_nil(clients.getByClientId("no-such-client-" .. t))
            assert.is_nil(clients.get(t, id).tenant_id)
            assert.equal(id, clients:getByClientId(id).client_id)
            fx.rejects(clients.getByClientId, nil)
            fx.rejects(clients.getByClientId, "")
        end)
    end)

    describe("list", function()
        local t
        setup(function()
            t = fx.tenant()
            fx.set_now(T0)
            for i = 1, 9 do
                clients.create(t, { client_id = string.format("c%02d", i), name = "App " .. (10 - i),
                    app_type = i <= 3 and "spa" or "regular_web", is_first_party = i ~= 2,
                    owner_user_id = i == 4 and "auth2|owner" or nil })
            end
            fx.reset_clock()
        end)

        it("returns { clients, totals } with totals only when asked or in keyset mode", function()
            local r = clients.list(t)
            assert.equal(9, #r.clients)
            assert.is_nil(r.totals)
            local p = clients.list(t, { page = 1, per_page = 4, include_totals = true })
            assert.same({ "c05", "c06", "c07", "c08" }, ids(p.clients))
            -- with include_totals, length holds the total (contract §9.3 #4)
            assert.same({ start = 4, limit = 4, length = 9, total = 9 }, p.totals)
        end)

        it("walks every client exactly once in keyset mode", function()
            local walked = fx.keyset_walk(function(o) return clients.list(t, o) end, "clients", "client_id", 4,
                function(page) assert.is_not_nil(page.totals) end)
            assert.equal(9, #walked)
        end)

        it("filters with q, sorts by name", function()
            assert.same({ "c01", "c02", "c03" }, ids(clients.list(t, { q = "app_type:spa" }).clients))
            assert.same({ "c02" }, ids(clients.list(t, { q = "is_first_party:false" }).clients))
            assert.same({ "c04" }, ids(clients.list(t, { q = "owner_user_id:auth2|owner" }).clients))
            assert.same({ "c07" }, ids(clients.list(t, { q = "client_id:c07" }).clients))
            assert.same({ "c03" }, ids(clients.list(t, { q = '"App 7"' }).clients))
            local r = clients.list(t, { q = "app_type:regular_web", include_totals = true })
            assert.equal(6, r.totals.total)
            local sorted = clients.list(t, { sort = { sort_by = "name", sort_order = "asc" }, per_page = 3 })
            assert.same({ "c09", "c08", "c07" }, ids(sorted.clients))
        end)

        it("refuses an unknown q field before sending anything", function()
            fx.rejects(clients.list, t, { q = "client_secret:x" })
        end)
    end)

    describe("update", function()
        it("patches fields, keeps client_id and created_at, returns false when missing", function()
            local t = fx.tenant()
            local id = "upd-" .. t
            clients.create(t, { client_id = id, name = "Old", description = "d" })
            fx.advance(7)
            assert.is_true(clients.update(t, id, { name = "New", callbacks = { "https://x" },
                client_id = "other", created_at = "2000-01-01", description = core.null }))
            local c = clients.get(t, id)
            assert.equal("New", c.name)
            assert.same({ "https://x" }, c.callbacks)
            assert.equal(id, c.client_id)
            assert.is_nil(c.description)
            assert.equal(iso(T0), c.created_at)
            assert.equal(iso(T0 + 7000), c.updated_at)
            assert.is_nil(clients.get(t, "other"))
            assert.is_false(clients.update(t, "missing", { name = "x" }))
            assert.is_false(clients.update(fx.tenant(), id, { name = "x" }))
            fx.rejects(clients.update, t, id, { name = "" })
            fx.rejects(clients.update, t, id, { web_origins = 3 })
            fx.rejects(clients.update, t, id, nil)
        end)
    end)

    describe("remove", function()
        it("deletes the client and its pointer, then the id is free again", function()
            local t, other = fx.tenant(), fx.tenant()
            local id = "rm-" .. t
            clients.create(t, { client_id = id, name = "Gone" })
            assert.is_false(clients.remove(other, id))
            assert.is_not_nil(clients.getByClientId(id))
            assert.is_true(clients.remove(t, id))
            assert.is_nil(clients.get(t, id))
            assert.is_nil(clients.getByClientId(id))
            assert.is_nil(fx.raw_get(schema.keys.client_id_pointer(id)))
            assert.is_false(clients.remove(t, id))
            local again = clients.create(other, { client_id = id, name = "Reused" })
            assert.equal(other, clients.getByClientId(id).tenant_id)
            assert.equal("Reused", again.name)
            fx.rejects(clients.remove, t, nil)
        end)
    end)

    describe("hostile ids", function()
        it("keeps tenants and client ids with # % | and unicode apart", function()
            local base = fx.tenant()
            local evil = base .. "#CLIENT#x"
            clients.create(base, { client_id = "x-" .. base, name = "base" })
            assert.is_nil(clients.get(evil, "x-" .. base))
            local odd = { "a#CLIENT_ID#b", "a%23CLIENT_ID%23b", "p|q", "ḱłïëñţ ✓", "%", "#" }
            for i, suffix in ipairs(odd) do
                clients.create(evil, { client_id = suffix .. base, name = "odd " .. i })
            end
            for i, suffix in ipairs(odd) do
                local id = suffix .. base
                assert.equal("odd " .. i, clients.get(evil, id).name)
                assert.is_nil(clients.get(base, id))
                local r = clients.getByClientId(id)
                assert.equal(evil, r.tenant_id)
                assert.equal(id, r.client_id)
            end
            assert.equal(1, #clients.list(base).clients)
            assert.equal(#odd, #clients.list(evil).clients)
            assert.is_true(clients.remove(evil, "a#CLIENT_ID#b" .. base))
            assert.is_not_nil(clients.getByClientId("a%23CLIENT_ID%23b" .. base))
            assert.is_nil(clients.getByClientId("a#CLIENT_ID#b" .. base))
        end)
    end)
end)
