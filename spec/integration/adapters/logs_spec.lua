-- logs (contract §5.11) against DynamoDB Local: the record and its storage (JSON text, flattened
-- location, truncation), the GSI1 day buckets, retention via the injected clock, listing newest
-- first over several days with date ranges, both pagings and q (AuthHero's user-id OR form too).
local fx = require "support.adapters"
local core = require "authhero.aws.core"
local util = require "authhero.aws.util"
local schema = require "authhero.aws.schema"
local store = require "authhero.aws.store"

local DAY, HOUR = 86400 * 1000, 3600 * 1000
-- "now" of every test: 20:00 UTC of today (real days, so DynamoDB Local never sees these expired)
local NOW = math.floor(core.now() * 1000 / DAY) * DAY + 20 * HOUR
local function iso(ms) return util.iso(ms) end
local function secs(ms) return math.floor(ms / 1000) end

local function raw(t, id) return fx.raw_get(schema.keys.log(t, id)) end

-- Runs fn and returns its result plus the DynamoDB operations it sent, in order (a Query with
-- Select COUNT as "Query:COUNT").
local function ops_of(fn)
    return fx.ops(fn, function(op, p) return op .. (p.Select == "COUNT" and ":COUNT" or "") end)
end
local count = fx.count

describe("logs", function()
    local a, logs

    setup(function()
        a = fx.adapters()
        logs = a.logs
    end)
    before_each(function() fx.set_now(NOW) end)
    after_each(function() fx.reset_clock() end)

    describe("create and get", function()
        it("stores a minimal log with a generated id, now as date, its day bucket and ttl", function()
            local t = fx.tenant()
            local l = logs.create(t, { type = "s", isMobile = false })
            assert.equal(21, #l.log_id)
            assert.same({ log_id = l.log_id, type = "s", isMobile = false, date = iso(NOW) }, l)
            assert.same(l, logs.get(t, l.log_id))
            assert.same(l, logs:get(t, l.log_id))
            local it = raw(t, l.log_id)
            assert.equal("LOG", it.entityType)
            assert.equal(t, it.tenant_id)
            assert.equal(core.key("TENANT", t), it.PK)
            assert.equal("LOG#" .. l.log_id, it.SK)
            assert.equal(core.key("TENANT", t, "LOG", iso(NOW):sub(1, 10)), it.GSI1PK)
            assert.equal(iso(NOW) .. "#" .. l.log_id, it.GSI1SK)
            assert.equal(secs(NOW) + 30 * 86400, it.ttl)
            assert.equal(iso(NOW), it.created_at)
            assert.is_nil(logs.get(t, "nope"))
            assert.is_nil(logs.get(fx.tenant(), l.log_id))
        end)

        it("stores every field; details and auth0_client as JSON text, location_info as six attributes", function()
            local t = fx.tenant()
            local full = {
                log_id = "full-1", type = "fp", date = "2030-01-02T03:04:05+02:00", isMobile = true,
                description = "Wrong password", ip = "192.0.2.7", user_agent = "Mozilla/5.0", user_id = "auth2|u1",
                user_name = "ada@example.com", connection = "Username-Password-Authentication", connection_id = "con_1",
                client_id = "cl_1", client_name = "App", audience = "https://api", scope = "openid profile",
                strategy = "auth2", strategy_type = "database", hostname = "login.example.com",
                details = { request = { method = "POST", path = "/u/login", body = { a = core.null } }, n = { 1, 2 } },
                auth0_client = { name = "auth0.js", version = "9.0.0", env = { node = "20" } },
                location_info = { country_code = "SE", city_name = "Malmö", latitude = "55.6", longitude = "13.0",
                    time_zone = "Europe/Stockholm", continent_code = "EU" },
                unknown = "dropped", tenant_id = "other", created_at = "1999-01-01T00:00:00Z",
            }
            fx.set_now(secs(util.parse_iso("2030-01-02T01:04:05Z")) * 1000) -- so the log is not expired
            local l = logs.create(t, full)
            local want = util.shallow_copy(full)
            want.date = "2030-01-02T01:04:05.000Z"
            want.unknown, want.tenant_id, want.created_at = nil, nil, nil
            assert.same(want, l)
            assert.same(want, logs.get(t, "full-1"))
            assert.equal(core.null, logs.get(t, "full-1").details.request.body.a)
            local it = raw(t, "full-1")
            assert.equal("string", type(it.details))
            assert.same(full.details, core.json_decode(it.details))
            assert.equal("string", type(it.auth0_client))
            assert.is_nil(it.location_info)
            assert.equal("SE", it.country_code)
            assert.equal("Malmö", it.city_name)
            assert.equal("EU", it.continent_code)
            assert.is_nil(it.unknown)
            assert.equal(t, it.tenant_id)
            assert.equal(core.key("TENANT", t, "LOG", "2030-01-02"), it.GSI1PK)
            assert.equal("2030-01-02T01:04:05.000Z#full-1", it.GSI1SK)
            assert.equal(secs(util.parse_iso("2030-01-02T01:04:05Z")) + 30 * 86400, it.ttl)
        end)

        it("cuts user_agent and description to 256 characters and details' JSON text to 8192", function()
            local t = fx.tenant()
            local l = logs.create(t, { log_id = "cut", type = "s", isMobile = false, user_agent = string.rep("u", 300),
                description = string.rep("é", 300), ip = string.rep("i", 300),
                details = { text = string.rep("x", 9000) } })
            assert.equal(string.rep("u", 256), l.user_agent)
            assert.equal(string.rep("é", 256), l.description) -- characters, not bytes
            assert.equal(string.rep("i", 300), l.ip)          -- other fields are kept whole
            -- details longer than 8192 characters of JSON read back as the first 8192 characters of
            -- that text (what the SQL adapter returns), and are stored as valid JSON
            local cut = '{"text":"' .. string.rep("x", 8192 - 9)
            assert.equal(cut, l.details)
            assert.same(l, logs.get(t, "cut"))
            assert.equal(core.json_encode(cut), raw(t, "cut").details)
            -- exactly 8192 is kept as it is; multibyte text is cut on character boundaries
            local exact = { text = string.rep("y", 8192 - 11) }
            assert.equal(8192, #core.json_encode(exact))
            assert.same(exact, logs.create(t, { log_id = "exact", type = "s", isMobile = false, details = exact }).details)
            local wide = logs.create(t, { log_id = "wide", type = "s", isMobile = false,
                details = { string.rep("ж", 9000) } }).details
            assert.equal('["' .. string.rep("ж", 8190), wide)
            assert.same(wide, logs.get(t, "wide").details)
        end)

        it("keeps details of any JSON kind", function()
            local t = fx.tenant()
            for i, d in ipairs({ "just text", { 1, "two" }, 42, true, {} }) do
                local l = logs.create(t, { log_id = "d" .. i, type = "i", isMobile = false, details = d })
                assert.same(d, l.details)
                assert.same(d, logs.get(t, "d" .. i).details)
            end
            assert.is_true(core.is_array(logs.get(t, "d2").details))
            assert.is_nil(logs.create(t, { log_id = "dn", type = "i", isMobile = false, details = core.null }).details)
        end)

        it("normalizes date and files the log under that date's day", function()
            local t = fx.tenant()
            local l = logs.create(t, { log_id = "tz", type = "s", isMobile = false, date = iso(NOW - 2 * DAY):sub(1, 10)
                .. "T23:30:00-03:00" })
            assert.equal(iso(NOW - DAY):sub(1, 10) .. "T02:30:00.000Z", l.date)
            assert.equal(core.key("TENANT", t, "LOG", iso(NOW - DAY):sub(1, 10)), raw(t, "tz").GSI1PK)
        end)

        it("reads rows other tools wrote: text details, partial location, numeric isMobile", function()
            local t = fx.tenant()
            fx.raw_put({ PK = core.key("TENANT", t), SK = "LOG#up", entityType = "LOG", tenant_id = t, log_id = "up",
                type = "s", date = iso(NOW), isMobile = 1, details = '{"cut":"abc', city_name = "Lund" })
            fx.raw_put({ PK = core.key("TENANT", t), SK = "LOG#up2", entityType = "LOG", tenant_id = t, log_id = "up2",
                type = "f", date = iso(NOW), details = { native = true }, country_code = "DK",
                auth0_client = { name = "x", version = "1" } })
            -- no country_code: no location_info (and the loose attribute is not a log field)
            assert.same({ log_id = "up", type = "s", date = iso(NOW), isMobile = true, details = '{"cut":"abc' },
                logs.get(t, "up"))
            assert.same({ log_id = "up2", type = "f", date = iso(NOW), isMobile = false, details = { native = true },
                auth0_client = { name = "x", version = "1" },
                location_info = { country_code = "DK", city_name = "", latitude = "", longitude = "", time_zone = "",
                    continent_code = "" } }, logs.get(t, "up2"))
        end)

        it("409 when the log id is taken; one of several racing processes wins", function()
            local t = fx.tenant()
            logs.create(t, { log_id = "dup", type = "s", isMobile = false, description = "first" })
            local e = fx.raises(409, "Conflict", logs.create, t, { log_id = "dup", type = "f", isMobile = false })
            -- AuthHero's outbox recognizes a re-delivered log by this text and skips it
            assert.equal("Log already exists (UNIQUE constraint failed: logs.log_id)", e.message)
            assert.equal("first", logs.get(t, "dup").description)

            fx.reset_clock()
            local out = fx.race(5, string.format([[function(adapters, i)
                return "ok " .. adapters.logs.create(%q, { log_id = "raced", type = "s", isMobile = false,
                    description = "p" .. i }).description
            end]], t))
            local wins, winner = 0, nil
            for _, o in ipairs(out) do
                if o:match("^ok ") then
                    wins = wins + 1
                    winner = o:sub(4)
                end
            end
            assert.equal(1, wins, table.concat(out, " | "))
            assert.equal(4, count(out, "error: Conflict"), table.concat(out, " | "))
            assert.equal(winner, logs.get(t, "raced").description)
        end)

        it("400 before any request on invalid input", function()
            local t = fx.tenant()
            local function ok(extra)
                local l = { type = "s", isMobile = false }
                for k, v in pairs(extra) do l[k] = v end
                return l
            end
            fx.rejects(logs.create, nil, ok({}))
            fx.rejects(logs.create, t, nil)
            fx.rejects(logs.create, t, { isMobile = false })
            fx.rejects(logs.create, t, ok({ type = "" }))
            fx.rejects(logs.create, t, ok({ type = "not_a_log_type" }))
            fx.rejects(logs.create, t, { type = "s" })
            fx.rejects(logs.create, t, ok({ isMobile = "false" }))
            fx.rejects(logs.create, t, ok({ isMobile = core.null }))
            fx.rejects(logs.create, t, ok({ date = "yesterday" }))
            fx.rejects(logs.create, t, ok({ date = 1700000000 }))
            fx.rejects(logs.create, t, ok({ date = "2024-02-30T00:00:00Z" }))
            fx.rejects(logs.create, t, ok({ ip = 1 }))
            fx.rejects(logs.create, t, ok({ user_id = {} }))
            fx.rejects(logs.create, t, ok({ log_id = 5 }))
            fx.rejects(logs.create, t, ok({ log_id = "" }))
            fx.rejects(logs.create, t, ok({ log_id = string.rep("l", 1000) })) -- GSI1SK past 1024 bytes
            fx.rejects(logs.create, t, ok({ auth0_client = { name = "x" } }))
            fx.rejects(logs.create, t, ok({ auth0_client = "x" }))
            fx.rejects(logs.create, t, ok({ auth0_client = { name = "x", version = "1", env = "node" } }))
            fx.rejects(logs.create, t, ok({ location_info = { country_code = "SWE" } }))
            fx.rejects(logs.create, t, ok({ location_info = { city_name = "Lund" } }))
            fx.rejects(logs.create, t, ok({ location_info = { country_code = "SE", latitude = 55.6 } }))
            fx.rejects(logs.create, t, ok({ location_info = "SE" }))
            fx.rejects(logs.create, t, ok({ details = { f = print } }))
            fx.rejects(logs.get, t, nil)
            fx.rejects(logs.get, nil, "x")
            fx.rejects(logs.list, t, { q = "foo:bar" })
            fx.rejects(logs.list, t, { q = "details:x" })
            fx.rejects(logs.list, t, { q = 1 })
            fx.rejects(logs.list, t, { from_date = "yesterday" })
            fx.rejects(logs.list, t, { to_date = {} })
            fx.rejects(logs.list, t, { per_page = 2.5 })
            fx.rejects(logs.list, t, { page = -1 })
            fx.rejects(logs.list, t, { page = 1000, per_page = 100 })
            fx.rejects(logs.list, t, { take = "3" })
            fx.rejects(logs.list, t, 7)
            local before = fx.requests()
            assert.is_nil(logs.get(t, string.rep("l", 1100)))
            assert.equal(before, fx.requests())
        end)

        it("treats a log past its retention as gone", function()
            local t = fx.tenant()
            logs.create(t, { log_id = "old", type = "s", isMobile = false, date = iso(NOW - 29 * DAY - 10 * HOUR) })
            assert.is_table(logs.get(t, "old"))
            fx.set_now(NOW + 14 * HOUR - 1000) -- one second before its ttl
            assert.is_table(logs.get(t, "old"))
            assert.equal(1, logs.list(t).length)
            fx.set_now(NOW + 14 * HOUR) -- ttl = date + 30 days: expired at that second
            assert.is_nil(logs.get(t, "old"))
            assert.equal(0, logs.list(t, { include_totals = true }).total)
            assert.same({}, logs.list(t, { take = 5 }).logs)
            assert.same({}, logs.list(t, { q = "log_id:old" }).logs)
            -- the expired id may be taken again
            assert.equal("s", logs.create(t, { log_id = "old", type = "s", isMobile = false }).type)
        end)

        it("takes the retention period from ctx.log_retention_days", function()
            local ctx = store.new(fx.client(), { tableName = fx.table_name(), now = fx.now_ms })
            ctx.log_retention_days = 7
            local short = require("authhero.aws.adapters.logs")(ctx)
            local t = fx.tenant()
            short.create(t, { log_id = "week", type = "s", isMobile = false, date = iso(NOW - 6 * DAY) })
            short.create(t, { log_id = "older", type = "s", isMobile = false, date = iso(NOW - 8 * DAY) })
            assert.equal(secs(NOW - 6 * DAY) + 7 * 86400, raw(t, "week").ttl)
            assert.is_nil(short.get(t, "older"))
            assert.same({ "week" }, fx.ids(short.list(t, { from_date = 0 }).logs, "log_id"))
            -- the stored ttl decides, whichever adapter reads; the default adapters keep new logs 30 days
            assert.same({ "week" }, fx.ids(logs.list(t).logs, "log_id"))
            logs.create(t, { log_id = "month", type = "s", isMobile = false, date = iso(NOW - 8 * DAY) })
            assert.equal(secs(NOW - 8 * DAY) + 30 * 86400, raw(t, "month").ttl)
            assert.same({ "week" }, fx.ids(short.list(t).logs, "log_id")) -- its horizon is 7 days back
            assert.same({ "week", "month" }, fx.ids(logs.list(t).logs, "log_id"))
        end)
    end)

    describe("list", function()
        local t
        -- newest first; L4 lies half a second into its second (to_date is inclusive to .999)
        local DEFS = {
            { "L1", NOW - 1 * HOUR, "s", "auth2|a", { ip = "10.0.0.1", description = "Login ok for alice@example.com" } },
            { "L2", NOW - 2 * HOUR, "f", "auth2|b", { ip = "10.0.0.2", description = "Wrong password" } },
            { "L3", NOW - 3 * HOUR, "s", "auth2|c", { ip = "10.0.1.3" } },
            { "L4", NOW - DAY + 500, "s", "auth2|a", {} },
            { "L5", NOW - DAY - HOUR, "fp", "auth2|a", { description = "Password change failed" } },
            { "L6", NOW - 3 * DAY, "f", "auth2|b", { location_info = { country_code = "SE", city_name = "Lund",
                latitude = "55.7", longitude = "13.2", time_zone = "Europe/Stockholm", continent_code = "EU" } } },
            { "L7", NOW - 3 * DAY - 5 * HOUR, "ss", "auth2|c", { client_id = "cl_1" } },
            { "L8", NOW - 10 * DAY, "s", "auth2|a", {} },
            { "L9", NOW - 20 * DAY, "f", "auth2|b", {} },
            { "L10", NOW - 28 * DAY, "s", "auth2|c", {} },
        }
        local ALL = { "L1", "L2", "L3", "L4", "L5", "L6", "L7", "L8", "L9", "L10" }
        local function ids(res) return fx.ids(res.logs, "log_id") end

        setup(function()
            t = fx.tenant()
            for _, d in ipairs(DEFS) do
                local l = { log_id = d[1], date = iso(d[2]), type = d[3], user_id = d[4], isMobile = false }
                for k, v in pairs(d[5]) do l[k] = v end
                logs.create(t, l)
            end
            logs.create(fx.tenant(), { log_id = "L1", type = "s", isMobile = false, user_id = "auth2|a" })
        end)

        it("lists newest first across the day buckets", function()
            local res = logs.list(t)
            assert.same(ALL, ids(res))
            assert.equal(0, res.start)
            assert.equal(50, res.limit)
            assert.equal(10, res.length)
            assert.is_nil(res.total)
            assert.is_nil(res.next)
            assert.is_true(core.is_array(res.logs))
            assert.same(logs.get(t, "L6"), res.logs[6])
            assert.same({ country_code = "SE", city_name = "Lund", latitude = "55.7", longitude = "13.2",
                time_zone = "Europe/Stockholm", continent_code = "EU" }, res.logs[6].location_info)
        end)

        it("reads only what a first page needs", function()
            local res, ops = ops_of(function() return logs.list(t, { per_page = 2 }) end)
            assert.same({ "L1", "L2" }, ids(res))
            assert.same({ "Query" }, ops) -- today's bucket holds enough
            res, ops = ops_of(function() return logs.list(t, { per_page = 4 }) end)
            assert.same({ "L1", "L2", "L3", "L4" }, ids(res))
            assert.same({ "Query", "Query" }, ops)
        end)

        it("pages by offset; with include_totals counts the rest with Select COUNT", function()
            local p = logs.list(t, { page = 1, per_page = 3 })
            assert.same({ "L4", "L5", "L6" }, ids(p))
            assert.equal(3, p.start)
            assert.equal(3, p.limit)
            assert.equal(3, p.length)
            assert.same({ "L10" }, ids(logs.list(t, { page = 3, per_page = 3 })))
            assert.same({}, ids(logs.list(t, { page = 4, per_page = 3 })))
            local res, ops = ops_of(function() return logs.list(t, { page = 0, per_page = 2, include_totals = true }) end)
            assert.same({ "L1", "L2" }, ids(res))
            assert.equal(10, res.total)
            assert.equal(10, res.length)
            assert.equal("Query", ops[1])
            assert.equal(#ops - 1, count(ops, "Query:COUNT"))
            -- with q, matches are counted as they are read
            res = logs.list(t, { q = "type:s", per_page = 2, include_totals = true })
            assert.same({ "L1", "L3" }, ids(res))
            assert.equal(5, res.total)
        end)

        it("sorts by date ascending on request (other sorts are ignored)", function()
            assert.same({ "L10", "L9", "L8", "L7" }, ids(logs.list(t, { per_page = 4,
                sort = { sort_by = "date", sort_order = "asc" } })))
            assert.same({ "L6", "L5", "L4", "L3" }, ids(logs.list(t, { page = 1, per_page = 4,
                sort = { sort_by = "date", sort_order = "asc" }, include_totals = true })))
            assert.same(ALL, ids(logs.list(t, { sort = { sort_by = "date", sort_order = "desc" } })))
            assert.same(ALL, ids(logs.list(t, { sort = { sort_by = "type", sort_order = "asc" } })))
        end)

        it("walks every log once by cursor, newest first, ignoring sort", function()
            local walked, pages = fx.keyset_walk(function(o) return logs.list(t, o) end, "logs", "log_id", 3,
                function(page)
                    assert.equal(0, page.start)
                    assert.equal(3, page.limit)
                    assert.equal(#page.logs, page.length)
                    assert.is_nil(page.total)
                end)
            assert.same(ALL, walked)
            assert.equal(4, pages)
            -- the last full page hands out no cursor when nothing follows
            local last = logs.list(t, { take = 10 })
            assert.same(ALL, ids(last))
            assert.is_nil(last.next)
            local sorted = fx.keyset_walk(function(o)
                o.sort = { sort_by = "date", sort_order = "asc" }
                return logs.list(t, o)
            end, "logs", "log_id", 4)
            assert.same(ALL, sorted)
            local ones = fx.keyset_walk(function(o)
                o.q = "user_id:auth2|a"
                return logs.list(t, o)
            end, "logs", "log_id", 1)
            assert.same({ "L1", "L4", "L5", "L8" }, ones)
        end)

        it("restarts on a cursor that is malformed, foreign or forged", function()
            local first = logs.list(t, { take = 3 })
            assert.same({ "L1", "L2", "L3" }, ids(first))
            assert.same({ "L4", "L5", "L6" }, ids(logs.list(t, { take = 3, from = first.next })))
            local restart = { "L1", "L2", "L3" }
            assert.same(restart, ids(logs.list(t, { take = 3, from = "%%%" })))
            assert.same(restart, ids(logs.list(t, { take = 3, from = util.b64url("{not json") })))
            -- bound to its query: another q, another range or another tenant restarts
            local s_first = logs.list(t, { take = 2, q = "type:s" })
            assert.same(restart, ids(logs.list(t, { take = 3, from = s_first.next })))
            assert.same(restart, ids(logs.list(t, { take = 3, from = first.next, to_date = secs(NOW) })))
            local other = fx.tenant()
            logs.create(other, { log_id = "o1", type = "s", isMobile = false })
            assert.same({ "o1" }, ids(logs.list(other, { take = 3, from = first.next })))
            -- forged: the right fingerprint around a key of another bucket or tenant
            local c = core.json_decode(util.unb64url(first.next))
            local forged = { f = c.f, d = c.d, k = util.shallow_copy(c.k) }
            forged.k.GSI1PK = core.key("TENANT", other, "LOG", c.d)
            assert.same(restart, ids(logs.list(t, { take = 3, from = util.b64url(core.json_encode(forged)) })))
            forged = { f = c.f, d = iso(NOW - 5 * DAY):sub(1, 10), k = c.k }
            assert.same(restart, ids(logs.list(t, { take = 3, from = util.b64url(core.json_encode(forged)) })))
            forged = { f = c.f, d = c.d, k = { PK = c.k.PK, SK = c.k.SK, GSI1PK = c.k.GSI1PK, GSI1SK = 5 } }
            assert.same(restart, ids(logs.list(t, { take = 3, from = util.b64url(core.json_encode(forged)) })))
        end)

        it("honours from_date and to_date (epoch seconds, inclusive)", function()
            local function range(f, to, extra)
                local p = { from_date = f and secs(f), to_date = to and secs(to) }
                for k, v in pairs(extra or {}) do p[k] = v end
                return ids(logs.list(t, p))
            end
            assert.same({ "L4", "L5", "L6" }, range(NOW - 3 * DAY, NOW - DAY)) -- L4 at .500 of to_date's second
            assert.same({ "L5", "L6" }, range(NOW - 3 * DAY, NOW - DAY - 1000))
            assert.same({ "L5" }, range(NOW - 3 * DAY + 1000, NOW - DAY - 1000))
            assert.same({ "L8", "L9", "L10" }, range(nil, NOW - 10 * DAY))
            assert.same({ "L1", "L2", "L3", "L4", "L5" }, range(NOW - DAY - HOUR, nil))
            assert.same({ "L2", "L3" }, range(NOW - 3 * HOUR, NOW - 2 * HOUR))
            assert.same({ "L6", "L5", "L4" }, range(NOW - 3 * DAY, NOW - DAY,
                { sort = { sort_by = "date", sort_order = "asc" } }))
            local p = logs.list(t, { from_date = secs(NOW - 20 * DAY), to_date = secs(NOW - DAY), include_totals = true,
                per_page = 2 })
            assert.same({ "L4", "L5" }, ids(p))
            assert.equal(6, p.total)
            assert.same({ "L4", "L5", "L6", "L7", "L8", "L9" }, fx.keyset_walk(function(o)
                o.from_date, o.to_date = secs(NOW - 20 * DAY), secs(NOW - DAY)
                return logs.list(t, o)
            end, "logs", "log_id", 2))
            -- a from_date before the retention horizon reads from the horizon
            local res, ops = ops_of(function() return logs.list(t, { from_date = 0 }) end)
            assert.same(ALL, ids(res))
            assert.equal(31, #ops)
            -- an empty or expired range asks nothing
            res, ops = ops_of(function()
                return logs.list(t, { from_date = secs(NOW), to_date = secs(NOW - HOUR), include_totals = true })
            end)
            assert.same({}, ids(res))
            assert.equal(0, res.total)
            assert.same({}, ops)
            res, ops = ops_of(function() return logs.list(t, { to_date = secs(NOW - 31 * DAY) }) end)
            assert.same({}, ids(res))
            assert.same({}, ops)
            -- a far-future to_date walks no further than tomorrow
            res, ops = ops_of(function() return logs.list(t, { to_date = secs(NOW + 400 * DAY) }) end)
            assert.same(ALL, ids(res))
            assert.equal(32, #ops)
        end)

        it("drops logs past the retention horizon as the clock moves", function()
            fx.set_now(NOW + 5 * DAY)
            local res = logs.list(t, { include_totals = true })
            assert.same({ "L1", "L2", "L3", "L4", "L5", "L6", "L7", "L8", "L9" }, ids(res))
            assert.equal(9, res.total)
            assert.is_nil(logs.get(t, "L10"))
            fx.set_now(NOW - 20 * DAY + 30 * DAY) -- L9's ttl second: its bucket is still walked
            res = logs.list(t, { include_totals = true, per_page = 1 })
            assert.equal(8, res.total)
            assert.same({ "L1", "L2", "L3", "L4", "L5", "L6", "L7", "L8" }, fx.keyset_walk(function(o)
                return logs.list(t, o)
            end, "logs", "log_id", 3))
            assert.same({}, ids(logs.list(t, { q = "type:f", from_date = secs(NOW - 21 * DAY),
                to_date = secs(NOW - 19 * DAY) })))
            fx.set_now(NOW + 40 * DAY)
            assert.equal(0, logs.list(t, { include_totals = true }).total)
        end)

        it("filters with q", function()
            local function q(s) return ids(logs.list(t, { q = s })) end
            assert.same({ "L1", "L3", "L4", "L8", "L10" }, q("type:s"))
            assert.same({ "L1", "L4", "L5", "L8" }, q('user_id:"auth2|a"'))
            assert.same({ "L2", "L5", "L6", "L7", "L9" }, q("-type:s"))
            assert.same({ "L2" }, q("10.0.0.2"))                   -- free text: ip substring
            assert.same({ "L1", "L2" }, q("10.0.0"))
            assert.same({ "L1", "L2", "L3" }, q("10.0."))
            assert.same({ "L1" }, q("alice@example"))              -- free text: description substring
            assert.same({ "L4", "L8" }, q("auth2|a -_exists_:ip -_exists_:description"))
            assert.same({}, q("auth2"))                             -- user_id is exact in free text
            assert.same({ "L2", "L5" }, q("description:assword"))   -- description: substring
            assert.same({ "L6" }, q("country_code:SE"))
            assert.same({ "L6" }, q('time_zone:"Europe/Stockholm"'))
            assert.same({ "L7" }, q("client_id:cl_1"))
            assert.same({ "L1", "L2", "L3" }, q("date:>=" .. iso(NOW - 3 * HOUR)))
            assert.same({ "L9", "L10" }, q("date:<" .. iso(NOW - 19 * DAY)))
            -- grammar: OR binds loosest (s logs, or b's f logs)
            assert.same({ "L1", "L2", "L3", "L4", "L6", "L8", "L9", "L10" }, q('type:s OR user_id:"auth2|b" type:f'))
        end)

        it("reads AuthHero's user-logs query as (user_id OR user_id ...) AND the caller's clauses", function()
            local function q(s) return ids(logs.list(t, { q = s })) end
            assert.same({ "L1", "L2", "L4", "L5", "L6", "L8", "L9" }, q('user_id:"auth2|a" OR user_id:"auth2|b"'))
            assert.same({ "L2", "L6", "L9" }, q('user_id:"auth2|a" OR user_id:"auth2|b" type:f'))
            assert.same({ "L2", "L5", "L6", "L9" }, q('user_id:"auth2|a" OR user_id:"auth2|b" -type:s'))
            assert.same({ "L5" }, q('user_id:"auth2|a" OR user_id:"auth2|b" OR user_id:"auth2|c" type:fp'))
            assert.same({ "L3" }, q('user_id:"auth2|a" OR user_id:"auth2|c" 10.0.1'))
            local p = logs.list(t, { q = 'user_id:"auth2|a" OR user_id:"auth2|b" type:f', per_page = 2,
                include_totals = true })
            assert.same({ "L2", "L6" }, ids(p))
            assert.equal(3, p.total)
        end)

        it("answers log_id with one GetItem", function()
            local res, ops = ops_of(function() return logs.list(t, { q = "log_id:L6" }) end)
            assert.same({ "L6" }, ids(res))
            assert.same({ "GetItem" }, ops)
            assert.same({}, ids(logs.list(t, { q = "log_id:L6 type:s" })))
            assert.same({}, ids(logs.list(t, { q = "log_id:L6", to_date = secs(NOW - 4 * DAY) })))
            assert.same({}, ids(logs.list(t, { q = "log_id:nope" })))
            local p = logs.list(t, { q = "log_id:L6", include_totals = true })
            assert.equal(1, p.total)
            assert.same({ "L6" }, ids(logs.list(t, { q = "log_id:L6", take = 5 })))
        end)
    end)

    it("keeps hostile ids and tenants apart", function()
        local base = fx.tenant()
        local day = iso(NOW):sub(1, 10)
        local evil = base .. "#LOG#" .. day
        logs.create(base, { log_id = "victim", type = "s", isMobile = false })
        logs.create(evil, { log_id = "x", type = "s", isMobile = false })
        assert.same({ "victim" }, fx.ids(logs.list(base).logs, "log_id"))
        assert.same({ "x" }, fx.ids(logs.list(evil).logs, "log_id"))
        assert.is_nil(logs.get(evil, "victim"))
        -- an item of another tenant in base's bucket (never written by the adapters) is not base's
        local yday = iso(NOW - DAY):sub(1, 10)
        fx.raw_put({ PK = core.key("TENANT", evil), SK = "LOG#intruder", entityType = "LOG", tenant_id = evil,
            log_id = "intruder", type = "s", isMobile = false, date = iso(NOW - DAY),
            GSI1PK = core.key("TENANT", base, "LOG", yday), GSI1SK = iso(NOW - DAY) .. "#intruder",
            ttl = secs(NOW) + 86400 })
        assert.same({ "victim" }, fx.ids(logs.list(base).logs, "log_id"))
        assert.same({ "victim" }, fx.ids(logs.list(base, { take = 5 }).logs, "log_id"))
        local p = logs.list(base, { per_page = 1, include_totals = true }) -- the second bucket is counted
        assert.same({ "victim" }, fx.ids(p.logs, "log_id"))
        assert.equal(1, p.total)

        local h = fx.tenant("t%#")
        local weird = { "l#1", "l%231", "l|1", "ł#%", "LOG#l" }
        for i, id in ipairs(weird) do
            logs.create(h, { log_id = id, type = "s", isMobile = false, date = iso(NOW - i * 1000), description = id })
        end
        for _, id in ipairs(weird) do assert.equal(id, logs.get(h, id).description) end
        assert.equal("LOG#l%231", raw(h, "l#1").SK)
        assert.equal(iso(NOW - 1000) .. "#l%231", raw(h, "l#1").GSI1SK)
        assert.equal(core.key("TENANT", h, "LOG", day), raw(h, "l#1").GSI1PK)
        fx.raises(409, "Conflict", logs.create, h, { log_id = "l#1", type = "s", isMobile = false })
        assert.same(weird, fx.ids(logs.list(h).logs, "log_id"))
        assert.same(weird, fx.keyset_walk(function(o) return logs.list(h, o) end, "logs", "log_id", 2))
        assert.same({ "l%231" }, fx.ids(logs.list(h, { q = 'log_id:"l%231"' }).logs, "log_id"))
    end)
end)
