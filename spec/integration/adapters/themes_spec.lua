-- themes (contract §5.9) against DynamoDB Local: create with AuthHero's id precedence, 409 on a
-- taken id (also under a race), sections checked against AuthHero's theme schema, update replacing
-- whole sections, remove, hostile ids, and the tenant cascade.
local fx = require "support.adapters"
local core = require "authhero.aws.core"
local schema = require "authhero.aws.schema"
local util = require "authhero.aws.util"

local T0 = math.floor(core.now()) * 1000
local ISO0 = util.iso(T0)

-- A complete ThemeInsert (the values of AuthHero's default theme).
local function theme(over)
    local th = {
        displayName = "Default Theme",
        borders = { button_border_radius = 8, button_border_weight = 1, buttons_style = "pill",
            input_border_radius = 8, input_border_weight = 1, inputs_style = "pill", show_widget_shadow = true,
            widget_border_weight = 1, widget_corner_radius = 16 },
        colors = { base_focus_color = "#7D68F4", base_hover_color = "#A091F2", body_text = "#000000",
            captcha_widget_theme = "auto", error = "#FC5A5A", header = "#000000", icons = "#666666",
            input_background = "#FFFFFF", input_border = "#8E8CA0", input_filled_text = "#000000",
            input_labels_placeholders = "#88869F", links_focused_components = "#7D68F4", primary_button = "#7D68F4",
            primary_button_label = "#FFFFFF", secondary_button_border = "#8E8CA0", secondary_button_label = "#000000",
            success = "#36BF76", widget_background = "#FFFFFF", widget_border = "#8E8CA0" },
        fonts = { body_text = { bold = false, size = 100 }, buttons_text = { bold = true, size = 100 },
            font_url = "https://example.com/font.woff2", input_labels = { bold = false, size = 100 },
            links = { bold = true, size = 100 }, links_style = "normal", reference_text_size = 16,
            subtitle = { bold = false, size = 100 }, title = { bold = true, size = 150 } },
        page_background = { background_color = "#F8F9FB", background_image_url = "", page_layout = "center" },
        widget = { logo_url = "", header_text_alignment = "center", logo_height = 36, logo_position = "center",
            social_buttons_layout = "bottom" },
    }
    for k, v in pairs(over or {}) do th[k] = v end
    return th
end

-- the record get returns for theme(over) under id
local function record(id, over, created, updated)
    local r = theme(over)
    r.themeId, r.created_at, r.updated_at = id, created or ISO0, updated or created or ISO0
    return r
end

local function raw(t, id) return fx.raw_get(schema.keys.theme(t, id)) end

describe("themes", function()
    local a, themes

    setup(function()
        a = fx.adapters()
        themes = a.themes
    end)
    before_each(function() fx.set_now(T0) end)
    after_each(function() fx.reset_clock() end)

    it("creates under the given id and reads back the same record", function()
        local t = fx.tenant()
        local th = themes.create(t, theme(), "default")
        assert.same(record("default"), th)
        assert.same(th, themes.get(t, "default"))
        assert.same(th, themes:get(t, "default"))
        for _, k in ipairs({ "PK", "SK", "entityType", "tenant_id" }) do assert.is_nil(th[k], k) end
        local it = raw(t, "default")
        assert.equal("THEME", it.entityType)
        assert.equal("THEME#default", it.SK)
        assert.equal(t, it.tenant_id)
        for _, s in ipairs({ "borders", "colors", "fonts", "page_background", "widget" }) do
            assert.is_string(it[s], s)
            assert.same(theme()[s], core.json_decode(it[s]))
        end
        assert.is_nil(themes.get(t, "other"))
        -- optional logo_placement is kept
        local pb = { background_color = "#000000", background_image_url = "https://x/bg.png", page_layout = "left",
            logo_placement = "chip" }
        assert.same(pb, themes.create(t, theme({ page_background = pb }), "with-placement").page_background)
    end)

    it("takes the id from importMetadata, then themeId, then the theme, else generates one", function()
        local t = fx.tenant()
        local imp = themes.create(t, theme({ themeId = "in-record" }), "positional",
            { importMetadata = { id = "imported", created_at = "2024-05-06T07:08:09+02:00" } })
        assert.equal("imported", imp.themeId)
        assert.equal("2024-05-06T05:08:09.000Z", imp.created_at)
        assert.equal("2024-05-06T05:08:09.000Z", imp.updated_at)
        assert.same(imp, themes.get(t, "imported"))
        assert.is_nil(themes.get(t, "positional"))
        assert.equal("positional", themes.create(t, theme({ themeId = "in-record" }), "positional").themeId)
        assert.equal("in-record", themes.create(t, theme({ themeId = "in-record" })).themeId)
        local gen = themes.create(t, theme(), nil, {})
        assert.matches("^[A-Za-z0-9_-]+$", gen.themeId)
        assert.equal(21, #gen.themeId)
        assert.same(gen, themes.get(t, gen.themeId))
        -- created_at / updated_at / tenant_id in the theme are not taken
        local own = themes.create(t, theme({ created_at = "2001-01-01T00:00:00.000Z", tenant_id = "x" }), "own")
        assert.equal(ISO0, own.created_at)
        assert.equal(t, raw(t, "own").tenant_id)
    end)

    it("409 when the id is taken; the stored theme is unchanged", function()
        local t = fx.tenant()
        themes.create(t, theme(), "dup")
        local e = fx.raises(409, "Conflict", themes.create, t, theme({ displayName = "Other" }), "dup")
        assert.matches("Theme already exists", e.message)
        fx.raises(409, "Conflict", themes.create, t, theme(), nil, { importMetadata = { id = "dup" } })
        assert.equal("Default Theme", themes.get(t, "dup").displayName)
    end)

    it("409 for all but one of several processes creating the same id at once", function()
        local t = fx.tenant()
        themes.create(t, theme(), "seed") -- the racers copy its sections
        local out = fx.race(5, string.format([[function(a, i)
            local th = a.themes.get(%q, "seed")
            th.displayName, th.themeId, th.created_at, th.updated_at = "racer " .. i, nil, nil, nil
            return a.themes.create(%q, th, "raced").displayName
        end]], t, t))
        local winners, conflicts = {}, 0
        for i, o in ipairs(out) do
            if o == "error: Conflict" then conflicts = conflicts + 1 else winners[#winners + 1] = { i, o } end
        end
        assert.equal(1, #winners)
        assert.equal(4, conflicts)
        assert.equal("racer " .. winners[1][1], winners[1][2])
        assert.equal(winners[1][2], themes.get(t, "raced").displayName)
    end)

    it("400 before any request on invalid input", function()
        local t = fx.tenant()
        fx.rejects(themes.create, t, nil, "x")
        fx.rejects(themes.create, nil, theme(), "x")
        fx.rejects(themes.create, t, theme(), "")
        fx.rejects(themes.create, t, theme(), 5)
        fx.rejects(themes.create, t, theme({ displayName = core.null }), "x")
        fx.rejects(themes.create, t, theme({ displayName = 3 }), "x")
        for _, s in ipairs({ "borders", "colors", "fonts", "page_background", "widget" }) do
            fx.rejects(themes.create, t, theme({ [s] = core.null }), "x")
            fx.rejects(themes.create, t, theme({ [s] = "x" }), "x")
            fx.rejects(themes.create, t, theme({ [s] = core.array({}) }), "x")
        end
        local b = theme().borders
        b.buttons_style = "round"
        local e = fx.rejects(themes.create, t, theme({ borders = b }), "x")
        assert.matches("borders.buttons_style", e.message)
        local f = theme().fonts
        f.title = { bold = true, size = "big" }
        e = fx.rejects(themes.create, t, theme({ fonts = f }), "x")
        assert.matches("fonts.title.size", e.message)
        local c = theme().colors
        c.primary_button = nil
        e = fx.rejects(themes.create, t, theme({ colors = c }), "x")
        assert.matches("colors.primary_button", e.message)
        local w = theme().widget
        w.logo_height = "36"
        fx.rejects(themes.create, t, theme({ widget = w }), "x")
        local pb = theme().page_background
        pb.logo_placement = "top"
        fx.rejects(themes.create, t, theme({ page_background = pb }), "x")
        e = fx.rejects(themes.create, t, theme(), string.rep("x", 1100))
        assert.matches("too long", e.message)
        fx.rejects(themes.get, t, nil)
        fx.rejects(themes.get, nil, "x")
        fx.rejects(themes.update, t, "x", nil)
        fx.rejects(themes.update, t, nil, {})
        fx.rejects(themes.update, t, "x", { displayName = core.null })
        fx.rejects(themes.update, t, "x", { colors = core.null })
        fx.rejects(themes.update, t, "x", { colors = { primary_button = "#000000" } }) -- a section is whole
        fx.rejects(themes.remove, t, "")
        assert.is_nil(themes.get(t, "x"))
        -- an id too long for a key is simply not there
        local before = fx.requests()
        assert.is_nil(themes.get(t, string.rep("x", 1100)))
        assert.is_false(themes.update(t, string.rep("x", 1100), { displayName = "n" }))
        assert.is_false(themes.remove(t, string.rep("x", 1100)))
        assert.equal(before, fx.requests())
    end)

    it("update replaces the sections given and keeps the rest; false when absent", function()
        local t = fx.tenant()
        themes.create(t, theme(), "up")
        fx.advance(10)
        local colors = theme().colors
        colors.primary_button = "#FF0000"
        colors.extra_note = "kept as given"
        local widget = theme().widget
        widget.logo_url = "https://example.com/l.png"
        assert.is_true(themes.update(t, "up", { displayName = "Red", colors = colors, widget = widget,
            themeId = "moved", created_at = "2000-01-01T00:00:00.000Z", tenant_id = "other" }))
        local got = themes.get(t, "up")
        assert.same(record("up", { displayName = "Red", colors = colors, widget = widget }, ISO0, util.iso(T0 + 10000)),
            got)
        assert.is_nil(themes.get(t, "moved"))
        assert.equal(t, raw(t, "up").tenant_id)
        -- AuthHero's PATCH sends the whole merged theme back, themeId included
        local again = themes.get(t, "up")
        again.borders.buttons_style = "sharp"
        assert.is_true(themes.update(t, "up", again))
        assert.equal("sharp", themes.get(t, "up").borders.buttons_style)
        assert.equal("Red", themes.get(t, "up").displayName)
        assert.is_true(themes.update(t, "up", {}))
        assert.is_false(themes.update(t, "missing", { displayName = "x" }))
        assert.is_nil(themes.get(t, "missing"))
    end)

    it("remove deletes it once", function()
        local t = fx.tenant()
        themes.create(t, theme(), "rm")
        assert.is_true(themes.remove(t, "rm"))
        assert.is_nil(themes.get(t, "rm"))
        assert.is_nil(raw(t, "rm"))
        assert.is_false(themes.remove(t, "rm"))
        assert.is_false(themes.remove(t, "never"))
        assert.equal("rm", themes.create(t, theme(), "rm").themeId)
    end)

    it("keeps hostile ids and tenants apart", function()
        local base = fx.tenant()
        local ids = { "a#b", "a%23b", "a", "a#THEME#b", "ŧħ#%" }
        for i, id in ipairs(ids) do themes.create(base, theme({ displayName = "n" .. i }), id) end
        for i, id in ipairs(ids) do assert.equal("n" .. i, themes.get(base, id).displayName) end
        assert.equal("THEME#a%23b", raw(base, "a#b").SK)
        assert.equal("THEME#a%2523b", raw(base, "a%23b").SK)
        assert.is_true(themes.remove(base, "a#b"))
        assert.is_table(themes.get(base, "a%23b"))
        assert.is_table(themes.get(base, "a"))
        local evil = base .. "#THEME#a"
        themes.create(evil, theme({ displayName = "evil" }), "x")
        assert.is_nil(themes.get(base, "x"))
        assert.equal("n3", themes.get(base, "a").displayName)
        assert.is_false(themes.remove(evil, "a"))
    end)

    it("goes with its tenant", function()
        local t = fx.tenant()
        a.tenants.create({ id = t, friendly_name = "Themed" })
        themes.create(t, theme(), "default")
        themes.create(t, theme(), "other")
        assert.is_true(a.tenants.remove(t))
        assert.is_nil(themes.get(t, "default"))
        assert.same({}, fx.raw_partition(schema.keys.tenant_partition(t)))
    end)
end)
