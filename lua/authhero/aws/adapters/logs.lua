-- logs (contract §5.11): PK TENANT#{t} / SK LOG#{log_id}, and GSI1 day buckets
-- TENANT#{t}#LOG#{YYYY-MM-DD} / {date}#{log_id}: list walks the buckets itself (newest first, or
-- oldest first on sort date:asc), one Query at a time, inside from_date..to_date and the retention
-- horizon; ttl = date + log_retention_days. Logs are never updated or removed here (TTL and the
-- tenant cascade do that).
local core = require "authhero.aws.core"
local errors = require "authhero.aws.errors"
local filter = require "authhero.aws.filter"
local schema = require "authhero.aws.schema"
local store = require "authhero.aws.store"
local util = require "authhero.aws.util"

local keys = schema.keys
local null = core.null

local E = schema.entity("logs")

local function set_of(list)
    local s = {}
    for _, v in ipairs(list) do s[v] = true end
    return s
end

-- AuthHero's LogTypes (adapter-interfaces 4.8.0): the values its log schema accepts for `type`.
local LOG_TYPES = set_of({
    "acls_summary", "actions_execution_failed", "api_limit", "api_limit_warning", "appi", "ciba_exchange_failed",
    "ciba_exchange_succeeded", "ciba_start_failed", "ciba_start_succeeded", "cls", "cs", "depnote", "f", "fapi", "fc",
    "fce", "fco", "fcoa", "fcp", "fcph", "fcpn", "fcpr", "fcpro", "fcu", "fd", "fdeac", "fdeaz", "fdecc", "fdu",
    "feacft", "feccft", "fecte", "fede", "federated_logout_failed", "fens", "feoobft", "feotpft", "fepft", "fepotpft",
    "fercft", "ferrt", "fertft", "festft", "fh", "fi", "fimp", "flo", "flows_execution_completed",
    "flows_execution_failed", "fn", "forms_submission_failed", "forms_submission_succeeded", "fp", "fpar", "fpurh",
    "fs", "fsa", "fu", "fui", "fv", "fvr", "gd_auth_email_verification", "gd_auth_fail_email_verification",
    "gd_auth_failed", "gd_auth_rejected", "gd_auth_succeed", "gd_enrollment_complete", "gd_otp_rate_limit_exceed",
    "gd_recovery_failed", "gd_recovery_rate_limit_exceed", "gd_recovery_succeed", "gd_send_email",
    "gd_send_email_verification", "gd_send_email_verification_failure", "gd_send_pn", "gd_send_pn_failure",
    "gd_send_sms", "gd_send_sms_failure", "gd_send_voice", "gd_send_voice_failure", "gd_start_auth",
    "gd_start_enroll", "gd_start_enroll_failed", "gd_tenant_update", "gd_unenroll", "gd_update_device_account",
    "gd_webauthn_challenge_failed", "gd_webauthn_enrollment_failed", "i", "kms_key_management_failure",
    "kms_key_management_success", "kms_key_state_changed", "limit_delegation", "limit_mu", "limit_sul", "limit_wc",
    "mfar", "mgmt_api_read", "my_account_authentication_method_failed", "my_account_authentication_method_succeeded",
    "oidc_backchannel_logout_failed", "oidc_backchannel_logout_succeeded", "organization_member_added",
    "passkey_challenge_failed", "passkey_challenge_started", "pla", "pwd_leak", "reset_pwd_leak", "resource_cleanup",
    "rich_consents_access_error", "s", "sapi", "sce", "scoa", "scp", "scpn", "scpr", "scu", "scv", "sd", "sdu",
    "seacft", "seccft", "secte", "sede", "sens", "seoobft", "seotpft", "sepft", "sepkoobft", "sepkotpft",
    "sepkrcft", "sepotpft", "sercft", "sertft", "sestft", "sh", "si", "signup_pwd_leak", "simp", "slo", "spm",
    "srrt", "ss", "ss_sso_failure", "ss_sso_info", "ss_sso_success", "ssa", "sscim", "sui", "sv", "svr",
    "too_many_records", "ublkdu", "universal_logout_failed", "universal_logout_succeeded", "w", "wn", "wum",
})

