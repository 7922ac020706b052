-- customDomains (contract §4.12) against DynamoDB Local: normalization, the domain claim across
-- tenants, getByDomain (and get with one argument), domain changes, remove and hostile ids.
local fx = require "support.adapters"
local core = require "authhero.aws.core"
local schema = require "authhero.aws.schema"

-- every test uses its own hosts: the claims are global to the table
local function host(label)
    return label .. "-" .. fx.tenant("h") .. ".example.com"
end

describe("customDomains", function()
    local a, cd, t

    setup(function()
        a = fx.adapters()
        cd = a.customDomains
        t = fx.tenant()
    end)

    it("creates with defaults, normalizes the domain, writes GSI2 and the claim", function()
        local h = host("auth")
        local d = cd.create(t, { domain = "  " .. h:upper() .. ".:443 ", type = "auth0_managed_certs" })
        assert.equal(h, d.domain)
        assert.equal(21, #d.custom_domain_id)
        assert.equal("pending", d.status)
        assert.is_false(d.primary)
        assert.equal("auth0_managed_certs", d.type)
        for _, k in ipairs({ "PK", "SK", "GSI2PK", "entityType", "tenant_id", "created_at", "updated_at" }) do
            assert.is_nil(d[k])
        end
        assert.same(d, cd.get(t, d.custom_domain_id))
        assert.same(d, cd:get(t, d.custom_domain_id))

        local item = fx.raw_get(schema.keys.custom_domain(t, d.custom_domain_id))
        assert.equal("DOMAIN#" .. h, item.GSI2PK)
        assert.equal("CUSTOM_DOMAIN", item.GSI2SK)
        assert.equal(t, item.tenant_id)
        assert.is_string(item.created_at)
        local claim = fx.raw_get(schema.keys.domain_claim(h))
        assert.equal("CUSTOM_DOMAIN_CLAIM", claim.entityType)
        assert.equal(t, claim.tenant_id)
        assert.equal(d.custom_domain_id, claim.custom_domain_id)
        assert.is_nil(cd.get(t, "nope"))
    end)

    it("normalizes 'Auth.Example.COM.:443' to 'auth.example.com'", function()
        local tt = fx.tenant()
        local d = cd.create(tt, { custom_domain_id = "cd_norm", domain = "Auth.Example.COM.:443",
            type = "self_managed_certs", primary = true, status = "ready",
            verification = { methods = { { name = "txt", record = "abc", domain = "_v.auth.example.com" } } },
            domain_metadata = { k = "v" }, origin_domain_name = "origin.example.net", verification_method = "txt",
            tls_policy = "recommended", custom_client_ip_header = "cf-connecting-ip" })
        assert.equal("auth.example.com", d.domain)
        assert.equal("cd_norm", d.custom_domain_id)
        assert.is_true(d.primary)
        assert.equal("ready", d.status)
        assert.equal("abc", d.verification.methods[1].record)
        assert.equal("v", d.domain_metadata.k)
        assert.is_string(fx.raw_get(schema.keys.custom_domain(tt, "cd_norm")).verification)
        for _, form in ipairs({ "auth.example.com", "AUTH.EXAMPLE.COM", "auth.example.com.", "auth.example.com:8443",
            " Auth.Example.Com.:443 " }) do
            local got = cd.getByDomain(form)
            assert.equal("cd_norm", got.custom_domain_id, form)
            assert.equal(tt, got.tenant_id)
        end
        assert.is_true(cd.remove(tt, "cd_norm")) -- the host is shared by the whole table
    end)

    it("409 when another tenant (or the same one) claims the domain, or the id exists", function()
        local h = host("shared")
        local t1, t2 = fx.tenant(), fx.tenant()
        local d = cd.create(t1, { custom_domain_id = "cd1", domain = h, type = "auth0_managed_certs" })
        local e = fx.raises(409, "Conflict", cd.create, t2, { domain = h:upper() .. ".", type = "auth0_managed_certs" })
        assert.equal("Custom domain already exists", e.message)
        fx.raises(409, "Conflict", cd.create, t1, { custom_domain_id = "cd2", domain = h, type = "auth0_managed_certs" })
        fx.raises(409, "Conflict", cd.create, t1, { custom_domain_id = "cd1", domain = host("other"),
            type = "auth0_managed_certs" })
        assert.same({}, cd.list(t2))
        assert.equal(1, #cd.list(t1))
        assert.is_nil(cd.get(t1, "cd2"))
        local got = cd.getByDomain(h)
        assert.equal(t1, got.tenant_id)
        assert.equal("cd1", got.custom_domain_id)
        assert.equal(d.domain, got.domain)
    end)

    it("getByDomain and get(domain) with a single argument", function()
        local h = host("lookup")
        local d = cd.create(t, { custom_domain_id = "cd_look", domain = h, type = "auth0_managed_certs" })
        local expect = {}
        for k, v in pairs(d) do expect[k] = v end
        expect.tenant_id = t
        assert.same(expect, cd.getByDomain(h))
        assert.same(expect, cd.get(h:upper()))
        assert.same(expect, cd:get(h))
        assert.same(expect, cd:getByDomain(h))
        assert.is_nil(cd.getByDomain(host("unknown")))
        assert.is_nil(cd.get(host("unknown")))
        -- a claim whose domain item is gone reads as absent
        fx.raw_delete(schema.keys.custom_domain(t, "cd_look"))
        assert.is_nil(cd.getByDomain(h))
        fx.raw_delete(schema.keys.domain_claim(h))
    end)

    it("400 before any request on invalid input", function()
        fx.rejects(cd.create, t, nil)
        fx.rejects(cd.create, t, { type = "auth0_managed_certs" })
        fx.rejects(cd.create, t, { domain = "  .:443", type = "auth0_managed_certs" })
        fx.rejects(cd.create, t, { domain = "x.example.com" })
        fx.rejects(cd.create, t, { domain = "x.example.com", type = "bogus" })
        fx.rejects(cd.create, t, { domain = "x.example.com", type = "auth0_managed_certs", status = "live" })
        fx.rejects(cd.create, t, { domain = "x.example.com", type = "auth0_managed_certs", primary = "yes" })
        fx.rejects(cd.create, t, { domain = "x.example.com", type = "auth0_managed_certs", verification = "txt" })
        fx.rejects(cd.create, nil, { domain = "x.example.com", type = "auth0_managed_certs" })
        fx.rejects(cd.getByDomain, nil)
        fx.rejects(cd.getByDomain, 5)
        fx.rejects(cd.getByDomain, " ")
        fx.rejects(cd.get, t, nil)
        fx.rejects(cd.update, t, "x", nil)
        fx.rejects(cd.update, t, "x", { domain = core.null })
        fx.rejects(cd.update, t, "x", { domain = "" })
        fx.rejects(cd.update, t, "x", { type = "nope" })
        fx.rejects(cd.update, t, "x", { status = core.null })
        fx.rejects(cd.remove, t, "")
        fx.rejects(cd.list, t, { q = "domain:x" })
    end)

    it("update: plain fields, a domain change moves claim and GSI2, a claimed domain is 409", function()
        local old, new, other = host("old"), host("new"), host("taken")
        local tt = fx.tenant()
        cd.create(tt, { custom_domain_id = "cdu", domain = old, type = "auth0_managed_certs" })
        cd.create(fx.tenant(), { domain = other, type = "auth0_managed_certs" })

        assert.is_true(cd.update(tt, "cdu", { status = "ready", primary = true, custom_domain_id = "hijack" }))
        local got = cd.get(tt, "cdu")
        assert.equal("ready", got.status)
        assert.is_true(got.primary)
        assert.is_nil(cd.get(tt, "hijack"))

        assert.is_true(cd.update(tt, "cdu", { domain = new:upper() .. ".:443", status = "pending_verification" }))
        got = cd.get(tt, "cdu")
        assert.equal(new, got.domain)
        assert.equal("pending_verification", got.status)
        assert.equal("cdu", cd.getByDomain(new).custom_domain_id)
        assert.is_nil(cd.getByDomain(old))
        assert.is_nil(fx.raw_get(schema.keys.domain_claim(old)))
        assert.equal("DOMAIN#" .. new, fx.raw_get(schema.keys.custom_domain(tt, "cdu")).GSI2PK)
        -- the old domain is free for anyone
        local reuse = cd.create(fx.tenant(), { domain = old, type = "auth0_managed_certs" })
        assert.equal(reuse.custom_domain_id, cd.getByDomain(old).custom_domain_id)

        local e = fx.raises(409, "Conflict", cd.update, tt, "cdu", { domain = other, status = "disabled" })
        assert.equal("Custom domain already exists", e.message)
        got = cd.get(tt, "cdu")
        assert.equal(new, got.domain)
        assert.equal("pending_verification", got.status)

        -- the same domain written differently is a plain update
        assert.is_true(cd.update(tt, "cdu", { domain = new:upper(), verification_method = "txt" }))
        assert.equal(new, cd.get(tt, "cdu").domain)
        assert.equal("txt", cd.get(tt, "cdu").verification_method)
        assert.is_true(cd.update(tt, "cdu", { verification_method = core.null }))
        assert.is_nil(cd.get(tt, "cdu").verification_method)

        assert.is_false(cd.update(tt, "missing", { status = "ready" }))
        assert.is_false(cd.update(tt, "missing", { domain = host("nowhere") }))
    end)

    it("list returns every domain of the tenant as an array", function()
        local lt = fx.tenant()
        assert.same({}, cd.list(lt))
        local made = {}
        for i = 1, 4 do made[cd.create(lt, { domain = host("l" .. i), type = "auth0_managed_certs" }).custom_domain_id] = true end
        cd.create(fx.tenant(), { domain = host("elsewhere"), type = "auth0_managed_certs" })
        local list = cd.list(lt)
        assert.is_true(core.is_array(list))
        assert.equal(4, #list)
        for _, d in ipairs(list) do assert.is_true(made[d.custom_domain_id]) end
    end)

    it("remove deletes the domain and its claim; false when absent", function()
        local h = host("gone")
        local tt = fx.tenant()
        cd.create(tt, { custom_domain_id = "cdr", domain = h, type = "auth0_managed_certs" })
        assert.is_true(cd.remove(tt, "cdr"))
        assert.is_nil(cd.get(tt, "cdr"))
        assert.is_nil(cd.getByDomain(h))
        assert.is_nil(fx.raw_get(schema.keys.domain_claim(h)))
        assert.is_false(cd.remove(tt, "cdr"))
        assert.is_false(cd.remove(tt, "never"))
        -- another tenant can take the domain now
        local t2 = fx.tenant()
        cd.create(t2, { domain = h, type = "auth0_managed_certs" })
        assert.equal(t2, cd.getByDomain(h).tenant_id)
        -- removing a domain from the wrong tenant does nothing
        assert.is_false(cd.remove(tt, cd.getByDomain(h).custom_domain_id))
        assert.equal(t2, cd.getByDomain(h).tenant_id)
    end)

    it("keeps hostile ids and domains apart", function()
        local base = fx.tenant()
        local evil = base .. "#CUSTOM_DOMAIN#x"
        local h1, h2 = host("hostile1"), host("hostile2")
        cd.create(base, { custom_domain_id = "x", domain = h1, type = "auth0_managed_certs" })
        cd.create(evil, { custom_domain_id = "x", domain = h2, type = "auth0_managed_certs" })
        assert.equal(h1, cd.get(base, "x").domain)
        assert.equal(h2, cd.get(evil, "x").domain)
        assert.equal(1, #cd.list(base))
        assert.equal(evil, cd.getByDomain(h2).tenant_id)

        local tt = fx.tenant()
        local weird, hosts = { "d#1", "d%231", "d|1", "ð#%" }, {}
        for i, id in ipairs(weird) do
            hosts[i] = host("w" .. i)
            cd.create(tt, { custom_domain_id = id, domain = hosts[i], type = "auth0_managed_certs" })
        end
        for i, id in ipairs(weird) do
            assert.equal(id, cd.getByDomain(hosts[i]).custom_domain_id)
            assert.equal(hosts[i], cd.get(tt, id).domain)
        end
        -- domains holding '#' or '%' stay distinct
        local hd = host("x")
        cd.create(tt, { domain = "a#b." .. hd, type = "auth0_managed_certs" })
        cd.create(tt, { domain = "a%23b." .. hd, type = "auth0_managed_certs" })
        assert.equal("a#b." .. hd, cd.getByDomain("A#B." .. hd).domain)
        assert.equal("a%23b." .. hd, cd.getByDomain("a%23b." .. hd).domain)
        assert.is_true(cd.remove(tt, "d#1"))
        assert.is_table(cd.get(tt, "d%231"))
    end)
end)
