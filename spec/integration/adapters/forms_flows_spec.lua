-- forms, flows and hookCode (contract §6) against DynamoDB Local: every structured field round-trips
-- through JSON text (forms' links included, which upstream drops), generated and caller ids, 409s,
-- updates in one request (hookCode's with a fields count), flows' update returning the flow, lists
-- (order, paging, keyset, q, sort), validation before any request, and the tenant cascade.
local fx = require "support.adapters"
local core = require "authhero.aws.core"
local schema = require "authhero.aws.schema"
local util = require "authhero.aws.util"

local T0 = math.floor(core.now()) * 1000
local function iso(ms) return util.iso(ms) end

local FULL_FORM = {
    name = "Signup extras",
    messages = { errors = { required = "Required" }, custom = { hello = "Hi" } },
    languages = { primary = "en", default = "en" },
    translations = { sv = { hello = "Hej" } },
    nodes = { {
        id = "step1", type = "STEP", coordinates = { x = 10, y = 20 },
        config = { components = { { id = "c1", category = "FIELD", type = "TEXT", required = true,
            config = { placeholder = "Your name" } } }, next_node = "$ending" },
    }, {
        id = "flow1", type = "FLOW", coordinates = { x = 30, y = 40 }, config = { flow_id = "af_x", next_node = "$ending" },
    } },
    start = { hidden_fields = { { key = "k", value = "v" } }, next_node = "step1", coordinates = { x = 0, y = 0 } },
    ending = { redirection = { delay = 2, target = "https://example.com" }, after_submit = { flow_id = "af_x" },
        resume_flow = true },
    style = { css = "body { color: red }" },
    links = { sdkSrc = "https://cdn.example.com/sdk.js", sdk_src = "https://cdn.example.com/sdk2.js" },
}

local function copy(t)
    local c = {}
    for k, v in pairs(t) do c[k] = v end
    return c
end

describe("forms", function()
    local a, forms

    setup(function()
        a = fx.adapters()
        forms = a.forms
    end)
    before_each(function() fx.set_now(T0) end)
    after_each(function() fx.reset_clock() end)

    it("create stores every field, links included, as JSON text and returns the form as get does", function()
        local t = fx.tenant()
        local f = forms.create(t, copy(FULL_FORM))
        assert.equal(21, #f.id)
        local want = copy(FULL_FORM)
        want.id, want.created_at, want.updated_at = f.id, iso(T0), iso(T0)
        assert.same(want, f)
        assert.same(want, forms.get(t, f.id))
        assert.same(want, forms:get(t, f.id))
        assert.same(FULL_FORM.links, forms.get(t, f.id).links)
        assert.is_true(core.is_array(forms.get(t, f.id).nodes))
        local it = fx.raw_get(schema.keys.form(t, f.id))
        assert.equal("FORM", it.entityType)
        assert.equal("FORM#" .. f.id, it.SK)
        assert.equal(t, it.tenant_id)
        for _, k in ipairs({ "messages", "languages", "translations", "nodes", "start", "ending", "style", "links" }) do
            assert.equal("string", type(it[k]), k)
        end
        assert.same(FULL_FORM.links, core.json_decode(it.links))
        assert.is_nil(f.tenant_id)
    end)

    it("a minimal form has only name, id and timestamps; empty nodes stay an array", function()
        local t = fx.tenant()
        local f = forms.create(t, { name = "Empty", junk = "dropped" })
        assert.same({ id = f.id, name = "Empty", created_at = iso(T0), updated_at = iso(T0) }, f)
        assert.is_nil(fx.raw_get(schema.keys.form(t, f.id)).junk)
        local g = forms.create(t, { name = "No nodes", nodes = {} })
        assert.equal("[]", fx.raw_get(schema.keys.form(t, g.id)).nodes)
        assert.is_true(core.is_array(forms.get(t, g.id).nodes))
    end)

    it("ids: importMetadata's, then the record's; 409 when taken", function()
        local t = fx.tenant()
        assert.equal("form-1", forms.create(t, { id = "form-1", name = "A" }).id)
        local err = fx.raises(409, "Conflict", forms.create, t, { id = "form-1", name = "B" })
        assert.equal("Form already exists", err.message)
        assert.equal("A", forms.get(t, "form-1").name)
        local f = forms.create(t, { id = "ignored", name = "C" }, { importMetadata = { id = "imp-1",
            created_at = "2024-05-05T05:05:05Z" } })
        assert.equal("imp-1", f.id)
        assert.equal("2024-05-05T05:05:05.000Z", f.created_at)
        assert.equal("2024-05-05T05:05:05.000Z", f.updated_at)
        assert.is_nil(forms.get(t, "ignored"))
    end)

    it("update replaces the given fields with one conditional UpdateItem; null removes one", function()
        local t = fx.tenant()
        assert.is_false(forms.update(t, "nope", { name = "x" }))
        assert.is_nil(fx.raw_get(schema.keys.form(t, "nope")))
        local f = forms.create(t, copy(FULL_FORM))
        fx.advance(7)
        local ok, ops = fx.ops(function()
            return forms.update(t, f.id, { name = "Renamed", links = { sdkSrc = "https://new" }, style = core.null,
                id = "other", created_at = "2020-01-01T00:00:00Z", tenant_id = "x" })
        end)
        assert.is_true(ok)
        assert.same({ "UpdateItem" }, ops)
        local g = forms.get(t, f.id)
        assert.equal("Renamed", g.name)
        assert.same({ sdkSrc = "https://new" }, g.links)
        assert.is_nil(g.style)
        assert.same(FULL_FORM.nodes, g.nodes)
        assert.equal(iso(T0), g.created_at)
        assert.equal(iso(T0 + 7000), g.updated_at)
        assert.equal(f.id, g.id)
        assert.equal(t, fx.raw_get(schema.keys.form(t, f.id)).tenant_id)
    end)

    it("remove returns whether the form existed", function()
        local t = fx.tenant()
        local f = forms.create(t, { name = "A" })
        assert.is_true(forms.remove(t, f.id))
        assert.is_false(forms.remove(t, f.id))
        assert.is_nil(forms.get(t, f.id))
    end)

    it("list pages by id, with totals, q, sort and a keyset walk; other kinds are not listed", function()
        local t = fx.tenant()
        for i = 1, 7 do forms.create(t, { id = string.format("f%02d", i), name = (i % 2 == 0) and "even " .. i or "odd " .. i }) end
        a.flows.create(t, { name = "a flow" })
        a.hookCode.create(t, { code = "x" })
        local p = forms.list(t, { page = 1, per_page = 3, include_totals = true })
        assert.same({ "f04", "f05", "f06" }, fx.ids(p.forms))
        assert.equal(3, p.start)
        assert.equal(3, p.limit)
        assert.equal(7, p.length)
        assert.equal(7, p.total)
        assert.same({ "f01", "f02", "f03", "f04", "f05", "f06", "f07" }, fx.ids(forms.list(t).forms))
        assert.same({ "f02", "f04", "f06" }, fx.ids(forms.list(t, { q = "even" }).forms))
        assert.same({ "f03" }, fx.ids(forms.list(t, { q = 'name:"odd 3"' }).forms))
        assert.same({ "f05" }, fx.ids(forms.list(t, { q = "id:f05" }).forms))
        assert.same({ "f07", "f05", "f03", "f01", "f06", "f04", "f02" },
            fx.ids(forms.list(t, { sort = { sort_by = "name", sort_order = "desc" } }).forms))
        local ids, pages = fx.keyset_walk(function(o) return forms.list(t, o) end, "forms", "id", 3)
        assert.same({ "f01", "f02", "f03", "f04", "f05", "f06", "f07" }, ids)
        assert.equal(3, pages)
        fx.raises(400, "ValidationError", forms.list, t, { q = "nodes:x" })
    end)

    it("rejects bad input before any request", function()
        local t = fx.tenant()
        fx.rejects(forms.create, t, {})
        fx.rejects(forms.create, t, { name = "" })
        fx.rejects(forms.create, t, { name = "x", nodes = { a = 1 } })
        fx.rejects(forms.create, t, { name = "x", links = "https://x" })
        fx.rejects(forms.create, t, { name = "x", start = { 1, 2 } })
        fx.rejects(forms.create, "", { name = "x" })
        fx.rejects(forms.update, t, "f", { name = core.null })
        fx.rejects(forms.update, t, "f", { messages = "m" })
        fx.rejects(forms.get, t, "")
        fx.rejects(forms.create, t, { name = "x", id = string.rep("i", 1100) })
    end)

    it("are removed with their tenant", function()
        local t = fx.tenant()
        local f = forms.create(t, { name = "A" })
        a.tenants.remove(t)
        assert.is_nil(forms.get(t, f.id))
    end)
end)

describe("flows", function()
    local a, flows

    setup(function()
        a = fx.adapters()
        flows = a.flows
    end)
    before_each(function() fx.set_now(T0) end)
    after_each(function() fx.reset_clock() end)

    local ACTIONS = {
        { id = "a1", type = "AUTH0", action = "UPDATE_USER", params = { user_id = "{{user.id}}",
            changes = { ["user_metadata.x"] = 1 } } },
        { id = "a2", type = "EMAIL", action = "VERIFY_EMAIL", allow_failure = true,
            params = { email = "{{user.email}}", rules = { block_aliases = true, blocklist = { "x.com" } } } },
        { id = "a3", type = "REDIRECT", action = "REDIRECT_USER", params = { target = "custom", custom_url = "https://x" } },
    }

    it("create generates an af_ id, defaults actions to [] and round-trips them through JSON", function()
        local t = fx.tenant()
        local f = flows.create(t, { name = "Empty" })
        assert.equal("af_", f.id:sub(1, 3))
        assert.equal(24, #f.id)
        assert.same({ id = f.id, name = "Empty", actions = {}, created_at = iso(T0), updated_at = iso(T0) }, f)
        assert.is_true(core.is_array(f.actions))
        assert.equal("[]", fx.raw_get(schema.keys.flow(t, f.id)).actions)
        local g = flows.create(t, { name = "Full", actions = ACTIONS })
        assert.same(ACTIONS, flows.get(t, g.id).actions)
        assert.same(g, flows.get(t, g.id))
        local it = fx.raw_get(schema.keys.flow(t, g.id))
        assert.equal("FLOW", it.entityType)
        assert.equal("FLOW#" .. g.id, it.SK)
        assert.equal(t, it.tenant_id)
        assert.is_nil(g.tenant_id)
        assert.equal("mine", flows.create(t, { id = "mine", name = "X" }).id)
        fx.raises(409, "Conflict", flows.create, t, { id = "mine", name = "Y" })
    end)

    it("update returns the updated flow (an UpdateItem, then a read), or nil when there is none", function()
        local t = fx.tenant()
        local none, ops0 = fx.ops(function() return flows.update(t, "af_missing", { name = "x" }) end)
        assert.is_nil(none)
        assert.same({ "UpdateItem" }, ops0)
        assert.is_nil(fx.raw_get(schema.keys.flow(t, "af_missing")))
        local f = flows.create(t, { name = "A", actions = ACTIONS })
        fx.advance(2)
        local g, ops = fx.ops(function() return flows.update(t, f.id, { name = "B", id = "other" }) end)
        assert.same({ "UpdateItem", "GetItem" }, ops)
        assert.same({ id = f.id, name = "B", actions = ACTIONS, created_at = iso(T0), updated_at = iso(T0 + 2000) }, g)
        assert.same(g, flows.get(t, f.id))
        local h = flows:update(t, f.id, { actions = core.null })
        assert.same({}, h.actions)
        assert.is_true(core.is_array(h.actions))
        assert.same({ ACTIONS[2] }, flows.update(t, f.id, { actions = { ACTIONS[2] } }).actions)
    end)

    it("list pages by id; remove returns whether the flow existed", function()
        local t = fx.tenant()
        for i = 1, 4 do flows.create(t, { id = "af_" .. i, name = "flow " .. i }) end
        a.forms.create(t, { name = "not a flow" })
        local p = flows.list(t, { per_page = 2, page = 1, include_totals = true })
        assert.same({ "af_3", "af_4" }, fx.ids(p.flows))
        assert.equal(4, p.total)
        assert.same({ "af_2" }, fx.ids(flows.list(t, { q = "name:\"flow 2\"" }).flows))
        assert.same({ "af_1", "af_2", "af_3", "af_4" }, (fx.keyset_walk(function(o) return flows.list(t, o) end,
            "flows", "id", 3)))
        assert.is_true(flows.remove(t, "af_2"))
        assert.is_false(flows.remove(t, "af_2"))
        assert.same({ "af_1", "af_3", "af_4" }, fx.ids(flows.list(t).flows))
    end)

    it("rejects bad input before any request and is removed with its tenant", function()
        local t = fx.tenant()
        fx.rejects(flows.create, t, {})
        fx.rejects(flows.create, t, { name = "x", actions = { a = 1 } })
        fx.rejects(flows.create, t, { name = "x", actions = { "step" } })
        fx.rejects(flows.update, t, "af_1", { name = core.null })
        fx.rejects(flows.update, t, "af_1", { actions = "a" })
        fx.rejects(flows.update, t, "", { name = "x" })
        assert.is_nil(flows.update(t, string.rep("i", 1100), { name = "x" })) -- no flow can have that id
        local f = flows.create(t, { name = "A" })
        a.tenants.remove(t)
        assert.is_nil(flows.get(t, f.id))
    end)
end)

describe("hookCode", function()
    local a, hc

    setup(function()
        a = fx.adapters()
        hc = a.hookCode
    end)
    before_each(function() fx.set_now(T0) end)
    after_each(function() fx.reset_clock() end)

    it("create generates an hc_ id and returns the record with tenant_id; secrets round-trip as JSON", function()
        local t = fx.tenant()
        local c = hc.create(t, { code = "exports.onExecutePostLogin = async () => {}", secrets = { API_KEY = "s3cr3t" } })
        assert.equal("hc_", c.id:sub(1, 3))
        assert.equal(24, #c.id)
        assert.same({ id = c.id, tenant_id = t, code = "exports.onExecutePostLogin = async () => {}",
            secrets = { API_KEY = "s3cr3t" }, created_at = iso(T0), updated_at = iso(T0) }, c)
        assert.same(c, hc.get(t, c.id))
        local it = fx.raw_get(schema.keys.hook_code(t, c.id))
        assert.equal("HOOK_CODE", it.entityType)
        assert.equal("HOOK_CODE#" .. c.id, it.SK)
        assert.equal("string", type(it.secrets))
        local d = hc.create(t, { code = "" })
        assert.is_nil(d.secrets)
        assert.is_nil(hc.get(fx.tenant(), c.id)) -- another tenant's id
    end)

    it("code is at most 100 000 characters as JavaScript counts them", function()
        local t = fx.tenant()
        assert.equal(100000, #hc.create(t, { code = string.rep("a", 100000) }).code)
        fx.rejects(hc.create, t, { code = string.rep("a", 100001) })
        -- 50 000 two-byte characters are 50 000 characters; 50 001 characters beyond U+FFFF are 100 002
        hc.create(t, { code = string.rep("\195\164", 50000) .. string.rep("a", 50000) })
        fx.rejects(hc.create, t, { code = string.rep("\240\159\152\128", 50001) })
        hc.create(t, { code = string.rep("\240\159\152\128", 50000) })
        local c = hc.create(t, { code = "x" })
        fx.rejects(hc.update, t, c.id, { code = string.rep("b", 100001) })
    end)

    it("update is one UpdateItem, never a read, with only the fields given (and updated_at)", function()
        local t = fx.tenant()
        local c = hc.create(t, { code = "v1", secrets = { A = "1" } })
        fx.advance(4)
        local labels = function(op, p)
            if op ~= "UpdateItem" then return op end
            local n = 0
            for _ in pairs(p.ExpressionAttributeNames) do n = n + 1 end
            return op .. ":" .. n .. ":" .. tostring(p.ConditionExpression ~= nil) .. ":" .. p.UpdateExpression
        end
        local ok, ops = fx.ops(function() return hc.update(t, c.id, { code = "v2" }) end, labels)
        assert.is_true(ok)
        -- SET code, updated_at; the condition names PK and ttl
        assert.same({ "UpdateItem:4:true:SET #n1 = :v1, #n2 = :v2" }, ops)
        assert.same({ id = c.id, tenant_id = t, code = "v2", secrets = { A = "1" }, created_at = iso(T0),
            updated_at = iso(T0 + 4000) }, hc.get(t, c.id))
        local _, ops2 = fx.ops(function() return hc.update(t, c.id, { secrets = { B = "2" }, id = "x", tenant_id = "y" }) end)
        assert.equal(1, #ops2)
        assert.same({ B = "2" }, hc.get(t, c.id).secrets)
        assert.is_true(hc:update(t, c.id, { secrets = core.null }))
        assert.is_nil(hc.get(t, c.id).secrets)
        assert.equal(t, hc.get(t, c.id).tenant_id)
        local missing, ops3 = fx.ops(function() return hc.update(t, "hc_missing", { code = "x" }) end)
        assert.is_false(missing)
        assert.same({ "UpdateItem" }, ops3)
        assert.is_nil(fx.raw_get(schema.keys.hook_code(t, "hc_missing")))
    end)

    it("remove returns whether it existed; importMetadata's id and timestamps are kept; 409 on a taken id", function()
        local t = fx.tenant()
        local c = hc.create(t, { code = "x" }, { importMetadata = { id = "hc_imported", created_at = "2024-01-01T00:00:00Z",
            updated_at = "2024-01-02T00:00:00Z" } })
        assert.equal("hc_imported", c.id)
        assert.equal("2024-01-01T00:00:00.000Z", c.created_at)
        assert.equal("2024-01-02T00:00:00.000Z", c.updated_at)
        fx.raises(409, "Conflict", hc.create, t, { id = "hc_imported", code = "y" })
        assert.equal("x", hc.get(t, "hc_imported").code)
        assert.is_true(hc.remove(t, "hc_imported"))
        assert.is_false(hc.remove(t, "hc_imported"))
    end)

    it("rejects bad input before any request and is removed with its tenant", function()
        local t = fx.tenant()
        fx.rejects(hc.create, t, {})
        fx.rejects(hc.create, t, { code = 5 })
        fx.rejects(hc.create, t, { code = "x", secrets = { A = 1 } })
        fx.rejects(hc.create, t, { code = "x", secrets = { "a" } })
        fx.rejects(hc.update, t, "hc_1", { code = core.null })
        fx.rejects(hc.update, t, "hc_1", { secrets = "s" })
        fx.rejects(hc.get, "", "hc_1")
        local c = hc.create(t, { code = "x" })
        a.tenants.remove(t)
        assert.is_nil(hc.get(t, c.id))
    end)
end)