-- Optional string fields of a log; anything not named here or below is left out of the record.
local STRINGS = { "description", "ip", "user_agent", "user_id", "user_name", "connection", "connection_id",
    "client_id", "client_name", "audience", "scope", "strategy", "strategy_type", "hostname" }
-- location_info, stored as six attributes (upstream parity)
local LOCATION = { "country_code", "city_name", "latitude", "longitude", "time_zone", "continent_code" }
local IS_LOCATION = set_of(LOCATION)
-- SQL parity: these are cut to so many characters (code points), details' JSON text likewise
local CUT = { user_agent = 256, description = 256 }
local MAX_DETAILS = 8192

local DAY_MS = 86400 * 1000

local present = util.present

-- The first n characters (UTF-8 code points) of s.
local function first_chars(s, n)
    if #s <= n then return s end
    local count = 0
    for i = 1, #s do
        local b = s:byte(i)
        if b < 0x80 or b >= 0xC0 then
            count = count + 1
            if count > n then return s:sub(1, i - 1) end
        end
    end
    return s
end

-- details as stored: its JSON text; text longer than MAX_DETAILS characters is cut there and
-- stored as a JSON string, so it reads back as that text (what the SQL adapter returns for a cut
-- value) and the stored attribute is always valid JSON.
local function encode_details(v)
    if not present(v) then return nil end
    local ok, text = pcall(core.json_encode, v)
    if not ok or type(text) ~= "string" then errors.validation("details must be a JSON value") end
    local cut = first_chars(text, MAX_DETAILS)
    if cut ~= text then text = core.json_encode(cut) end
    return text
end

-- Stored details -> the value: JSON text decoded; text that is not JSON (written by other tools)
-- as it is; a native map or list as it is.
local function decode_details(v)
    if not present(v) then return nil end
    if type(v) ~= "string" then return v end
    local ok, d = pcall(core.json_decode, v)
    if ok then return d end
    return v
end

local function check_object(v, name)
    if type(v) ~= "table" or core.is_array(v) or v[1] ~= nil then errors.validation("%s must be an object", name) end
end

local function check_auth0_client(c)
    if not present(c) then return end
    check_object(c, "auth0_client")
    if type(c.name) ~= "string" then errors.validation("auth0_client.name is required") end
    if type(c.version) ~= "string" then errors.validation("auth0_client.version is required") end
    if present(c.env) then
        check_object(c.env, "auth0_client.env")
        store.opt_string(c.env.node, "auth0_client.env.node")
    end
end

local function check_location(li)
    if not present(li) then return end
    check_object(li, "location_info")
    for _, f in ipairs(LOCATION) do store.opt_string(li[f], "location_info." .. f) end
    local cc = li.country_code
    if type(cc) ~= "string" or #cc ~= 2 then errors.validation("location_info.country_code must be two letters") end
end

-- epoch seconds of a list parameter, or nil
local function opt_epoch(v, name)
    if v == nil or v == null then return nil end
    if type(v) ~= "number" or v ~= v or v == math.huge or v == -math.huge then
        errors.validation("%s must be a number of epoch seconds", name)
    end
    return math.floor(v)
end

