-- customText (contract §6): TENANT#{t} / CUSTOM_TEXT#{prompt}#{language}, the text (screen -> key
-- -> string) stored as JSON text in custom_text. set replaces the text in one UpdateItem without a
-- read (created_at kept from the first write, or an import's); delete returns nothing, as
-- AuthHero's; list reads the tenant's CUSTOM_TEXT# range. listEntries (not AuthHero's: for the
-- command line's export) returns each entry with its text, in AuthHero's CustomTextEntry shape.
local core = require "authhero.aws.core"
local util = require "authhero.aws.util"
local errors = require "authhero.aws.errors"
local schema = require "authhero.aws.schema"
local store = require "authhero.aws.store"

local keys = schema.keys

local E = schema.entity("customText")

local is_object = util.is_json_object

-- AuthHero's customTextSchema: an object of screens, each an object of strings.
local function check_text(text)
    if not is_object(text) then errors.validation("custom text must be an object of screens") end
    for screen, entries in pairs(text) do
        if type(screen) ~= "string" then errors.validation("custom text screens must be named by strings") end
        if not is_object(entries) then errors.validation("custom text of screen %s must be an object", screen) end
        for k, v in pairs(entries) do
            if type(k) ~= "string" or type(v) ~= "string" then
                errors.validation("custom text of screen %s must map strings to strings", screen)
            end
        end
    end
end

local function check_ids(t, prompt, language)
    store.need_string(t, "tenant_id")
    store.need_string(prompt, "prompt")
    store.need_string(language, "language")
end

return function(ctx)
    local M = {}

    local function entries(t)
        local out = {}
        for _, it in ipairs(ctx:query_all({ pk = keys.tenant_partition(t), prefix = schema.prefix.custom_text })) do
            local r = store.to_record(E, it)
            if r and type(r.prompt) == "string" and type(r.language) == "string" then out[#out + 1] = r end
        end
        return out
    end

    -- get(t, prompt, language) -> the text, or nil.
    function M.get(t, prompt, language)
        check_ids(t, prompt, language)
        local k = keys.custom_text(t, prompt, language)
        local r = store.to_record(E, ctx:get_item(k.PK, k.SK))
        return r and r.custom_text or nil
    end

    -- set(t, prompt, language, text, options?) -> nothing: the text replaces the stored one.
    function M.set(t, prompt, language, text, options)
        check_ids(t, prompt, language)
        check_text(text)
        local created, updated = ctx:stamps(options)
        local imported = type(options) == "table" and type(options.importMetadata) == "table"
            and options.importMetadata.created_at ~= nil
        ctx:replace_item(E, keys.custom_text(t, prompt, language), { tenant_id = t, prompt = prompt,
            language = language, custom_text = text, created_at = created, updated_at = updated }, nil, not imported)
    end

    -- delete(t, prompt, language) -> nothing (AuthHero's is void).
    function M.delete(t, prompt, language)
        check_ids(t, prompt, language)
        local k = keys.custom_text(t, prompt, language)
        ctx:delete_item(k.PK, k.SK)
    end

    -- list(t) -> array of { prompt, language }, by prompt then language.
    function M.list(t)
        store.need_string(t, "tenant_id")
        local out = core.array({})
        for _, r in ipairs(entries(t)) do out[#out + 1] = { prompt = r.prompt, language = r.language } end
        return out
    end

    -- listEntries(t) -> array of { prompt, language, custom_text }, as list orders them.
    function M.listEntries(t)
        store.need_string(t, "tenant_id")
        local out = core.array({})
        for _, r in ipairs(entries(t)) do
            out[#out + 1] = { prompt = r.prompt, language = r.language, custom_text = r.custom_text or {} }
        end
        return out
    end

    return store.adapter(M)
end
