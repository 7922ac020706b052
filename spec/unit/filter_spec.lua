-- The `q` language (adapter contract §3.5; single-table notes item 8): parse, compile, equality.
local core = require "authhero.aws.core"
local errors = require "authhero.aws.errors"
local filter = require "authhero.aws.filter"

local null = core.null

-- The users entity as §4.2 lists it.
local USERS = {
    fields = {
        user_id = { type = "string" }, email = { type = "string", ci = true },
        email_verified = { type = "boolean" }, username = true, phone_number = true,
        phone_verified = { type = "boolean" }, name = true, given_name = true, family_name = true,
        nickname = true, picture = true, locale = true, linked_to = true, provider = true,
        connection = true, is_social = { type = "boolean" }, blocked = { type = "boolean" },
        last_ip = true, last_login = true, login_count = { type = "number", default = 0 },
        created_at = true, updated_at = true,
    },
    search = {
        { field = "email", mode = "substring" }, { field = "name", mode = "substring" },
        { field = "phone_number", mode = "substring" }, { field = "user_id", mode = "exact" },
    },
}

-- Signing keys (§5.3), no free text needed for these tests.
local KEYS = {
    fields = { kid = true, tenant_id = true, type = true, connection = true, current = { type = "boolean" },
        created_at = true },
}

local alice = {
    user_id = "auth2|alice", email = "alice@example.com", provider = "auth2", connection = "Username-Password",
    name = "Alice Liddell", username = "alice", email_verified = true, login_count = 7,
    created_at = "2026-01-15T10:00:00.000Z", phone_number = "+4412345",
}
local alice_google = {
    user_id = "google-oauth2|123", email = "alice@example.com", provider = "google-oauth2",
    connection = "google-oauth2", linked_to = "auth2|alice", email_verified = true,
    created_at = "2026-02-01T00:00:00.000Z",
}
local bob = {
    user_id = "auth2|bob", email = "bob@example.com", provider = "auth2", connection = "Username-Password",
    name = "Bob", username = "bob", email_verified = false, created_at = "2025-12-31T23:59:59.999Z",
    linked_to = null, login_count = "5",
}
local carol = {
    user_id = "auth0|abc-123", email = "carol@x.com", provider = "auth0", connection = "email",
    phone_number = "+15550001", login_count = 2, created_at = "2026-01-01T00:00:00.000Z", blocked = true,
}
local ALL = { alice, alice_google, bob, carol }