-- AuthHero lists a user's logs with `user_id:"a" OR user_id:"b" <caller's clauses>` and means the
-- caller's clauses for every user (its route says so). In the q grammar OR binds loosest, which
-- would apply them to the last user only, so that exact shape is read as
-- (user_id:a OR user_id:b) AND clauses: every alternative but the last is one user_id equality,
-- the last starts with one. Other queries keep the grammar's meaning.
local function user_or(ast)
    local n = #ast
    if n < 2 or #ast[n] < 2 then return ast end
    local function is_uid(c) return c.op == "eq" and c.field == "user_id" and not c.negate end
    for i = 1, n - 1 do
        if #ast[i] ~= 1 or not is_uid(ast[i][1]) then return ast end
    end
    if not is_uid(ast[n][1]) then return ast end
    local out = { op = "or" }
    for i = 1, n do
        local g = { op = "and", ast[i][1] }
        for j = 2, #ast[n] do g[#g + 1] = ast[n][j] end
        out[i] = g
    end
    return out
end

-- An item -> the record with location attributes still flat (what q sees), or nil.
local function flat(item)
    if item == nil or item.entityType ~= E.entity_type then return nil end
    local r = {}
    for k, v in pairs(item) do
        if not store.BOOKKEEPING[k] and not E.hidden[k] then r[k] = v end
    end
    r.details = decode_details(item.details)
    r.auth0_client = util.read_json_field(item.auth0_client, "object")
    r.isMobile = item.isMobile == true or item.isMobile == 1
    return r
end

-- The flat record -> AuthHero's log: location_info rebuilt when country_code is present.
local function shape(r)
    local out = {}
    for k, v in pairs(r) do
        if not IS_LOCATION[k] then out[k] = v end
    end
    if type(r.country_code) == "string" then
        local li = {}
        for _, f in ipairs(LOCATION) do li[f] = type(r[f]) == "string" and r[f] or "" end
        out.location_info = li
    end
    return out
end

local function day_of(ms)
    return util.iso(ms):sub(1, 10)
end

return function(ctx)
    local function retention()
        return ctx.log_retention_days or 30
    end

    local function bucket_pk(t, day)
        return keys.log_day_index(t, day, "").GSI1PK
    end

    local M = {}

    function M.create(t, log)
        store.need_string(t, "tenant_id")
        store.need_table(log, "log")
        local ty = log.type
        if type(ty) ~= "string" or ty == "" then errors.validation("type is required") end
        if not LOG_TYPES[ty] then errors.validation("type %s is not a log type", ty) end
        if type(log.isMobile) ~= "boolean" then errors.validation("isMobile is required (a boolean)") end
        local date
        if present(log.date) then
            if type(log.date) ~= "string" then errors.validation("date must be an ISO-8601 timestamp") end
            date = util.normalize_time(log.date, "date")
        else
            date = ctx:now_iso()
        end
        for _, f in ipairs(STRINGS) do store.opt_string(log[f], f) end
        check_auth0_client(log.auth0_client)
        check_location(log.location_info)
        local id = log.log_id
        if present(id) then store.need_string(id, "log_id") else id = ctx.new_id() end

        local rec = { log_id = id, type = ty, date = date, isMobile = log.isMobile }
        for _, f in ipairs(STRINGS) do
            local v = log[f]
            if present(v) then rec[f] = CUT[f] and first_chars(v, CUT[f]) or v end
        end
        if present(log.auth0_client) then rec.auth0_client = log.auth0_client end
        if present(log.location_info) then
            for _, f in ipairs(LOCATION) do
                if present(log.location_info[f]) then rec[f] = log.location_info[f] end
            end
        end

        local k = keys.log(t, id)
        local idx = keys.log_day_index(t, date, id)
        k.GSI1PK, k.GSI1SK = idx.GSI1PK, idx.GSI1SK
        k.tenant_id = t
        k.ttl = schema.ttl(E, rec, retention())
        local now = ctx:now_iso()
        k.created_at, k.updated_at = now, now
        k.details = encode_details(log.details)
        local item = ctx:to_item(E, rec, k)
        -- AuthHero's outbox re-delivers events and skips a log whose create fails with the SQL
        -- unique-constraint text, so the 409 says that too
        ctx:put_new(item, "Log already exists (UNIQUE constraint failed: logs.log_id)")
        return shape(flat(item))
    end

    function M.get(t, log_id)
        store.need_string(t, "tenant_id")
        store.need_string(log_id, "log_id")
        local k = keys.log(t, log_id)
        local r = flat(ctx:get_item(k.PK, k.SK))
        return r and shape(r) or nil
    end

    -- One Query page of a day bucket; lo/hi bound GSI1SK (inclusive); count: Select COUNT of the
    -- live logs of tenant t (the filter does what accept() does for read items).
    local function bucket_query(t, pk, b, start, limit, count)
        local st = store.names_values()
        local cond = st.name("GSI1PK") .. " = " .. st.value(pk)
        if b.lo and b.hi then
            cond = cond .. " AND " .. st.name("GSI1SK") .. " BETWEEN " .. st.value(b.lo) .. " AND " .. st.value(b.hi)
        elseif b.lo then
            cond = cond .. " AND " .. st.name("GSI1SK") .. " >= " .. st.value(b.lo)
        elseif b.hi then
            cond = cond .. " AND " .. st.name("GSI1SK") .. " <= " .. st.value(b.hi)
        end
        local req = { TableName = ctx.table, IndexName = "GSI1", KeyConditionExpression = cond,
            ScanIndexForward = b.asc, ExclusiveStartKey = start, Limit = limit }
        if count then
            req.Select = "COUNT"
            req.FilterExpression = st.name("tenant_id") .. " = " .. st.value(t) .. " AND " .. st.name("entityType")
                .. " = " .. st.value(E.entity_type) .. " AND (attribute_not_exists(" .. st.name("ttl") .. ") OR "
                .. st.name("ttl") .. " > " .. st.value(ctx:now_s()) .. ")"
        end
        return ctx.client:call("Query", st.apply(req))
    end

    local function encode_cursor(fp, day, it)
        return util.b64url(core.json_encode({ f = fp, d = day,
            k = { PK = it.PK, SK = it.SK, GSI1PK = it.GSI1PK, GSI1SK = it.GSI1SK } }))
    end

    -- A cursor minted by this listing: { d = day, k = key } with the key inside the day's bucket and
    -- the range, naming exactly the four key attributes, none longer than DynamoDB allows; nil for
    -- anything else (the listing then restarts).
    local CURSOR_KEY = { PK = true, SK = true, GSI1PK = true, GSI1SK = true }
    local function decode_cursor(s, fp, t, b)
        local raw = util.unb64url(s)
        if not raw then return nil end
        local ok, c = pcall(core.json_decode, raw)
        if not ok or type(c) ~= "table" or c.f ~= fp or type(c.d) ~= "string" or type(c.k) ~= "table" then return nil end
        if not c.d:match("^%d%d%d%d%-%d%d%-%d%d$") then return nil end
        local n = 0
        for k, v in pairs(c.k) do
            if not CURSOR_KEY[k] or type(v) ~= "string" then return nil end
            n = n + 1
        end
        local k = c.k
        if n ~= 4 or schema.oversized(k) or k.PK ~= keys.tenant_partition(t)
            or k.SK:sub(1, #schema.prefix.log) ~= schema.prefix.log
            or k.GSI1PK ~= bucket_pk(t, c.d) or k.GSI1SK:sub(1, 10) ~= c.d then
            return nil
        end
        if (b.lo and k.GSI1SK < b.lo) or (b.hi and k.GSI1SK > b.hi) then return nil end
        return c
    end

    -- list(t, params): see the file header. Offset mode reads forward through the buckets until the
    -- page is full (with include_totals to the end: live logs are counted with Select COUNT once the
    -- page is full and there is no q); keyset mode always goes newest first and hands out a cursor
    -- (bucket + last key) only when a further log exists.
    function M.list(t, params)
        store.need_string(t, "tenant_id")
        local q
        params, q = store.list_params(params)
        local ast, pred
        if q then
            ast = user_or(filter.parse(q, E.q))
            pred = filter.compile(ast)
        end
        local from_s, to_s = opt_epoch(params.from_date, "from_date"), opt_epoch(params.to_date, "to_date")
        local keyset, limit = ctx:page_params(params)
        local skip = keyset and 0 or store.offset_of(params, limit)
        local sort = params.sort
        local asc = not keyset and type(sort) == "table" and sort.sort_by == "date"
            and (sort.sort_order == "asc" or sort.sort_order == 1)
        local fp_text = table.concat({ "logs", t, q or "", tostring(from_s), tostring(to_s) }, "\0")
        local fp = core.sha256_hex(fp_text):sub(1, 16)

        -- the range: from_date (or the retention horizon, whichever is later) .. to_date (or now),
        -- and never past tomorrow's bucket
        local now_ms = ctx.now_ms()
        local horizon_ms = (ctx:now_s() - retention() * 86400) * 1000
        local lo_ms = math.max(from_s and from_s * 1000 or horizon_ms, horizon_ms)
        local hi_ms = to_s and (to_s * 1000 + 999) or now_ms
        local b = { asc = asc,
            lo = from_s and util.iso(from_s * 1000) or nil,
            hi = to_s and (util.iso(to_s * 1000 + 999) .. "$") or nil } -- "$" sorts after "#{log_id}"
        local first_day = math.floor(lo_ms / DAY_MS)
        local last_day = math.min(math.floor(hi_ms / DAY_MS), math.floor(now_ms / DAY_MS) + 1)
        local days = {}
        if lo_ms <= hi_ms then
            for d = last_day, first_day, -1 do days[#days + 1] = day_of(d * DAY_MS) end
        end
        if asc then
            local n = #days
            for i = 1, math.floor(n / 2) do days[i], days[n + 1 - i] = days[n + 1 - i], days[i] end
        end

        local function in_range(rec)
            local ms = util.parse_iso(rec.date)
            return ms ~= nil and ms >= lo_ms and ms <= hi_ms
        end
        local function accept(it)
            if not ctx:live(it) or it.tenant_id ~= t then return nil end
            local r = flat(it)
            if r == nil or (pred and not pred(r)) then return nil end
            return r
        end

        -- log_id: answered by GetItem, paged in memory
        local id = ast and filter.equality(ast, "log_id")
        if id then
            local page = ctx:pager(params, "logs", "logs-id\0" .. fp_text)
            local out = {}
            local k = keys.log(t, id)
            local it = ctx:get_item(k.PK, k.SK)
            local r = it and accept(it)
            if r and in_range(r) then out[1] = shape(r) end
            return page(out)
        end

        local res = { start = skip, limit = limit }
        local list = core.array({})

        if keyset then
            local begin, start_key = 1, nil
            local c = params.from and decode_cursor(params.from, fp, t, b)
            if c then
                for i, d in ipairs(days) do
                    if d == c.d then begin, start_key = i, c.k end
                end
                if start_key == nil and (#days == 0 or c.d < days[#days]) then begin = #days + 1 end -- past the end
            end
            local last_it, last_dayname
            for i = begin, #days do
                local pk = bucket_pk(t, days[i])
                local start = i == begin and start_key or nil
                repeat
                    local r = bucket_query(t, pk, b, start, math.min(1000, (limit - #list + 1) * (pred and 4 or 1)))
                    for _, it in ipairs(r.Items or {}) do
                        local rec = accept(it)
                        if rec then
                            if #list == limit then
                                res.next = encode_cursor(fp, last_dayname, last_it) -- one more exists
                                break
                            end
                            list[#list + 1] = shape(rec)
                            last_it, last_dayname = it, days[i]
                        end
                    end
                    start = r.LastEvaluatedKey
                until res.next or start == nil
                if res.next then break end
            end
            res.length = #list
        else
            local seen, counting = 0, false
            local totals = params.include_totals and true or false
            for _, day in ipairs(days) do
                local pk = bucket_pk(t, day)
                local start
                repeat
                    if counting then
                        local r = bucket_query(t, pk, b, start, nil, true)
                        seen = seen + (r.Count or 0)
                        start = r.LastEvaluatedKey
                    else
                        local want = totals and 1000 or math.min(1000, (skip + limit - seen) * (pred and 4 or 1) + 1)
                        local r = bucket_query(t, pk, b, start, want)
                        for _, it in ipairs(r.Items or {}) do
                            local rec = accept(it)
                            if rec then
                                seen = seen + 1
                                if seen > skip and #list < limit then list[#list + 1] = shape(rec) end
                            end
                        end
                        start = r.LastEvaluatedKey
                        if #list >= limit and totals and not pred then counting = true end
                    end
                until start == nil or (not totals and #list >= limit)
                if not totals and #list >= limit then break end
            end
            if totals then res.total = seen end
            -- with include_totals, length holds the total (contract §9.3 #4)
            res.length = res.total or #list
        end
        res.logs = list
        return res
    end

    return store.adapter(M)
end
