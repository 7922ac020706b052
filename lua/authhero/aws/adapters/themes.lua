-- themes (contract §5.9): TENANT#{t} / THEME#{themeId}; the five sections (borders, colors, fonts,
-- page_background, widget) stored as JSON text. Sections are checked against AuthHero's theme
-- schema on every write (each is required and replaced whole), so what get returns always parses
-- as AuthHero's Theme. No list (AuthHero has none).
local core = require "authhero.aws.core"
local errors = require "authhero.aws.errors"
local schema = require "authhero.aws.schema"
local store = require "authhero.aws.store"

local keys = schema.keys
local null = core.null

local E = schema.entity("themes")

-- AuthHero's themeInsertSchema: field -> "number" | "boolean" | "string" | { enum = set, optional? }
-- | a nested shape (a table of fields).
local N, B, S = "number", "boolean", "string"
local function enum(list, optional)
    local set = {}
    for _, v in ipairs(list) do set[v] = true end
    return { enum = set, names = table.concat(list, ", "), optional = optional }
end
local FONT = { bold = B, size = N }
local ALIGN = enum({ "center", "left", "right" })
local STYLE = enum({ "pill", "rounded", "sharp" })
local SECTIONS = {
    borders = {
        button_border_radius = N, button_border_weight = N, buttons_style = STYLE, input_border_radius = N,
        input_border_weight = N, inputs_style = STYLE, show_widget_shadow = B, widget_border_weight = N,
        widget_corner_radius = N,
    },
    colors = {
        base_focus_color = S, base_hover_color = S, body_text = S, captcha_widget_theme = enum({ "dark", "light", "auto" }),
        error = S, header = S, icons = S, input_background = S, input_border = S, input_filled_text = S,
        input_labels_placeholders = S, links_focused_components = S, primary_button = S, primary_button_label = S,
        secondary_button_border = S, secondary_button_label = S, success = S, widget_background = S,
        widget_border = S,
    },
    fonts = {
        body_text = FONT, buttons_text = FONT, font_url = S, input_labels = FONT, links = FONT,
        links_style = enum({ "normal", "underlined" }), reference_text_size = N, subtitle = FONT, title = FONT,
    },
    page_background = {
        background_color = S, background_image_url = S, page_layout = ALIGN,
        logo_placement = enum({ "none", "widget", "chip" }, true),
    },
    widget = {
        header_text_alignment = ALIGN, logo_height = N, logo_position = enum({ "none", "center", "left", "right" }),
        logo_url = S, social_buttons_layout = enum({ "bottom", "top" }),
    },
}
local SECTION_NAMES = { "borders", "colors", "fonts", "page_background", "widget" }

local function is_object(v)
    return type(v) == "table" and v ~= null and not core.is_array(v)
end

-- Raises 400 naming the first field of v (at path) that does not fit shape. Extra fields are kept.
local function check_shape(v, shape, path)
    if not is_object(v) then errors.validation("%s must be an object", path) end
    local names = {}
    for f in pairs(shape) do names[#names + 1] = f end
    table.sort(names)
    for _, f in ipairs(names) do
        local spec, x, p = shape[f], v[f], path .. "." .. f
        if type(spec) == "string" then
            if type(x) ~= spec then errors.validation("%s must be a %s", p, spec) end
        elseif spec.enum then
            if not (spec.optional and (x == nil or x == null)) and not spec.enum[x] then
                errors.validation("%s must be one of %s", p, spec.names)
            end
        else
            check_shape(x, spec, p)
        end
    end
end

-- displayName and the sections of a theme or patch (patch: absent ones are fine).
local function check_theme(r, patch)
    if not patch or r.displayName ~= nil then
        if type(r.displayName) ~= "string" then errors.validation("displayName is required") end
    end
    for _, s in ipairs(SECTION_NAMES) do
        if not patch or r[s] ~= nil then check_shape(r[s], SECTIONS[s], s) end
    end
end

return function(ctx)
    local function to_record(item) return store.to_record(E, item) end

    local M = {}

    -- create(t, theme, themeId?, options?) -> theme. Id: importMetadata.id, else themeId, else the
    -- theme's own themeId, else generated. 409 when the id is taken.
    function M.create(tenant_id, theme, theme_id, options)
        store.need_string(tenant_id, "tenant_id")
        store.need_table(theme, "theme")
        if theme_id ~= nil and theme_id ~= null then store.need_string(theme_id, "themeId") end
        check_theme(theme, false)
        local created, updated, import_id = ctx:stamps(options)
        local id = import_id
        if id == nil then id = theme_id ~= null and theme_id or nil end
        if id == nil and theme.themeId ~= null then id = theme.themeId end
        if id == nil then id = ctx.new_id() end
        store.need_string(id, "themeId")
        local k = keys.theme(tenant_id, id)
        local rec = { themeId = id, displayName = theme.displayName, created_at = created, updated_at = updated }
        for _, s in ipairs(SECTION_NAMES) do rec[s] = theme[s] end
        k.tenant_id = tenant_id
        local item = ctx:to_item(E, rec, k)
        ctx:put_new(item, "Theme already exists")
        return to_record(item)
    end

    function M.get(tenant_id, theme_id)
        store.need_string(tenant_id, "tenant_id")
        store.need_string(theme_id, "themeId")
        local k = keys.theme(tenant_id, theme_id)
        return to_record(ctx:get_item(k.PK, k.SK, true))
    end

    -- update(t, themeId, patch) -> boolean: one conditional UpdateItem; each section given replaces
    -- the stored one (and must be complete). themeId, created_at and tenant_id are not changed.
    function M.update(tenant_id, theme_id, patch)
        store.need_string(tenant_id, "tenant_id")
        store.need_string(theme_id, "themeId")
        store.need_table(patch, "patch")
        check_theme(patch, true)
        local p = { displayName = patch.displayName }
        for _, s in ipairs(SECTION_NAMES) do p[s] = patch[s] end
        local set, remove = ctx:patch_sets(E, p)
        local k = keys.theme(tenant_id, theme_id)
        return ctx:update_item(k, set, remove)
    end

    function M.remove(tenant_id, theme_id)
        store.need_string(tenant_id, "tenant_id")
        store.need_string(theme_id, "themeId")
        local k = keys.theme(tenant_id, theme_id)
        return ctx:delete_item(k.PK, k.SK) ~= nil
    end

    return store.adapter(M)
end
