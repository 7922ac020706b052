-- passwords (contract §4.7) against DynamoDB Local: the transactional "one current row" flip,
-- update by id or of the current row, get/list order, validation before any request, and keys
-- that stay inside their user's partition for hostile tenant and user ids.
local fx = require "support.adapters"
local aws = require "authhero.aws"
local schema = require "authhero.aws.schema"

local ISO = "^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$"

local function currents(t, u)
    local n = 0
    for _, it in ipairs(fx.raw_partition(schema.keys.user_partition(t, u))) do
        if it.entityType == "PASSWORD" and it.is_current == true then n = n + 1 end
    end
    return n
end

describe("passwords adapter", function()
    local A, P, t
    local base = 1767225600000 -- 2026-01-01T00:00:00.000Z

    before_each(function()
        A = fx.adapters()
        P = A.passwords
        t = fx.tenant("pw")
        fx.set_now(base)
    end)

    after_each(function()
        fx.reset_clock()
    end)

    describe("create", function()
        it("applies defaults and returns the record as get does", function()
            local p = P.create(t, { user_id = "auth2|u1", password = "hash-1" })
            assert.is_string(p.id)
            assert.equals(21, #p.id)
            assert.equals("auth2|u1", p.user_id)
            assert.equals("hash-1", p.password)
            assert.equals("argon2id", p.algorithm)
            assert.is_true(p.is_current)
            assert.matches(ISO, p.created_at)
            assert.equals(p.created_at, p.updated_at)
            for _, k in ipairs({ "PK", "SK", "entityType", "tenant_id", "GSI1PK", "ttl" }) do assert.is_nil(p[k]) end
            assert.same(p, P.get(t, "auth2|u1"))
        end)

        it("stores the item under the user's partition", function()
            local p = P.create(t, { user_id = "auth2|u1", password = "h", algorithm = "bcrypt" })
            local items = fx.raw_partition(schema.keys.user_partition(t, "auth2|u1"))
            assert.equals(1, #items)
            assert.equals("PASSWORD#" .. p.id, items[1].SK)
            assert.equals("PASSWORD", items[1].entityType)
            assert.equals(t, items[1].tenant_id)
            assert.equals("bcrypt", items[1].algorithm)
        end)

        it("honours the caller's id and importMetadata (id and timestamps win)", function()
            local p = P.create(t, { id = "mine", user_id = "auth2|u1", password = "h" })
            assert.equals("mine", p.id)
            local q = P.create(t, { id = "ignored", user_id = "auth2|u2", password = "h" }, {
                importMetadata = { id = "imp", created_at = "2020-01-02T03:04:05Z", updated_at = "2020-01-03T00:00:00+01:00" },
            })
            assert.equals("imp", q.id)
            assert.equals("2020-01-02T03:04:05.000Z", q.created_at)
            assert.equals("2020-01-02T23:00:00.000Z", q.updated_at)
        end)

        it("409 on an existing id, and the existing row is untouched", function()
            P.create(t, { id = "p1", user_id = "auth2|u1", password = "first" })
            local err = fx.raises(409, "Conflict", P.create, t, { id = "p1", user_id = "auth2|u1", password = "second" })
            assert.matches("already exists", err.message)
            local cur = P.get(t, "auth2|u1")
            assert.equals("first", cur.password)
            assert.is_true(cur.is_current)
            -- also for a non-current row
            fx.raises(409, "Conflict", P.create, t, { id = "p1", user_id = "auth2|u1", password = "x", is_current = false })
            assert.equals(1, #P.list(t, "auth2|u1"))
        end)

        it("a new current row flips every current row in one transaction", function()
            local u = "auth2|flip"
            local p1 = P.create(t, { user_id = u, password = "h1" })
            fx.advance(1)
            local p2 = P.create(t, { user_id = u, password = "h2" })
            fx.advance(1)
            local p3 = P.create(t, { user_id = u, password = "h3" })
            assert.equals(1, currents(t, u))
            assert.equals(p3.id, P.get(t, u).id)
            local list = P.list(t, u)
            assert.same({ p3.id, p2.id, p1.id }, { list[1].id, list[2].id, list[3].id })
            assert.is_false(list[2].is_current)
            assert.is_false(list[3].is_current)
            assert.matches(ISO, list[2].updated_at)
        end)

        it("a concurrent new password between the read and the write: retried, one current row", function()
            local u = "auth2|race"
            P.create(t, { user_id = u, password = "h0" })
            local real, fired = fx.client(), false
            local proxy = setmetatable({}, { __index = function(_, k)
                local v = real[k]
                if type(v) == "function" then return function(_, ...) return v(real, ...) end end
                return v
            end })
            proxy.call = function(_, op, req)
                if op == "TransactWriteItems" and not fired then
                    fired = true
                    fx.advance(1)
                    P.create(t, { user_id = u, password = "racer" })
                    fx.advance(1)
                end
                return real:call(op, req)
            end
            local R = aws.create_adapters(proxy, { tableName = fx.table_name(), now = fx.now_ms })
            local mine = R.passwords.create(t, { user_id = u, password = "mine" })
            assert.equals(1, currents(t, u))
            assert.equals(mine.id, P.get(t, u).id)
            assert.equals(3, #P.list(t, u))
        end)

        it("a non-current row leaves the current one alone", function()
            local u = "auth2|hist"
            local cur = P.create(t, { user_id = u, password = "cur" })
            fx.advance(1)
            local old = P.create(t, { user_id = u, password = "old", is_current = false })
            assert.is_false(old.is_current)
            assert.equals(cur.id, P.get(t, u).id)
            assert.equals(1, currents(t, u))
        end)

        it("400 before any request on invalid input", function()
            fx.rejects(P.create, t, { password = "h" })
            fx.rejects(P.create, t, { user_id = "auth2|u", password = "" })
            fx.rejects(P.create, t, { user_id = "auth2|u" })
            fx.rejects(P.create, t, { user_id = "auth2|u", password = "h", algorithm = 5 })
            fx.rejects(P.create, t, { user_id = "auth2|u", password = "h", is_current = "yes" })
            fx.rejects(P.create, t, { user_id = "auth2|u", password = "h", id = 7 })
            fx.rejects(P.create, t, "not a table")
            fx.rejects(P.create, "", { user_id = "auth2|u", password = "h" })
            fx.rejects(P.create, t, { user_id = "auth2|u", password = "h" },
                { importMetadata = { created_at = "yesterday" } })
        end)

        it("works with a colon call", function()
            local p = P:create(t, { user_id = "auth2|colon", password = "h" })
            assert.equals(p.id, P:get(t, "auth2|colon").id)
        end)
    end)

    describe("get", function()
        it("nil for a user without passwords or with only old ones", function()
            assert.is_nil(P.get(t, "auth2|nobody"))
            P.create(t, { user_id = "auth2|old", password = "h", is_current = false })
            assert.is_nil(P.get(t, "auth2|old"))
        end)

        it("the newest row when several are current (rows written by other tools)", function()
            local u = "auth2|many"
            local k = function(id) return schema.keys.password(t, u, id) end
            local function put(id, created)
                local key = k(id)
                fx.raw_put({ PK = key.PK, SK = key.SK, entityType = "PASSWORD", id = id, user_id = u, password = id,
                    algorithm = "bcrypt", is_current = true, tenant_id = t, created_at = created, updated_at = created })
            end
            put("zz-old", "2025-01-01T00:00:00.000Z")
            put("aa-new", "2025-06-01T00:00:00.000Z")
            put("mm-mid", "2025-03-01T00:00:00.000Z")
            assert.equals("aa-new", P.get(t, u).id)
            -- and a new current row flips all three
            local p = P.create(t, { user_id = u, password = "fresh" })
            assert.equals(1, currents(t, u))
            assert.equals(p.id, P.get(t, u).id)
        end)

        it("ignores other kinds of items in the user partition", function()
            local u = "auth2|roles"
            local pk = schema.keys.user_partition(t, u)
            fx.raw_put({ PK = pk, SK = "USER_ROLE#r1", entityType = "USER_ROLE", is_current = true,
                created_at = "2030-01-01T00:00:00.000Z" })
            fx.raw_put({ PK = pk, SK = "PASSWORD_X", entityType = "OTHER", is_current = true })
            assert.is_nil(P.get(t, u))
            assert.same({}, P.list(t, u))
            local p = P.create(t, { user_id = u, password = "h" })
            assert.equals(p.id, P.get(t, u).id)
            assert.equals(1, #P.list(t, u))
        end)

        it("400 before any request without tenant or user", function()
            fx.rejects(P.get, t, nil)
            fx.rejects(P.get, nil, "auth2|u")
            fx.rejects(P.get, t, "")
        end)
    end)

    describe("update", function()
        it("rewrites the row with that id", function()
            local u = "auth2|upd"
            local p = P.create(t, { user_id = u, password = "h1", algorithm = "bcrypt" })
            fx.advance(5)
            assert.is_true(P.update(t, { id = p.id, user_id = u, password = "h2", algorithm = "argon2id" }))
            local g = P.get(t, u)
            assert.equals(p.id, g.id)
            assert.equals("h2", g.password)
            assert.equals("argon2id", g.algorithm)
            assert.is_true(g.is_current)
            assert.equals(p.created_at, g.created_at)
            assert.is_true(g.updated_at > p.updated_at)
            assert.equals(1, #P.list(t, u)) -- rewrites, never appends
        end)

        it("without an id, rewrites the current row", function()
            local u = "auth2|noid"
            local old = P.create(t, { user_id = u, password = "old" })
            fx.advance(1)
            local cur = P.create(t, { user_id = u, password = "cur" })
            assert.is_true(P.update(t, { user_id = u, password = "cur2" }))
            assert.equals(cur.id, P.get(t, u).id)
            assert.equals("cur2", P.get(t, u).password)
            local list = P.list(t, u)
            assert.equals(old.id, list[2].id)
            assert.equals("old", list[2].password)
        end)

        it("false when the row or the current row does not exist", function()
            assert.is_false(P.update(t, { id = "nope", user_id = "auth2|x", password = "h" }))
            assert.is_false(P.update(t, { user_id = "auth2|x", password = "h" }))
            P.create(t, { user_id = "auth2|y", password = "h", is_current = false })
            assert.is_false(P.update(t, { user_id = "auth2|y", password = "h2" }))
            -- no row was created by the failed updates
            assert.same({}, fx.raw_partition(schema.keys.user_partition(t, "auth2|x")))
            -- the id of another user's row is not found under this user
            local other = P.create(t, { user_id = "auth2|z", password = "h" })
            assert.is_false(P.update(t, { id = other.id, user_id = "auth2|y", password = "evil" }))
            assert.equals("h", P.get(t, "auth2|z").password)
        end)

        it("making an old row current flips the others in the same transaction", function()
            local u = "auth2|back"
            local p1 = P.create(t, { user_id = u, password = "h1" })
            fx.advance(1)
            P.create(t, { user_id = u, password = "h2" })
            assert.is_true(P.update(t, { id = p1.id, user_id = u, is_current = true }))
            assert.equals(1, currents(t, u))
            assert.equals(p1.id, P.get(t, u).id)
            assert.equals("h1", P.get(t, u).password)
            assert.is_false(P.update(t, { id = "missing", user_id = u, is_current = true }))
            assert.equals(1, currents(t, u))
            assert.equals(p1.id, P.get(t, u).id)
        end)

        it("AuthHero's change-password flow: old row not current, then a new current row", function()
            local u = "auth2|change"
            local old = P.create(t, { user_id = u, password = "old-hash", algorithm = "bcrypt" })
            fx.advance(60)
            assert.is_true(P.update(t, { id = old.id, user_id = u, password = old.password, algorithm = old.algorithm,
                is_current = false }))
            assert.is_nil(P.get(t, u))
            local new = P.create(t, { user_id = u, password = "new-hash", algorithm = "argon2id" })
            local cur = P.get(t, u)
            assert.equals(new.id, cur.id)
            assert.equals("new-hash", cur.password)
            local hist = P.list(t, u)
            assert.equals(2, #hist)
            assert.equals(new.id, hist[1].id)
            assert.equals(old.id, hist[2].id)
            assert.is_false(hist[2].is_current)
            assert.equals(1, currents(t, u))
        end)

        it("400 before any request on invalid input", function()
            fx.rejects(P.update, t, { id = "x", password = "h" })
            fx.rejects(P.update, t, "x")
            fx.rejects(P.update, t, { user_id = "auth2|u", id = 3 })
            fx.rejects(P.update, t, { user_id = "auth2|u", is_current = "no" })
            fx.rejects(P.update, t, { user_id = "auth2|u", algorithm = true })
            fx.rejects(P.update, nil, { user_id = "auth2|u" })
        end)
    end)

    describe("list", function()
        it("newest first, at most limit rows", function()
            local u = "auth2|list"
            local ids = {}
            for i = 1, 5 do
                ids[i] = P.create(t, { user_id = u, password = "h" .. i }).id
                fx.advance(1)
            end
            local all = P.list(t, u)
            assert.equals(5, #all)
            for i = 1, 5 do assert.equals(ids[6 - i], all[i].id) end
            local two = P.list(t, u, 2)
            assert.same({ ids[5], ids[4] }, { two[1].id, two[2].id })
            assert.same({}, P.list(t, u, 0))
            assert.equals(5, #P.list(t, u, 100))
            assert.same({}, P.list(t, "auth2|nobody"))
            assert.is_true(aws.array ~= nil)
        end)

        it("returns an array that re-encodes as []", function()
            local core = require "authhero.aws.core"
            assert.equals("[]", core.json_encode(P.list(t, "auth2|empty")))
        end)

        it("400 before any request on a bad limit", function()
            fx.rejects(P.list, t, "auth2|u", -1)
            fx.rejects(P.list, t, "auth2|u", 1.5)
            fx.rejects(P.list, t, "auth2|u", "3")
            fx.rejects(P.list, t, nil)
        end)
    end)

    describe("hostile ids", function()
        it("tenant and user ids with # % | and unicode stay in their own partitions", function()
            -- unescaped, TENANT#a / USER#x#USER#y and TENANT#a#USER#x / USER#y would be one partition
            local ta, tb = t, t .. "#USER#x"
            P.create(ta, { id = "p", user_id = "x#USER#y", password = "A" })
            P.create(tb, { id = "p", user_id = "y", password = "B" })
            assert.equals("A", P.get(ta, "x#USER#y").password)
            assert.equals("B", P.get(tb, "y").password)
            assert.is_nil(P.get(ta, "x"))
            assert.equals(1, #P.list(ta, "x#USER#y"))
            assert.equals(1, #P.list(tb, "y"))

            local weird = "auth2|ü%23#PASSWORD#%|ñ"
            local w = P.create(t, { id = "id#%|é", user_id = weird, password = "W" })
            assert.equals("id#%|é", w.id)
            assert.equals(weird, P.get(t, weird).user_id)
            assert.is_nil(P.get(t, "auth2|ü"))
            assert.is_true(P.update(t, { id = "id#%|é", user_id = weird, password = "W2" }))
            assert.equals("W2", P.get(t, weird).password)
            local items = fx.raw_partition(schema.keys.user_partition(t, weird))
            assert.equals(1, #items)
            assert.equals(weird, items[1].user_id)
            assert.equals("id#%|é", items[1].id)
        end)
    end)
end)
