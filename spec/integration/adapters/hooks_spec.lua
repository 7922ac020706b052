-- hooks (contract §5.10) against DynamoDB Local: the five variants and their triggers, defaults,
-- 409s and races, variant switches on update, the one-Query list in priority order, q, paging and
-- hostile ids.
local fx = require "support.adapters"
local core = require "authhero.aws.core"
local util = require "authhero.aws.util"
local schema = require "authhero.aws.schema"

local T0 = math.floor(core.now()) * 1000
local function iso(ms) return util.iso(ms) end

local function raw(t, id) return fx.raw_get(schema.keys.hook(t, id)) end

local VARIANT_FIELDS = { "url", "form_id", "template_id", "code_id", "page_id" }
local function variants_of(item)
    local out = {}
    for _, f in ipairs(VARIANT_FIELDS) do
        if item[f] ~= nil then out[#out + 1] = f end
    end
    return out
end

describe("hooks", function()
    local a, hooks

    setup(function()
        a = fx.adapters()
        hooks = a.hooks
    end)
    before_each(function() fx.set_now(T0) end)
    after_each(function() fx.reset_clock() end)

    describe("create", function()
        it("stores a web hook with defaults and returns it as get does", function()
            local t = fx.tenant()
            local h = hooks.create(t, { trigger_id = "post-user-login", url = "https://example.com/hook" })
            assert.equal(21, #h.hook_id)
            assert.equal("post-user-login", h.trigger_id)
            assert.equal("https://example.com/hook", h.url)
            assert.is_false(h.enabled)
            assert.is_false(h.synchronous)
            assert.is_nil(h.priority)
            assert.is_nil(h.metadata)
            assert.equal(iso(T0), h.created_at)
            assert.equal(iso(T0), h.updated_at)
            for _, k in ipairs({ "PK", "SK", "entityType", "tenant_id", "ttl" }) do assert.is_nil(h[k], k) end
            assert.same(h, hooks.get(t, h.hook_id))
            assert.same(h, hooks:get(t, h.hook_id))
            local it = raw(t, h.hook_id)
            assert.equal("HOOK", it.entityType)
            assert.equal(t, it.tenant_id)
            assert.equal(core.key("TENANT", t), it.PK)
            assert.equal("HOOK#" .. h.hook_id, it.SK)
            assert.is_false(it.enabled)
        end)

        it("stores every variant with all its fields (code_id, page_id, permission_required, metadata)", function()
            local t = fx.tenant()
            local meta = { inherit = true, nested = { list = { 1, 2 }, empty = core.null } }
            local code = hooks.create(t, { hook_id = "h-code", trigger_id = "credentials-exchange", code_id = "hc_1",
                enabled = true, synchronous = true, priority = 10, metadata = meta })
            assert.same({ hook_id = "h-code", trigger_id = "credentials-exchange", code_id = "hc_1", enabled = true,
                synchronous = true, priority = 10, metadata = meta, created_at = iso(T0), updated_at = iso(T0) }, code)
            assert.same(code, hooks.get(t, "h-code"))
            assert.equal("string", type(raw(t, "h-code").metadata))
            assert.equal(core.null, hooks.get(t, "h-code").metadata.nested.empty)
            if math.type then assert.equal("integer", math.type(hooks.get(t, "h-code").priority)) end

            local page = hooks.create(t, { hook_id = "h-page", trigger_id = "post-user-login", page_id = "impersonate",
                permission_required = "users:impersonate", priority = 2.5 })
            assert.equal("impersonate", hooks.get(t, "h-page").page_id)
            assert.equal("users:impersonate", hooks.get(t, "h-page").permission_required)
            assert.equal(2.5, page.priority)
            local form = hooks.create(t, { hook_id = "h-form", trigger_id = "post-user-login", form_id = "form_1" })
            assert.equal("form_1", hooks.get(t, form.hook_id).form_id)
            for _, tpl in ipairs({ "ensure-username", "set-preferred-username", "account-linking" }) do
                local h = hooks.create(t, { trigger_id = "post-user-registration", template_id = tpl })
                assert.equal(tpl, hooks.get(t, h.hook_id).template_id)
            end
            -- fields outside the hook schema are not stored (AuthHero's schema strips them)
            local x = hooks.create(t, { hook_id = "h-x", trigger_id = "post-user-login", url = "u", extra = "no",
                tenant_id = "other" })
            assert.is_nil(x.extra)
            assert.is_nil(raw(t, "h-x").extra)
            assert.equal(t, raw(t, "h-x").tenant_id)
        end)

        it("takes importMetadata's id and timestamps over the record's", function()
            local t = fx.tenant()
            local h = hooks.create(t, { hook_id = "mine", trigger_id = "post-user-login", url = "u" },
                { importMetadata = { id = "imported", created_at = "2022-02-02T02:02:02+01:00",
                    updated_at = "2023-03-03T03:03:03Z" } })
            assert.equal("imported", h.hook_id)
            assert.equal("2022-02-02T01:02:02.000Z", h.created_at)
            assert.equal("2023-03-03T03:03:03.000Z", h.updated_at)
            assert.is_nil(hooks.get(t, "mine"))
            assert.same(h, hooks.get(t, "imported"))
        end)

        it("409 when the hook id is taken", function()
            local t = fx.tenant()
            hooks.create(t, { hook_id = "dup", trigger_id = "post-user-login", url = "first" })
            local e = fx.raises(409, "Conflict", hooks.create, t, { hook_id = "dup", trigger_id = "post-user-login",
                url = "second" })
            assert.equal("Hook already exists", e.message)
            assert.equal("first", hooks.get(t, "dup").url)
            -- another tenant may use the same id
            assert.equal("dup", hooks.create(fx.tenant(), { hook_id = "dup", trigger_id = "post-user-login",
                url = "x" }).hook_id)
        end)

        it("exactly one of several processes creating the same hook id wins", function()
            fx.reset_clock()
            local t = fx.tenant()
            local out = fx.race(5, string.format([[function(adapters, i)
                local h = adapters.hooks.create(%q, { hook_id = "raced", trigger_id = "post-user-login",
                    url = "https://p" .. i })
                return "ok " .. h.url
            end]], t))
            local wins, conflicts, winner = 0, 0, nil
            for _, o in ipairs(out) do
                if o:match("^ok ") then
                    wins = wins + 1
                    winner = o:sub(4)
                elseif o == "error: Conflict" then
                    conflicts = conflicts + 1
                end
            end
            assert.equal(1, wins, table.concat(out, " | "))
            assert.equal(4, conflicts, table.concat(out, " | "))
            assert.equal(winner, hooks.get(t, "raced").url)
        end)

        it("400 before any request on invalid input", function()
            local t = fx.tenant()
            local function ok(extra)
                local h = { trigger_id = "post-user-login", url = "https://x" }
                for k, v in pairs(extra) do h[k] = v end
                return h
            end
            fx.rejects(hooks.create, nil, ok({}))
            fx.rejects(hooks.create, t, nil)
            fx.rejects(hooks.create, t, { url = "https://x" })
            fx.rejects(hooks.create, t, ok({ trigger_id = 3 }))
            fx.rejects(hooks.create, t, { trigger_id = "post-user-login" })                     -- no variant
            fx.rejects(hooks.create, t, ok({ form_id = "f" }))                                  -- two variants
            fx.rejects(hooks.create, t, ok({ url = "" }))
            fx.rejects(hooks.create, t, ok({ url = 5 }))
            fx.rejects(hooks.create, t, ok({ trigger_id = "credentials-exchange" }))            -- not for url
            fx.rejects(hooks.create, t, { trigger_id = "pre-user-registration", form_id = "f" })
            fx.rejects(hooks.create, t, { trigger_id = "post-user-deletion", code_id = "c" })
            fx.rejects(hooks.create, t, { trigger_id = "validate-registration-username", template_id = "account-linking" })
            fx.rejects(hooks.create, t, { trigger_id = "post-user-login", template_id = "nope" })
            fx.rejects(hooks.create, t, { trigger_id = "post-user-login", page_id = "consent" })
            fx.rejects(hooks.create, t, { trigger_id = "post-user-update", page_id = "impersonate" })
            fx.rejects(hooks.create, t, ok({ permission_required = "p" }))                      -- page hooks only
            fx.rejects(hooks.create, t, { trigger_id = "post-user-login", page_id = "impersonate", permission_required = 1 })
            fx.rejects(hooks.create, t, ok({ trigger_id = "not-a-trigger" }))
            fx.rejects(hooks.create, t, ok({ enabled = "yes" }))
            fx.rejects(hooks.create, t, ok({ synchronous = 1 }))
            fx.rejects(hooks.create, t, ok({ priority = "1" }))
            fx.rejects(hooks.create, t, ok({ priority = 0 / 0 }))
            fx.rejects(hooks.create, t, ok({ priority = math.huge }))
            fx.rejects(hooks.create, t, ok({ metadata = "x" }))
            fx.rejects(hooks.create, t, ok({ metadata = { 1, 2 } }))
            fx.rejects(hooks.create, t, ok({ metadata = core.array({}) }))
            fx.rejects(hooks.create, t, ok({ hook_id = 7 }))
            fx.rejects(hooks.create, t, ok({ hook_id = string.rep("h", 1100) }))
            fx.rejects(hooks.get, t, nil)
            fx.rejects(hooks.get, "", "h")
            fx.rejects(hooks.remove, t, "")
            fx.rejects(hooks.update, t, "h", nil)
            fx.rejects(hooks.update, t, nil, { enabled = true })
            fx.rejects(hooks.update, t, "h", { url = "a", code_id = "b" })
            fx.rejects(hooks.update, t, "h", { url = core.null })
            fx.rejects(hooks.update, t, "h", { trigger_id = core.null })
            fx.rejects(hooks.update, t, "h", { form_id = "f", trigger_id = "pre-user-registration" })
            fx.rejects(hooks.update, t, "h", { url = "u", permission_required = "p" })
            fx.rejects(hooks.update, t, "h", { enabled = "no" })
            fx.rejects(hooks.update, t, "h", { template_id = "nope" })
            fx.rejects(hooks.list, t, { q = "foo:bar" })
            fx.rejects(hooks.list, t, { q = "metadata:x" })
            fx.rejects(hooks.list, t, { q = 5 })
            fx.rejects(hooks.list, t, { per_page = "ten" })
            fx.rejects(hooks.list, t, { page = -1 })
            fx.rejects(hooks.list, t, "q")
            -- ids too long for a key: nothing can be stored there, so nothing is asked
            local before = fx.requests()
            assert.is_nil(hooks.get(t, string.rep("h", 1100)))
            assert.is_false(hooks.remove(t, string.rep("h", 1100)))
            assert.is_false(hooks.update(t, string.rep("h", 1100), { enabled = true }))
            assert.equal(before, fx.requests())
        end)
    end)

    describe("update", function()
        it("patches fields in one request, keeps created_at, false when absent", function()
            local t = fx.tenant()
            local h = hooks.create(t, { hook_id = "u1", trigger_id = "post-user-login", url = "https://a",
                priority = 1, metadata = { a = 1 }, enabled = true })
            fx.advance(5)
            local res, ops = fx.ops(function()
                return hooks.update(t, "u1", { enabled = false, synchronous = true, priority = 7,
                    metadata = { b = 2 }, created_at = "1999-01-01T00:00:00Z", hook_id = "other" })
            end)
            assert.is_true(res)
            assert.same({ "UpdateItem" }, ops)
            -- a variant field alone: the stored trigger is read to check it fits
            res, ops = fx.ops(function() return hooks.update(t, "u1", { url = "https://b" }) end)
            assert.is_true(res)
            assert.same({ "GetItem", "UpdateItem" }, ops)
            local got = hooks.get(t, "u1")
            assert.same({ hook_id = "u1", trigger_id = "post-user-login", url = "https://b", enabled = false,
                synchronous = true, priority = 7, metadata = { b = 2 }, created_at = h.created_at,
                updated_at = iso(T0 + 5000) }, got)
            assert.is_nil(hooks.get(t, "other"))
            -- null removes priority and metadata; enabled/synchronous null go back to false
            assert.is_true(hooks.update(t, "u1", { priority = core.null, metadata = core.null, synchronous = core.null }))
            got = hooks.get(t, "u1")
            assert.is_nil(got.priority)
            assert.is_nil(got.metadata)
            assert.is_false(got.synchronous)
            assert.is_nil(raw(t, "u1").metadata)
            assert.is_false(hooks.update(t, "missing", { enabled = true }))
            assert.is_false(hooks.update(t, "missing", { trigger_id = "post-user-update" }))
            assert.is_false(hooks.update(t, "missing", { form_id = "f" }))
            assert.is_nil(hooks.get(t, "missing"))
        end)

        it("switching the variant removes the old variant field (and permission_required)", function()
            local t = fx.tenant()
            hooks.create(t, { hook_id = "sw", trigger_id = "post-user-login", url = "https://a" })
            -- the new variant with its trigger: checked before the write, no read
            local _, ops = fx.ops(function()
                assert.is_true(hooks.update(t, "sw", { form_id = "form_1", trigger_id = "post-user-login" }))
            end)
            assert.same({ "UpdateItem" }, ops)
            assert.same({ "form_id" }, variants_of(raw(t, "sw")))
            -- the new variant alone: the stored trigger is read and checked, then a conditional write
            _, ops = fx.ops(function()
                assert.is_true(hooks.update(t, "sw", { page_id = "impersonate", permission_required = "imp" }))
            end)
            assert.same({ "GetItem", "UpdateItem" }, ops)
            local it = raw(t, "sw")
            assert.same({ "page_id" }, variants_of(it))
            assert.equal("imp", it.permission_required)
            -- leaving page_id drops permission_required too
            assert.is_true(hooks.update(t, "sw", { code_id = "hc_9" }))
            it = raw(t, "sw")
            assert.same({ "code_id" }, variants_of(it))
            assert.is_nil(it.permission_required)
            assert.same({ hook_id = "sw", trigger_id = "post-user-login", code_id = "hc_9", enabled = false,
                synchronous = false, created_at = iso(T0), updated_at = iso(T0) }, hooks.get(t, "sw"))
            -- a variant set to null next to the new one is fine
            assert.is_true(hooks.update(t, "sw", { code_id = core.null, url = "https://back" }))
            assert.same({ "url" }, variants_of(raw(t, "sw")))
            -- a page hook's permission may change alone (the stored variant is read first)
            hooks.create(t, { hook_id = "pg", trigger_id = "post-user-login", page_id = "impersonate" })
            assert.is_true(hooks.update(t, "pg", { permission_required = "p2" }))
            assert.equal("p2", hooks.get(t, "pg").permission_required)
            assert.is_true(hooks.update(t, "pg", { permission_required = core.null }))
            assert.is_nil(hooks.get(t, "pg").permission_required)
        end)

        it("400 after reading the stored hook when the trigger does not fit its variant", function()
            local t = fx.tenant()
            hooks.create(t, { hook_id = "tr", trigger_id = "post-user-login", form_id = "f1", enabled = true })
            local e = fx.raises(400, "ValidationError", hooks.update, t, "tr", { trigger_id = "pre-user-registration" })
            assert.matches("form_id", e.message)
            fx.raises(400, "ValidationError", hooks.update, t, "tr", { permission_required = "x" })
            hooks.create(t, { hook_id = "tr2", trigger_id = "pre-user-deletion", url = "u" })
            fx.raises(400, "ValidationError", hooks.update, t, "tr2", { form_id = "f" })
            fx.raises(400, "ValidationError", hooks.update, t, "tr2", { template_id = "ensure-username" })
            -- nothing changed
            assert.same({ "url" }, variants_of(raw(t, "tr2")))
            assert.equal("pre-user-deletion", hooks.get(t, "tr2").trigger_id)
            assert.equal("post-user-login", hooks.get(t, "tr").trigger_id)
            -- a trigger the stored variant allows is fine
            assert.is_true(hooks.update(t, "tr2", { trigger_id = "post-user-deletion" }))
            assert.equal("post-user-deletion", hooks.get(t, "tr2").trigger_id)
        end)

        it("concurrent variant and trigger changes never leave an invalid hook", function()
            fx.reset_clock()
            local t = fx.tenant()
            for round = 1, 3 do
                local id = "race-" .. round
                hooks.create(t, { hook_id = id, trigger_id = "post-user-login", url = "https://start" })
                local out = fx.race(6, string.format([[function(adapters, i)
                    local patch
                    if i %% 2 == 1 then patch = { form_id = "form-" .. i }
                    else patch = { trigger_id = "pre-user-registration" } end
                    return tostring(adapters.hooks.update(%q, %q, patch))
                end]], t, id))
                for _, o in ipairs(out) do
                    assert.is_true(o == "true" or o == "error: ValidationError" or o == "error: Conflict", o)
                end
                local it = raw(t, id)
                local vs = variants_of(it)
                assert.equal(1, #vs, id)
                if vs[1] == "form_id" then
                    assert.equal("post-user-login", it.trigger_id)
                else
                    assert.equal("url", vs[1])
                end
            end
        end)
    end)

    it("remove returns true once, then false", function()
        local t = fx.tenant()
        hooks.create(t, { hook_id = "rm", trigger_id = "post-user-login", url = "u" })
        hooks.create(t, { hook_id = "keep", trigger_id = "post-user-login", url = "u" })
        assert.is_true(hooks.remove(t, "rm"))
        assert.is_nil(hooks.get(t, "rm"))
        assert.is_nil(raw(t, "rm"))
        assert.is_false(hooks.remove(t, "rm"))
        assert.is_false(hooks.remove(t, "never"))
        assert.is_table(hooks.get(t, "keep"))
        assert.equal("rm", hooks.create(t, { hook_id = "rm", trigger_id = "post-user-login", url = "again" }).hook_id)
    end)

    describe("list", function()
        local t
        -- created one second apart, in this order
        local DEFS = {
            { "h-a", { trigger_id = "post-user-login", url = "https://a.example/x", priority = 1, enabled = true } },
            { "h-b", { trigger_id = "post-user-login", form_id = "form-b" } },
            { "h-c", { trigger_id = "post-user-registration", code_id = "hc_c", priority = 5 } },
            { "h-d", { trigger_id = "post-user-login", template_id = "account-linking", priority = 1 } },
            { "h-e", { trigger_id = "pre-user-registration", url = "https://e.example", priority = -3, enabled = true } },
            { "h-f", { trigger_id = "post-user-login", page_id = "impersonate" } },
            { "h-g", { trigger_id = "post-user-login", url = "https://g.example", priority = 5, synchronous = true } },
        }
        local ORDER = { "h-c", "h-g", "h-a", "h-d", "h-e", "h-b", "h-f" }

        setup(function()
            t = fx.tenant()
            for i, d in ipairs(DEFS) do
                fx.set_now(T0 + i * 1000)
                local h = { hook_id = d[1] }
                for k, v in pairs(d[2]) do h[k] = v end
                hooks.create(t, h)
            end
            fx.reset_clock()
            hooks.create(fx.tenant(), { hook_id = "h-a", trigger_id = "post-user-login", url = "other tenant" })
        end)

        it("orders by priority descending (absent last), then created_at, with one Query", function()
            local res, ops = fx.ops(function() return hooks.list(t) end)
            assert.same({ "Query" }, ops)
            assert.same(ORDER, fx.ids(res.hooks, "hook_id"))
            assert.equal(0, res.start)
            assert.equal(50, res.limit)
            assert.equal(7, res.length)
            assert.is_nil(res.total)
            assert.is_nil(res.next)
            assert.is_true(core.is_array(res.hooks))
            assert.same(hooks.get(t, "h-g"), res.hooks[2])
        end)

        it("answers AuthHero's trigger listing with one Query", function()
            local res, ops = fx.ops(function()
                return hooks.list(t, { q = "trigger_id:post-user-login", per_page = 1000, include_totals = true })
            end)
            assert.same({ "Query" }, ops)
            assert.same({ "h-g", "h-a", "h-d", "h-b", "h-f" }, fx.ids(res.hooks, "hook_id"))
            assert.equal(5, res.total)
            assert.equal(5, res.length)
            assert.equal(1000, res.limit)
            res = hooks.list(t, { q = 'trigger_id:"post-user-login" enabled:true' })
            assert.same({ "h-a" }, fx.ids(res.hooks, "hook_id"))
        end)

        it("filters with q", function()
            local function ids(q) return fx.ids(hooks.list(t, { q = q }).hooks, "hook_id") end
            assert.same({ "h-a", "h-e" }, ids("enabled:true"))
            assert.same({ "h-c", "h-g", "h-d", "h-b", "h-f" }, ids("enabled:false"))
            assert.same({ "h-g" }, ids("synchronous:true"))
            assert.same({ "h-c", "h-g" }, ids("priority:>=5"))
            assert.same({ "h-e" }, ids("priority:<0"))
            assert.same({ "h-b", "h-f" }, ids("-_exists_:priority"))
            assert.same({ "h-b" }, ids("form_id:form-b"))
            assert.same({ "h-c" }, ids("code_id:hc_c"))
            assert.same({ "h-f" }, ids("page_id:impersonate"))
            assert.same({ "h-d" }, ids("template_id:account-linking"))
            assert.same({ "h-g", "h-a", "h-e" }, ids("_exists_:url"))
            assert.same({ "h-a" }, ids("hook_id:h-a"))
            assert.same({ "h-g", "h-e" }, ids('url:"https://g.example" OR url:"https://e.example"'))
            assert.same({ "h-a" }, ids("a.example"))           -- free text: url substring
            assert.same({ "h-b" }, ids("form-b"))              -- form_id
            assert.same({ "h-d" }, ids("linking"))             -- template_id
            assert.same({ "h-c" }, ids("hc_"))                 -- code_id
            assert.same({}, ids("nothing-like-this"))
            assert.same({ "h-c", "h-e" }, ids("-trigger_id:post-user-login"))
        end)

        it("pages by offset with totals, walks by cursor, sorts on request", function()
            local p = hooks.list(t, { page = 1, per_page = 3, include_totals = true })
            assert.same({ "h-d", "h-e", "h-b" }, fx.ids(p.hooks, "hook_id"))
            assert.equal(3, p.start)
            assert.equal(3, p.limit)
            assert.equal(7, p.total)
            assert.equal(7, p.length)
            p = hooks.list(t, { page = 2, per_page = 3 })
            assert.same({ "h-f" }, fx.ids(p.hooks, "hook_id"))
            assert.equal(1, p.length)
            assert.equal(0, #hooks.list(t, { page = 5, per_page = 3 }).hooks)

            local walked, pages = fx.keyset_walk(function(o) return hooks.list(t, o) end, "hooks", "hook_id", 2)
            assert.same(ORDER, walked)
            assert.equal(4, pages)
            local first = hooks.list(t, { take = 3, q = "enabled:false" })
            assert.same({ "h-c", "h-g", "h-d" }, fx.ids(first.hooks, "hook_id"))
            assert.same({ "h-b", "h-f" }, fx.ids(hooks.list(t, { take = 3, q = "enabled:false", from = first.next }).hooks,
                "hook_id"))
            -- a cursor of another query, another tenant, or garbage restarts the listing
            assert.same({ "h-c", "h-g", "h-a" }, fx.ids(hooks.list(t, { take = 3, from = first.next }).hooks, "hook_id"))
            assert.same({ "h-c", "h-g", "h-a" }, fx.ids(hooks.list(t, { take = 3, from = "!!garbage" }).hooks, "hook_id"))
            local other = hooks.list(fx.tenant(), { take = 1, from = hooks.list(t, { take = 1 }).next })
            assert.same({}, other.hooks)

            local s = hooks.list(t, { sort = { sort_by = "created_at", sort_order = "desc" } })
            assert.same({ "h-g", "h-f", "h-e", "h-d", "h-c", "h-b", "h-a" }, fx.ids(s.hooks, "hook_id"))
            s = hooks.list(t, { sort = { sort_by = "priority", sort_order = "asc" } })
            assert.same({ "h-e", "h-a", "h-d", "h-c", "h-g", "h-b", "h-f" }, fx.ids(s.hooks, "hook_id"))
            s = hooks.list(t, { sort = { sort_by = "trigger_id", sort_order = "asc" }, per_page = 2 })
            assert.same({ "h-g", "h-a" }, fx.ids(s.hooks, "hook_id"))
            -- an unknown sort_by is ignored (SQL parity); keyset ignores sort
            assert.same(ORDER, fx.ids(hooks.list(t, { sort = { sort_by = "url", sort_order = "asc" } }).hooks, "hook_id"))
            assert.same({ "h-c", "h-g" }, fx.ids(hooks.list(t, { take = 2, sort = { sort_by = "created_at",
                sort_order = "desc" } }).hooks, "hook_id"))
        end)

        it("an empty tenant lists nothing", function()
            local e = hooks.list(fx.tenant(), { include_totals = true })
            assert.same({}, e.hooks)
            assert.equal(0, e.total)
            assert.equal(0, e.length)
        end)
    end)

    it("keeps hostile ids and tenants apart", function()
        local base = fx.tenant()
        local evil = base .. "#HOOK#victim"
        hooks.create(base, { hook_id = "victim", trigger_id = "post-user-login", url = "base" })
        hooks.create(evil, { hook_id = "x", trigger_id = "post-user-login", url = "evil" })
        assert.same({ "victim" }, fx.ids(hooks.list(base).hooks, "hook_id"))
        assert.same({ "x" }, fx.ids(hooks.list(evil).hooks, "hook_id"))
        assert.is_nil(hooks.get(evil, "victim"))
        assert.is_false(hooks.remove(evil, "victim"))
        assert.is_table(hooks.get(base, "victim"))

        local h = fx.tenant("t%#")
        local weird = { "h#1", "h%231", "h|1", "ħ#%", "HOOK#h" }
        for _, id in ipairs(weird) do hooks.create(h, { hook_id = id, trigger_id = "post-user-login", url = "u-" .. id }) end
        for _, id in ipairs(weird) do assert.equal("u-" .. id, hooks.get(h, id).url) end
        assert.equal("HOOK#h%231", raw(h, "h#1").SK)
        fx.raises(409, "Conflict", hooks.create, h, { hook_id = "h#1", trigger_id = "post-user-login", url = "again" })
        assert.is_true(hooks.update(h, "h%231", { url = "changed" }))
        assert.equal("u-h#1", hooks.get(h, "h#1").url)
        assert.is_true(hooks.remove(h, "h#1"))
        assert.is_table(hooks.get(h, "h%231"))
        assert.equal(4, hooks.list(h, { include_totals = true }).total)
        assert.same({ "h%231" }, fx.ids(hooks.list(h, { q = 'hook_id:"h%231"' }).hooks, "hook_id"))
    end)
end)