local function ids(q, spec, records)
    local out = {}
    for _, r in ipairs(filter.apply(records or ALL, q, spec or USERS)) do out[#out + 1] = r.user_id end
    return table.concat(out, ",")
end

local function rejects(q, spec, pattern)
    local ok, err = pcall(filter.parse, q, spec or USERS)
    assert.is_false(ok, "expected a 400 for " .. tostring(q))
    assert.is_true(errors.is(err, "ValidationError"), tostring(err))
    assert.equals(400, err.status)
    if pattern then assert.matches(pattern, err.message, 1, true) end
    return err
end

describe("filter: the contract's examples (§3.5)", function()
    it("email:alice@example.com", function()
        assert.equals("auth2|alice,google-oauth2|123", ids("email:alice@example.com"))
    end)

    it("email:\"alice@example.com\" provider:auth2", function()
        assert.equals("auth2|alice", ids('email:"alice@example.com" provider:auth2'))
    end)

    it("-_exists_:linked_to email:bob@example.com (null counts as absent)", function()
        assert.equals("auth2|bob", ids("-_exists_:linked_to email:bob@example.com"))
        assert.equals("auth2|alice,auth2|bob,auth0|abc-123", ids("-_exists_:linked_to"))
        assert.equals("google-oauth2|123", ids("_exists_:linked_to"))
    end)

    it("login_count:>5 (absent = 0, string-stored numbers coerce)", function()
        assert.equals("auth2|alice", ids("login_count:>5"))
        assert.equals("auth2|alice,auth2|bob", ids("login_count:>=5"))
        assert.equals("google-oauth2|123", ids("login_count:0"))
        assert.equals("auth2|bob", ids("login_count:5"))
    end)

    it("created_at:>=2026-01-01", function()
        assert.equals("auth2|alice,google-oauth2|123,auth0|abc-123", ids("created_at:>=2026-01-01"))
        assert.equals("auth2|bob", ids("created_at:<2026-01-01"))
    end)

    it("user_id:\"auth0|abc\\-123\"", function()
        assert.equals("auth0|abc-123", ids('user_id:"auth0|abc\\-123"'))
        assert.equals("auth0|abc-123", ids("user_id:auth0|abc\\-123"))
        assert.equals("auth0|abc-123", ids("user_id:auth0|abc-123"))
    end)

    it("email:a@x.com OR email:b@x.com", function()
        assert.equals("auth2|bob,auth0|abc-123", ids("email:carol@x.com OR email:bob@example.com"))
    end)

    it("type:jwt_signing AND -_exists_:tenant_id", function()
        local keys = {
            { kid = "k1", type = "jwt_signing" },
            { kid = "k2", type = "jwt_signing", tenant_id = "t1" },
            { kid = "k3", type = "saml_encryption" },
            { kid = "k4", type = "jwt_signing", tenant_id = null },
        }
        local function kids(q)
            local out = {}
            for _, r in ipairs(filter.apply(keys, q, KEYS)) do out[#out + 1] = r.kid end
            return table.concat(out, ",")
        end
        assert.equals("k1,k4", kids("type:jwt_signing AND -_exists_:tenant_id"))
        assert.equals("k2", kids("type:jwt_signing AND tenant_id:t1"))
        assert.equals("k3", kids("type:jwt_signing AND kid:k3 OR type:saml_encryption"))
        assert.equals("k2", kids("type:jwt_signing AND kid:k2"))
    end)

    it("alice (free text)", function()
        assert.equals("auth2|alice,google-oauth2|123", ids("alice"))
    end)
end)

describe("filter: the queries AuthHero's login and signup code sends (§4.2)", function()
    it("email:{e} and email:\"{e}\", case-insensitive on email", function()
        assert.equals("auth2|bob", ids("email:bob@example.com"))
        assert.equals("auth2|bob", ids('email:"bob@example.com"'))
        assert.equals("auth2|bob", ids("email:Bob@Example.COM"))
        assert.equals("", ids("email:bob@example"))
    end)

    it("email:{e} provider:{p}", function()
        assert.equals("google-oauth2|123", ids("email:alice@example.com provider:google-oauth2"))
        assert.equals("", ids("email:bob@example.com provider:google-oauth2"))
    end)

    it("username:{u} provider:{p}, case-sensitive on other fields", function()
        assert.equals("auth2|alice", ids("username:alice provider:auth2"))
        assert.equals("", ids("username:Alice provider:auth2"))
    end)

    it("phone_number:{n} provider:{p}", function()
        assert.equals("auth0|abc-123", ids("phone_number:+15550001 provider:auth0"))
        assert.equals("auth0|abc-123", ids('phone_number:"+15550001" provider:"auth0"'))
    end)

    it("linked_to:{id} and linked_to:{id} provider:{p}", function()
        assert.equals("google-oauth2|123", ids("linked_to:auth2|alice"))
        assert.equals("google-oauth2|123", ids("linked_to:auth2|alice provider:google-oauth2"))
        assert.equals("", ids("linked_to:auth2|alice provider:auth2"))
    end)

    it("email:{e} connection:{c} and username:{u} connection:{c}", function()
        assert.equals("auth2|alice", ids("email:alice@example.com connection:Username-Password"))
        assert.equals("auth2|bob", ids("username:bob connection:Username-Password"))
        assert.equals("", ids("username:bob connection:email"))
    end)

    it("-_exists_:linked_to combined with the others", function()
        assert.equals("auth2|alice", ids("-_exists_:linked_to email:alice@example.com"))
        assert.equals("auth2|alice", ids("email:alice@example.com -_exists_:linked_to"))
        assert.equals("auth2|alice,auth2|bob", ids("-_exists_:linked_to provider:auth2"))
    end)

    it("the logs query for a user and its linked accounts (§5.11)", function()
        assert.equals("auth2|alice,google-oauth2|123",
            ids('user_id:"auth2|alice" OR user_id:"google-oauth2|123"'))
    end)
end)

describe("filter: syntax", function()
    it("matches everything for nil, empty, blank and AND-only queries", function()
        for _, q in ipairs { nil, "", "   ", "\t", "AND", " AND  AND " } do
            local ast = filter.parse(q, USERS)
            assert.is_true(filter.matches_all(ast))
            assert.equals(4, #filter.apply(ALL, q, USERS))
        end
        assert.is_false(filter.matches_all(filter.parse("alice", USERS)))
    end)

    it("treats field=value like field:value, and extra spaces as one", function()
        assert.equals("auth2|bob", ids("email=bob@example.com"))
        assert.equals("auth2|bob", ids("   email=bob@example.com    provider:auth2  "))
        assert.equals("auth2|alice", ids("login_count=>5"))
    end)

    it("ignores exactly AND, and takes lower-case and as a free-text word", function()
        assert.equals("auth2|bob", ids("email:bob@example.com AND provider:auth2"))
        assert.equals("", ids("email:bob@example.com and provider:auth2"))
        assert.equals(3, #filter.parse("email:bob@example.com and provider:auth2", USERS)[1])
    end)

    it("splits alternatives on OR in any letter case, OR binding loosest", function()
        assert.equals("auth2|bob,auth0|abc-123", ids("email:carol@x.com or email:bob@example.com"))
        assert.equals("auth2|bob,auth0|abc-123", ids("email:carol@x.com oR email:bob@example.com"))
        -- (provider:auth2 AND username:bob) OR (provider:auth0)
        assert.equals("auth2|bob,auth0|abc-123", ids("provider:auth2 username:bob OR provider:auth0"))
        local ast = filter.parse("a:1 b:2 OR c:3", { fields = { a = true, b = true, c = true } })
        assert.equals(2, #ast)
        assert.equals(2, #ast[1])
        assert.equals(1, #ast[2])
    end)

    it("keeps OR, spaces and colons inside quotes", function()
        assert.equals("auth2|alice", ids('name:"Alice Liddell"'))
        local ast = filter.parse('name:"a OR b" name:"x:y"', USERS)
        assert.equals(1, #ast)
        assert.equals("a OR b", ast[1][1].value)
        assert.equals("x:y", ast[1][2].value)
        assert.equals("OR", filter.parse('"OR"', USERS)[1][1].value)
    end)

    it("accepts unquoted colons after the first one", function()
        local ast = filter.parse("created_at:>=2026-01-01T10:00:00.000Z", USERS)
        assert.equals("ge", ast[1][1].op)
        assert.equals("2026-01-01T10:00:00.000Z", ast[1][1].value)
    end)

    it("takes the operator before the optional quotes", function()
        local ast = filter.parse('name:>"x y" name:<=b name:<"c" name:>=d', USERS)
        local ops, vals = {}, {}
        for k, c in ipairs(ast[1]) do ops[k], vals[k] = c.op, c.value end
        assert.same({ "gt", "le", "lt", "ge" }, ops)
        assert.same({ "x y", "b", "c", "d" }, vals)
        -- a quoted or escaped operator is part of the value
        assert.same({ "eq", ">5" }, { filter.parse('name:">5"', USERS)[1][1].op, filter.parse('name:">5"', USERS)[1][1].value })
        assert.equals(">5", filter.parse("name:\\>5", USERS)[1][1].value)
    end)
end)

describe("filter: escapes and quotes", function()
    local S = { fields = { v = true }, search = { { field = "v", mode = "exact" } } }
    local function value(q) return filter.parse(q, S)[1][1].value end

    it("undoes every Lucene escape", function()
        local specials = { "-", "|", ":", '"', "\\", "*", "+", "!", "(", ")", "{", "}", "[", "]", "^", "~",
            "?", "/", "&" }
        for _, c in ipairs(specials) do
            assert.equals("a" .. c .. "b", value("v:a\\" .. c .. "b"), c)
            assert.equals("a" .. c .. "b", value('v:"a\\' .. c .. 'b"'), c)
        end
        assert.equals("a b", value("v:a\\ b"))
    end)

    it("keeps * and ? as ordinary characters", function()
        assert.equals("a*b?", value("v:a*b?"))
        local rs = { { v = "a*b?" }, { v = "axb" } }
        assert.equals(1, #filter.apply(rs, "v:a*b?", S))
    end)

    it("keeps a backslash before an ordinary character (and a trailing one)", function()
        assert.equals("DOMAIN\\user", value("v:DOMAIN\\user"))
        assert.equals("a\\", value("v:a\\"))
    end)

    it("reads \\\" inside quotes as a quote", function()
        assert.equals('say "hi" now', value('v:"say \\"hi\\" now"'))
        assert.equals('x"', value('v:"x\\""'))
        assert.equals("", value('v:""'))
    end)

    it("lets an escaped leading minus start a free-text word", function()
        local c = filter.parse("\\-5", S)[1][1]
        assert.equals("text", c.op)
        assert.is_nil(c.negate)
        assert.equals("-5", c.value)
        assert.equals("a:b", filter.parse("a\\:b", S)[1][1].value)
    end)

    it("refuses an unterminated quote", function()
        rejects('v:"abc', S, "unterminated quote")
        rejects('"abc', S, "unterminated quote")
        rejects('v:"abc\\"', S, "unterminated quote")
        rejects('v:a"bc', S, "unterminated quote")
    end)

    it("refuses a quote in the middle of a value and text after a closing quote", function()
        rejects('v:a"b c"', S, "unexpected quote")
        rejects('v:"ab"c', S, "after closing quote")
        rejects('v:"a""b"', S, "after closing quote")
        rejects('"ab":x', S)
    end)
end)

describe("filter: errors", function()
    it("refuses fields outside the allow-list with ValidationError 400", function()
        local err = rejects("foo:1", USERS)
        assert.equals("ValidationError", err.code)
        assert.equals("unsupported query field: foo", err.message)
        rejects("email:a@b.c app_metadata:x", USERS, "unsupported query field: app_metadata")
        rejects("-foo:1", USERS, "unsupported query field: foo")
        rejects("_exists_:foo", USERS, "unsupported query field: foo")
        rejects("-_exists_:foo", USERS, "unsupported query field: foo")
        rejects("foo:>1", USERS, "unsupported query field: foo")
        rejects("+email:x", USERS, "unsupported query field: +email")
        rejects("email:a OR foo:b", USERS, "unsupported query field: foo")
    end)

    it("refuses parentheses outside quotes", function()
        rejects("(email:a)", USERS, "parentheses")
        rejects("email:a OR (email:b)", USERS, "parentheses")
        rejects("name:a)", USERS, "parentheses")
        assert.equals("(a)", filter.parse('name:"(a)"', USERS)[1][1].value)
        assert.equals("(a)", filter.parse("name:\\(a\\)", USERS)[1][1].value)
    end)

    it("refuses empty values and empty field names", function()
        rejects("email:", USERS, "missing value for query field: email")
        rejects("email=", USERS, "missing value")
        rejects("login_count:>", USERS, "missing value")
        rejects("login_count:>=", USERS, "missing value")
        rejects(":x", USERS, "missing field name")
        rejects("-", USERS, "empty negation")
        assert.equals("", filter.parse('email:""', USERS)[1][1].value)
    end)

    it("refuses dangling OR", function()
        rejects("OR email:a", USERS, "empty alternative")
        rejects("email:a OR", USERS, "empty alternative")
        rejects("email:a OR OR email:b", USERS, "empty alternative")
        rejects("email:a OR AND", USERS, "empty alternative")
        rejects("OR", USERS, "empty alternative")
    end)

    it("refuses Lucene operators it does not support", function()
        rejects("NOT email:a", USERS, "operator NOT")
        rejects("email:a && email:b", USERS, "operator &&")
        rejects("email:a || email:b", USERS, "operator ||")
    end)

    it("refuses bad numbers and booleans, and comparisons on booleans", function()
        rejects("login_count:abc", USERS, "invalid number for query field login_count: abc")
        rejects("login_count:>0x10", USERS, "invalid number")
        rejects("login_count:inf", USERS, "invalid number")
        rejects("login_count:nan", USERS, "invalid number")
        rejects("login_count:.", USERS, "invalid number")
        rejects('login_count:""', USERS, "invalid number")
        rejects("email_verified:yes", USERS, "invalid boolean for query field email_verified: yes")
        rejects("email_verified:>true", USERS, "comparison is not supported on boolean")
        rejects("_exists_:>email", USERS, "comparison is not supported on _exists_")
    end)

    it("refuses free text when the entity has no search fields", function()
        rejects("alice", KEYS, "free-text search is not supported")
        rejects('"alice smith"', { fields = {} }, "free-text search is not supported")
        rejects('""', USERS, "empty free-text term")
    end)

    it("refuses a q that is not a string, and raises plain errors for bad specs", function()
        rejects(42, USERS, "q must be a string")
        assert.has_error(function() filter.parse("a", nil) end)
        assert.has_error(function() filter.parse("a:1", { fields = { a = { type = "date" } } }) end)
        assert.has_error(function() filter.parse("a", { fields = {}, search = { { field = "a", mode = "fuzzy" } } }) end)
        assert.has_error(function() filter.compile("email:a") end)
        assert.has_error(function() filter.apply(nil, "", USERS) end)
    end)
end)

describe("filter: semantics", function()
    it("negation matches absent and null fields (Lucene)", function()
        assert.equals("auth2|alice,auth2|bob,auth0|abc-123", ids("-linked_to:auth2|alice"))
        assert.equals("google-oauth2|123,auth2|bob,auth0|abc-123", ids("-username:alice"))
        assert.equals("auth2|bob,auth0|abc-123", ids("-email:alice@example.com"))
        assert.equals("auth2|bob,auth0|abc-123", ids("-email:ALICE@example.com"))
    end)

    it("inverts negated comparisons, so an absent field without default matches neither", function()
        local ast = filter.parse("-login_count:>5", USERS)
        assert.equals("le", ast[1][1].op)
        assert.is_nil(ast[1][1].negate)
        -- login_count: alice 7, google absent (= 0), bob "5", carol 2
        assert.equals("google-oauth2|123,auth2|bob,auth0|abc-123", ids("-login_count:>5"))
        assert.equals("auth2|alice", ids("-login_count:<=5"))
        assert.equals("google-oauth2|123,auth0|abc-123", ids("-login_count:>=5"))
        assert.equals("auth2|alice,auth2|bob", ids("-login_count:<5"))
        -- last_login is absent everywhere: neither a comparison nor its negation matches
        assert.equals("", ids("last_login:>2000"))
        assert.equals("", ids("-last_login:>2000"))
        -- but negated equality does
        assert.equals(4, #filter.apply(ALL, "-last_login:x", USERS))
    end)

    it("compares numbers numerically, not as text", function()
        local S = { fields = { n = { type = "number" } } }
        local rs = { { n = 9 }, { n = 10 }, { n = "10" }, { n = "abc" }, { n = true }, {}, { n = null }, { n = 10.5 } }
        assert.equals(3, #filter.apply(rs, "n:>9", S))
        assert.equals(2, #filter.apply(rs, "n:10", S))
        assert.equals(2, #filter.apply(rs, "n:10.0", S))
        assert.equals(1, #filter.apply(rs, "n:1.05e1", S))
        assert.equals(1, #filter.apply(rs, "n:<=9", S))
        assert.equals(4, #filter.apply(rs, "n:>-1", S))
        assert.equals(7, #filter.apply(rs, "-n:9", S))
    end)

    it("applies a declared default to absent and null values", function()
        local rs = { {}, { login_count = null }, { login_count = 0 }, { login_count = 1 } }
        assert.equals(3, #filter.apply(rs, "login_count:0", USERS))
        assert.equals(3, #filter.apply(rs, "login_count:<1", USERS))
        -- existence looks at the record, not the default
        assert.equals(2, #filter.apply(rs, "_exists_:login_count", USERS))
    end)

    it("compares strings and ISO timestamps as text", function()
        assert.equals("auth2|alice,google-oauth2|123", ids("created_at:>2026-01-01T00:00:00.000Z"))
        assert.equals("auth0|abc-123", ids('created_at:"2026-01-01T00:00:00.000Z"'))
        assert.equals("auth2|bob,auth0|abc-123", ids("created_at:<=2026-01-01T00:00:00.000Z"))
        assert.equals("auth2|bob,auth0|abc-123", ids("created_at:<2026-01-02 created_at:>2025-12-31"))
        assert.equals("auth2|alice", ids("name:>=Alice name:<B"))
        -- ci fields compare lower-cased on both sides
        assert.equals("auth2|bob,auth0|abc-123", ids("email:>B"))
    end)

    it("reads booleans from true/false/1/0", function()
        local rs = { { v = true }, { v = false }, { v = 1 }, { v = "false" }, {}, { v = null }, { v = "yes" } }
        local S = { fields = { v = { type = "boolean" } } }
        assert.equals(2, #filter.apply(rs, "v:true", S))
        assert.equals(2, #filter.apply(rs, "v:1", S))
        assert.equals(2, #filter.apply(rs, "v:TRUE", S))
        assert.equals(2, #filter.apply(rs, "v:false", S))
        assert.equals(2, #filter.apply(rs, "v:0", S))
        assert.equals(5, #filter.apply(rs, "-v:true", S))
        assert.equals("auth2|alice,google-oauth2|123", ids("email_verified:true"))
        assert.equals("auth2|bob", ids("email_verified:false"))
        assert.equals("auth0|abc-123", ids("blocked:1"))
    end)

    it("honours a boolean default (absent = false)", function()
        local S = { fields = { is_system = { type = "boolean", default = false } } }
        local rs = { { is_system = true }, {}, { is_system = null } }
        assert.equals(2, #filter.apply(rs, "is_system:false", S))
        assert.equals(1, #filter.apply(rs, "-is_system:false", S))
    end)

    it("compares stored numbers and booleans in string fields by their text", function()
        local S = { fields = { v = true } }
        local rs = { { v = 5 }, { v = "5" }, { v = 5.5 }, { v = true }, { v = { 5 } } }
        assert.equals(2, #filter.apply(rs, "v:5", S))
        assert.equals(1, #filter.apply(rs, "v:5.5", S))
        assert.equals(1, #filter.apply(rs, "v:true", S))
        -- tables have no text, but they exist
        assert.equals(5, #filter.apply(rs, "_exists_:v", S))
    end)

    it("free text: case-insensitive substring on substring targets, exact on exact ones", function()
        assert.equals("auth2|alice,google-oauth2|123", ids("ALICE"))
        assert.equals("auth2|alice,google-oauth2|123", ids("Liddell OR example.com -bob"))
        assert.equals("auth2|alice", ids('"alice liddell"'))
        assert.equals("auth2|bob", ids("auth2|bob"))       -- exact user_id
        assert.equals("", ids("auth2|bo"))                 -- user_id is not a substring target
        assert.equals("", ids("AUTH2|bob"))                -- and exact means exact
        assert.equals("auth2|alice", ids("+4412"))          -- phone numbers keep their +
        assert.equals("auth2|alice,auth2|bob", ids("example.com -_exists_:linked_to"))
        assert.equals("auth2|alice", ids("alice email_verified:true -linked_to:auth2|alice"))
        -- several words are ANDed
        assert.equals("auth2|alice", ids("alice liddell"))
        assert.equals("", ids("alice bob"))
    end)

    it("negated free text excludes records matching any target", function()
        assert.equals("auth2|bob,auth0|abc-123", ids("-alice"))
    end)

    it("treats the null sentinel as absent everywhere", function()
        local r = { user_id = null, email = null, email_verified = null, login_count = null, name = null }
        assert.is_false(filter.match("_exists_:email", USERS, r))
        assert.is_true(filter.match("-_exists_:email", USERS, r))
        assert.is_false(filter.match("email_verified:false", USERS, r))
        assert.is_true(filter.match("-email:x", USERS, r))
        assert.is_false(filter.match("name:>a", USERS, r))
        assert.is_true(filter.match("login_count:0", USERS, r))
        assert.is_false(filter.match("x", USERS, r))
        assert.is_true(filter.match("-x", USERS, r))
    end)

    it("substring fields match parts of the value (resourceServers name:, SQL parity)", function()
        local S = { fields = { name = { substring = true }, identifier = { substring = true, ci = true }, id = true } }
        local rs = { { id = "1", name = "My API", identifier = "https://API.example.com" }, { id = "2", name = "Other" } }
        assert.equals(1, #filter.apply(rs, "name:API", S))
        assert.equals(0, #filter.apply(rs, "name:api", S))
        assert.equals(1, #filter.apply(rs, "identifier:api.example", S))
        assert.equals(1, #filter.apply(rs, "-name:API", S))
        assert.is_nil(filter.equality(filter.parse("name:API", S), "name"))
    end)

    it("reads fields through key and get (e.g. logs' location_info)", function()
        local S = {
            fields = {
                country_code = { get = function(r) return r.location_info and r.location_info.country_code end },
                ip = { key = "ip_address" },
            },
            search = { { field = "country_code", mode = "exact" }, { field = "ip" } },
        }
        local rs = { { location_info = { country_code = "SE" }, ip_address = "10.0.0.1" }, { ip_address = "192.168.1.1" } }
        assert.equals(1, #filter.apply(rs, "country_code:SE", S))
        assert.equals(1, #filter.apply(rs, "-_exists_:country_code", S))
        assert.equals(1, #filter.apply(rs, "ip:192.168.1.1", S))
        assert.equals(1, #filter.apply(rs, "SE", S))
        assert.equals(2, #filter.apply(rs, "168 OR SE", S))
    end)
end)

describe("filter.equality", function()
    local function eq(q, field) return filter.equality(filter.parse(q, USERS), field) end

    it("finds a positive equality in a single AND group", function()
        assert.equals("bob@example.com", eq("email:bob@example.com", "email"))
        assert.equals("bob@example.com", eq("email:Bob@Example.com provider:auth2", "email"))
        assert.equals("auth2", eq("email:Bob@Example.com provider:auth2", "provider"))
        assert.equals("auth0|abc-123", eq('user_id:"auth0|abc\\-123"', "user_id"))
        assert.equals("auth2|alice", eq("-_exists_:email linked_to:auth2|alice AND provider:x", "linked_to"))
        assert.equals("a b", eq('name:"a b"', "name"))
        assert.equals(3, eq("login_count:3", "login_count"))
        assert.equals(false, eq("email_verified:0", "email_verified"))
    end)

    it("is nil without such a clause, under OR, for negations and comparisons", function()
        assert.is_nil(eq("", "email"))
        assert.is_nil(eq("provider:auth2", "email"))
        assert.is_nil(eq("email:a@x.com OR email:b@x.com", "email"))
        assert.is_nil(eq("email:a@x.com provider:p OR provider:q", "email"))
        assert.is_nil(eq("-email:a@x.com", "email"))
        assert.is_nil(eq("email:>a@x.com", "email"))
        assert.is_nil(eq("-email:>a@x.com", "email"))
        assert.is_nil(eq("_exists_:email", "email"))
        assert.is_nil(eq("a@x.com", "email"))
        assert.is_nil(eq("email:a@x.com", "user_id"))
    end)

    it("skips a negated clause and finds the positive one after it", function()
        assert.equals("b@x.com", eq("-email:a@x.com email:b@x.com", "email"))
    end)
end)

describe("filter helpers", function()
    it("fields_used lists field, _exists_ and free-text target fields", function()
        assert.same({ email = true, linked_to = true, login_count = true },
            filter.fields_used(filter.parse("email:a -_exists_:linked_to OR login_count:>1", USERS)))
        assert.same({ email = true, name = true, phone_number = true, user_id = true },
            filter.fields_used(filter.parse("alice", USERS)))
        assert.same({}, filter.fields_used(filter.parse("", USERS)))
    end)

    it("apply keeps order, returns a new array with the core's array marker", function()
        local out = filter.apply(ALL, "provider:auth2", USERS)
        assert.equals(alice, out[1])
        assert.equals(bob, out[2])
        assert.is_true(core.is_array(out))
        local none = filter.apply(ALL, "provider:nobody", USERS)
        assert.equals(0, #none)
        assert.is_true(core.is_array(none))
        assert.equals(4, #ALL)
    end)

    it("predicate caches per (q, spec) and still validates", function()
        local p1 = filter.predicate("email:a@b.c", USERS)
        assert.equals(p1, filter.predicate("email:a@b.c", USERS))
        assert.not_equals(p1, filter.predicate("email:a@b.c", { fields = USERS.fields }))
        for k = 1, 300 do filter.predicate("login_count:" .. k, USERS) end
        assert.is_true(filter.predicate("login_count:7", USERS)(alice))
        local ok, err = pcall(filter.match, "nope:1", USERS, alice)
        assert.is_false(ok)
        assert.is_true(errors.is(err, "ValidationError"))
    end)

    it("the AST is plain tables", function()
        local ast = filter.parse('email:A@b.c -_exists_:linked_to OR -login_count:>5 alice', USERS)
        assert.equals("or", ast.op)
        assert.equals("and", ast[1].op)
        assert.same({ "eq", "email", "a@b.c", "A@b.c" }, { ast[1][1].op, ast[1][1].field, ast[1][1].value, ast[1][1].text })
        assert.same({ "exists", "linked_to", true }, { ast[1][2].op, ast[1][2].field, ast[1][2].negate })
        assert.same({ "le", 5 }, { ast[2][1].op, ast[2][1].value })
        assert.same({ "text", "alice" }, { ast[2][2].op, ast[2][2].value })
        -- one parse, many compiles
        assert.is_true(filter.compile(ast)({ email = "a@b.c" }))
        assert.is_true(filter.compile(ast)({ email = "x", login_count = 1, name = "Alice" }))
    end)

    it("filters 10k records with a 3-clause query in a few ms", function()
        local rs = {}
        for k = 1, 10000 do
            rs[k] = {
                user_id = "auth2|u" .. k, email = "user" .. k .. "@example.com", provider = k % 3 == 0 and "auth2" or "google",
                login_count = k % 10, linked_to = k % 7 == 0 and "auth2|u1" or nil,
            }
        end
        local q = "provider:auth2 -_exists_:linked_to login_count:>4"
        local pred = filter.compile(filter.parse(q, USERS))
        local t0 = os.clock()
        local n = 0
        for _ = 1, 5 do
            n = 0
            for k = 1, #rs do if pred(rs[k]) then n = n + 1 end end
        end
        local per_run = (os.clock() - t0) / 5
        local expect = 0
        for k = 1, 10000 do
            if k % 3 == 0 and k % 7 ~= 0 and k % 10 > 4 then expect = expect + 1 end
        end
        assert.equals(expect, n)
        assert.is_true(per_run < 0.05, string.format("%.1f ms per 10k records", per_run * 1000))
    end)
end)

-- A random query generator that also builds the meaning of each query, evaluated by a reference
-- written from the contract's words; compile() must agree with it on random records.
describe("filter: compile() against a reference evaluator", function()
    local S = {
        fields = {
            s = true, e = { ci = true }, b = { type = "boolean" }, n = { type = "number", default = 0 },
            t = true, x = true,
        },
        search = { { field = "e", mode = "substring" }, { field = "s", mode = "exact" } },
    }
    local STORED = {
        s = { "nil", "null", "a", "b", "a b", "auth0|x-1", "A", 'q"t', "x:y" },
        e = { "nil", "al@x.com", "AL@X.com", "bo@y.org", "null" },
        b = { "nil", "null", true, false },
        n = { "nil", "null", 0, 3, 5, "5", 7.5, "abc" },
        t = { "nil", "2026-01-01T00:00:00.000Z", "2025-12-31T23:59:59.999Z", "2026-02-01T10:00:00.000Z" },
        x = { "nil", "null", "v", "" },
    }
    local LITS = {
        s = { "a", "b", "a b", "auth0|x-1", "A", 'q"t', "x:y", "-a", ">a", "(p)" },
        e = { "al@x.com", "AL@x.COM", "bo@y.org", "zz" },
        b = { "true", "false", "1", "0", "TRUE" },
        n = { "0", "3", "5", "5.0", "6", "-1", "7.5" },
        t = { "2026-01-01", "2026-01-01T00:00:00.000Z", "2026-02", "2025" },
    }
    local WORDS = { "al", "X.COM", "bo@", "a", "a b", "auth0|x-1", "x:y", "zz", "-a" }
    local CMP_FIELDS = { "s", "e", "n", "t" }
    local ALL_FIELDS = { "s", "e", "b", "n", "t" }
    local OPS = { "lt", "le", "gt", "ge" }
    local OP_TEXT = { lt = "<", le = "<=", gt = ">", ge = ">=" }

    local rnd
    do -- a small LCG so the run is reproducible on both interpreters
        local state = 12345
        rnd = function(n)
            state = (state * 1103515245 + 12345) % 2147483648
            return state % n + 1
        end
    end
    local function pick(list) return list[rnd(#list)] end

    local SPECIAL = '[%-|:"\\*+!(){}%[%]^~?/&=<> ]'
    local function render_value(v)
        if rnd(2) == 1 then
            return '"' .. v:gsub('[\\"]', "\\%0") .. '"'
        end
        local out = v:gsub(SPECIAL, "\\%0")
        return out
    end

    local function gen_clause()
        local kind = rnd(10)
        local neg = rnd(3) == 1
        if kind <= 5 then
            local f = pick(ALL_FIELDS)
            local lit = pick(LITS[f])
            return { kind = "eq", field = f, lit = lit, neg = neg },
                (neg and "-" or "") .. f .. (rnd(4) == 1 and "=" or ":") .. render_value(lit)
        elseif kind <= 7 then
            local f = pick(CMP_FIELDS)
            local lit, op = pick(LITS[f]), pick(OPS)
            return { kind = "cmp", field = f, op = op, lit = lit, neg = neg },
                (neg and "-" or "") .. f .. ":" .. OP_TEXT[op] .. render_value(lit)
        elseif kind <= 8 then
            local f = pick({ "s", "e", "b", "n", "x" })
            return { kind = "exists", field = f, neg = neg }, (neg and "-" or "") .. "_exists_:" .. f
        end
        local w = pick(WORDS)
        return { kind = "text", word = w, neg = neg }, (neg and "-" or "") .. render_value(w)
    end

    local function gen_query()
        local groups, parts = {}, {}
        for g = 1, rnd(3) do
            local clauses, texts = {}, {}
            for k = 1, rnd(3) do
                clauses[k], texts[#texts + 1] = gen_clause()
                if rnd(5) == 1 then texts[#texts + 1] = "AND" end
            end
            groups[g] = clauses
            parts[g] = table.concat(texts, rnd(4) == 1 and "  " or " ")
        end
        return groups, table.concat(parts, pick({ " OR ", " or ", " Or " }))
    end

    local function gen_record()
        local r = {}
        for f, values in pairs(STORED) do
            local v = pick(values)
            if v == "null" then r[f] = null elseif v ~= "nil" then r[f] = v end
        end
        return r
    end

    -- The reference: a direct reading of §3.5.
    local function present(r, f) return r[f] ~= nil and r[f] ~= null end
    local function value_of(r, f)
        if present(r, f) then return r[f] end
        if f == "n" then return 0 end
        return nil
    end
    local function compare(a, op, b)
        if op == "lt" then return a < b elseif op == "le" then return a <= b
        elseif op == "gt" then return a > b else return a >= b end
    end
    local function typed_pair(r, f, lit)
        local v = value_of(r, f)
        if v == nil then return nil end
        if f == "n" then return tonumber(v), tonumber(lit) end
        if f == "e" then return v:lower(), lit:lower() end
        return v, lit
    end
    local function ref_clause(c, r)
        local res
        if c.kind == "exists" then
            res = present(r, c.field)
        elseif c.kind == "text" then
            local e, s = r.e, r.s
            res = (type(e) == "string" and e:lower():find(c.word:lower(), 1, true) ~= nil)
                or (type(s) == "string" and s == c.word)
        elseif c.kind == "eq" and c.field == "b" then
            local v = value_of(r, "b")
            res = v ~= nil and v == (c.lit:lower() == "true" or c.lit == "1")
        elseif c.kind == "eq" then
            local a, b = typed_pair(r, c.field, c.lit)
            res = a ~= nil and a == b
        else
            local a, b = typed_pair(r, c.field, c.lit)
            if a == nil then return false end -- a comparison, negated or not, needs a value
            res = compare(a, c.op, b)
        end
        if c.neg then return not res end
        return res
    end
    local function ref_match(groups, r)
        for _, g in ipairs(groups) do
            local all = true
            for _, c in ipairs(g) do
                if not ref_clause(c, r) then all = false break end
            end
            if all then return true end
        end
        return false
    end

    it("agrees on 1500 random queries x 30 random records", function()
        local records = {}
        for k = 1, 30 do records[k] = gen_record() end
        local hits, checked = 0, 0
        for _ = 1, 1500 do
            local groups, q = gen_query()
            local ok, pred = pcall(filter.predicate, q, S)
            assert.is_true(ok, q .. " -> " .. tostring(pred))
            for _, r in ipairs(records) do
                local want = ref_match(groups, r)
                if want then hits = hits + 1 end
                checked = checked + 1
                if pred(r) ~= want then
                    local fields = {}
                    for f, v in pairs(r) do fields[#fields + 1] = f .. "=" .. tostring(v) end
                    table.sort(fields)
                    error(string.format("q = %s\nrecord = { %s }\nexpected %s", q, table.concat(fields, ", "),
                        tostring(want)))
                end
            end
        end
        -- the generator must exercise both outcomes
        assert.is_true(hits > checked / 20 and hits < checked * 19 / 20, hits .. " of " .. checked)
    end)
end)
