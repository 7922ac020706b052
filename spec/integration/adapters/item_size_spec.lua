-- The 400 KB item limit measured the way DynamoDB measures it (contract §9.3 #15, core.item_size)
-- against DynamoDB Local: a quote-heavy app_metadata whose JSON text is far over 400 KB is stored
-- when the item is within the limit, an item exactly at 409600 bytes is accepted by DynamoDB Local,
-- and one byte more is a 400 ValidationError before any request. Branding's merge is checked too.
local fx = require "support.adapters"
local core = require "authhero.aws.core"
local schema = require "authhero.aws.schema"

local keys = schema.keys
local LIMIT = 400 * 1024

describe("item size (DynamoDB's measure)", function()
    local A, t

    setup(function()
        A = fx.adapters()
        t = fx.tenant("size")
    end)

    local function user(id, meta)
        return { user_id = id, connection = "Username-Password-Authentication", provider = "auth2",
            app_metadata = meta }
    end

    it("stores a ~300 KB quote-heavy app_metadata (about 600 KB as JSON text) and reads it back", function()
        local meta = { note = string.rep('"', 100 * 1024), more = string.rep('\\"', 25 * 1024) }
        local created = A.users.create(t, user("auth2|quotes", meta))
        assert.same(meta, created.app_metadata)
        local item = fx.raw_get(keys.user(t, "auth2|quotes"))
        local size = core.item_size(item)
        assert.is_true(size > 290 * 1024 and size < LIMIT, "item is " .. size .. " bytes")
        -- what the old check measured: the marshalled JSON text, far over the limit
        assert.is_true(#core.marshal_item(item) > 550 * 1024)
        assert.same(meta, A.users.get(t, "auth2|quotes").app_metadata)
    end)

    it("accepts an item of exactly 409600 bytes and refuses one byte more before any request", function()
        -- measure a probe user, then fill a user of the same shape (ids of one length) up to the limit
        A.users.create(t, user("auth2|probe-1", { q = string.rep('"', 1000), p = "" }))
        local probe = core.item_size(fx.raw_get(keys.user(t, "auth2|probe-1")))
        local room = LIMIT - probe -- bytes to add: '"' adds 2 stored bytes (\"), "x" adds 1
        local quotes = 1000 + math.floor(room / 2)
        local xs = room % 2
        A.users.create(t, user("auth2|exact-1", { q = string.rep('"', quotes), p = string.rep("x", xs) }))
        local item = fx.raw_get(keys.user(t, "auth2|exact-1"))
        assert.equals(LIMIT, core.item_size(item))
        assert.equals(quotes, #A.users.get(t, "auth2|exact-1").app_metadata.q)

        local err = fx.rejects(A.users.create, t, user("auth2|above-1",
            { q = string.rep('"', quotes), p = string.rep("x", xs + 1) }))
        assert.matches("409601 bytes", err.message)
        assert.is_nil(A.users.get(t, "auth2|above-1"))
        -- DynamoDB Local agrees: the same item written past the adapter is refused by it
        local over = core.json_decode(core.json_encode(item))
        over.PK, over.SK = keys.user(t, "auth2|above-1").PK, keys.user(t, "auth2|above-1").SK
        over.user_id = "auth2|above-1"
        over.app_metadata = over.app_metadata .. "x"
        assert.equals(LIMIT + 1, core.item_size(over))
        local ok, raw = pcall(fx.raw_put, over)
        assert.is_false(ok)
        assert.equals("ValidationException", raw.code)
        assert.matches("size", raw.message)
    end)

    it("branding: a large quote-heavy value is accepted, one over the limit is a 400 before any request", function()
        local big = { primary = "#000000", note = string.rep('"', 150 * 1024) }
        A.branding.set(t, { colors = big })
        assert.same(big, A.branding.get(t).colors)
        local item = fx.raw_get(keys.branding(t))
        assert.is_true(core.item_size(item) < LIMIT)
        local huge = { primary = "#000000", note = string.rep('"', 205 * 1024) }
        local err = fx.rejects(A.branding.set, t, { colors = huge })
        assert.matches("bytes as an item", err.message)
        assert.same(big, A.branding.get(t).colors)
    end)
end)
