-- core.lower (csrc/unicode.c, ICU): lower-casing with exactly the result of JavaScript's
-- String.prototype.toLowerCase (contract §2.4), checked against node itself: every code point on
-- its own, and whole strings (final sigma, İ, multi-code-point results, mixed scripts, random mixes).
-- Where node's Unicode is newer than the linked ICU's, the code points only one of them assigns are
-- left out of the per-code-point comparison, and the spec prints how many.
local core = require "authhero.aws.core"

local floor = math.floor

-- code point -> UTF-8 (no utf8 library on LuaJIT)
local function utf8_char(cp)
    if cp < 0x80 then return string.char(cp) end
    if cp < 0x800 then return string.char(0xC0 + floor(cp / 64), 0x80 + cp % 64) end
    if cp < 0x10000 then
        return string.char(0xE0 + floor(cp / 4096), 0x80 + floor(cp / 64) % 64, 0x80 + cp % 64)
    end
    return string.char(0xF0 + floor(cp / 262144), 0x80 + floor(cp / 4096) % 64, 0x80 + floor(cp / 64) % 64,
        0x80 + cp % 64)
end

local U = utf8_char

-- UTF-8 (valid) -> its code points
local function cps(s)
    local out = {}
    local i = 1
    while i <= #s do
        local c = s:byte(i)
        local n = c < 0x80 and 1 or c < 0xE0 and 2 or c < 0xF0 and 3 or 4
        local cp = n == 1 and c or c % (2 ^ (7 - n))
        for j = 1, n - 1 do cp = cp * 64 + s:byte(i + j) % 64 end
        out[#out + 1] = cp
        i = i + n
    end
    return out
end

local function hex_cps(s) -- "0069 0307" for display
    local out = {}
    for _, cp in ipairs(cps(s)) do out[#out + 1] = string.format("%04X", cp) end
    return table.concat(out, " ")
end

-- The node program: argv[2] = file of JSON strings to lower-case (-> argv[3], JSON); argv[4] gets
-- the Unicode version, node's assigned code point ranges ("A lo hi") and every code point whose
-- lower case differs from itself ("C cp lower-cased code points...").
local NODE = [[
const fs = require("fs");
const [input, output, table] = process.argv.slice(2);
fs.writeFileSync(output, JSON.stringify(JSON.parse(fs.readFileSync(input, "utf8")).map(s => s.toLowerCase())));
const lines = [process.versions.unicode];
const assigned = /\p{Assigned}/u;
let lo = -1;
for (let cp = 0; cp <= 0x110000; cp++) {
  const a = cp <= 0x10ffff && assigned.test(String.fromCodePoint(cp));
  if (a && lo < 0) lo = cp;
  if (!a && lo >= 0) { lines.push("A " + lo + " " + (cp - 1)); lo = -1; }
  if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) continue;
  const s = String.fromCodePoint(cp), l = s.toLowerCase();
  if (l !== s) lines.push("C " + cp + " " + Array.from(l, c => c.codePointAt(0)).join(" "));
}
fs.writeFileSync(table, lines.join("\n") + "\n");
]]

local function tmpname()
    local n = os.tmpname()
    os.remove(n)
    return n
end

-- Runs node over strings; returns the lower-cased strings, node's Unicode version, its assigned
-- ranges and its changed code points.
local function node_lower(strings)
    local prog, input, output, tbl = tmpname() .. ".js", tmpname(), tmpname(), tmpname()
    local f = assert(io.open(prog, "w"))
    f:write(NODE)
    f:close()
    f = assert(io.open(input, "w"))
    f:write(core.json_encode(core.array(strings)))
    f:close()
    local ok = os.execute("node " .. prog .. " " .. input .. " " .. output .. " " .. tbl)
    assert(ok == true or ok == 0, "node failed (node is needed: scripts/setup-deps installs nodejs)")
    f = assert(io.open(output))
    local lowered = core.json_decode(f:read("*a"))
    f:close()
    local version, ranges, changed = nil, {}, {}
    for line in io.lines(tbl) do
        if version == nil then
            version = line
        elseif line:sub(1, 1) == "A" then
            local lo, hi = line:match("^A (%d+) (%d+)$")
            ranges[#ranges + 1] = { tonumber(lo), tonumber(hi) }
        else
            local parts = {}
            for n in line:gmatch("%d+") do parts[#parts + 1] = tonumber(n) end
            local out = {}
            for i = 2, #parts do out[#out + 1] = utf8_char(parts[i]) end
            changed[parts[1]] = table.concat(out)
        end
    end
    for _, p in ipairs({ prog, input, output, tbl }) do os.remove(p) end
    return lowered, version, ranges, changed
end

-- deterministic pseudo-random numbers (the same on every Lua)
local function lcg(seed)
    local state = seed
    return function(n)
        state = (state * 1103515245 + 12345) % 2147483648
        return state % n + 1
    end
end

local FIXED = {
    "JÖRG@Example.com", "jörg@example.com", "ΟΔΟΣ", "ΟΔΟΣ ΟΔΟΣ.", "Σ", "ΣΑ", "ΑΣ", "ΑΣ́", "ΑΣ́Β", "ΑΣ'", "Α'Σ",
    ("ΑΣ" .. U(0x0345)), "ΑΣΣ", "ΣΣΣ", "Α.Σ", "AΣ", "1Σ", "ΑΣ1", "İ", "İstanbul", "Iİı", ("I" .. U(0x0307)), "ẞ", "ß",
    "ǄǅǆǇǈǉ", "ᾈᾼῌ", "ΐ", "Ꭰ", "ᏴᎠᏣ", "𐐀𐐁", "ᲐᲑᲒ", "ⒶⒷ", "KÅΩ", "Ǳ", "ÀÉÎÕÜ", "ÆØÅ", "Ⅻ", "ＡＢＣ",
    "Ա", "Ǌ", "Ȁ", "ɐ", "ABC", "abc", "", "a\0B", "Mixed ΑΒΓ АБВ ԱԲԳ ᎠᎡ 𐐀 ＡＢ ǅ İ Σ.",
}
local POOL = { "A", "Z", "a", "I", "i", "'", ".", " ", "@", "1", "Σ", "σ", "ς", "Α", U(0x0301), U(0x0345),
    U(0x00AD), U(0x200D), "İ", "ı", "Ï", "ẞ", "ᾈ", "Ꭰ", "𐐀", "Ა", "ǅ", "K", "Ω", "Ä", "Ж", "Ա", "😀", "Ⓐ",
    U(0x0307), U(0x1F88), U(0x1E900), U(0x10A0) }

describe("core.lower", function()
    it("lower-cases ASCII fast, returns ASCII without capitals unchanged and refuses bad UTF-8", function()
        assert.equals("abc@example.com", core.lower("ABC@Example.COM"))
        assert.equals("already lower 123", core.lower("already lower 123"))
        assert.equals("", core.lower(""))
        assert.equals("a\0b", core.lower("A\0B"))
        assert.equals("jörg@example.com", core.lower("JÖRG@Example.com"))
        for _, bad in ipairs({ "\255", "a\195", "\237\160\128", "\192\175", "\244\144\128\128", "ok\128" }) do
            local ok, err = pcall(core.lower, bad, "email")
            assert.is_false(ok)
            assert.equals(400, err.status)
            assert.equals("ValidationError", err.code)
            assert.matches("^email is not valid UTF%-8", err.message)
        end
        local ok, err = pcall(core.lower, "x\255")
        assert.is_false(ok)
        assert.matches("string is not valid UTF%-8 %(byte 2%)", err.message)
        assert.has_error(function() core.lower({}) end)
    end)

    it("matches JavaScript's toLowerCase on every code point and on whole strings", function()
        local strings = {}
        for _, s in ipairs(FIXED) do strings[#strings + 1] = s end
        local rnd = lcg(20261204)
        for _ = 1, 3000 do
            local parts = {}
            for _ = 1, rnd(12) do parts[#parts + 1] = POOL[rnd(#POOL)] end
            strings[#strings + 1] = table.concat(parts)
        end
        local expected, version, ranges, changed = node_lower(strings)
        assert.equals(#strings, #expected)

        -- every code point (surrogates are not UTF-8), except those only one side assigns
        local compared, left_out, left_out_differ, differ, unknown = 0, 0, 0, 0, {}
        local r = 1
        for cp = 0, 0x10FFFF do
            if cp < 0xD800 or cp > 0xDFFF then
                while ranges[r] and ranges[r][2] < cp do r = r + 1 end
                local node_assigned = ranges[r] ~= nil and ranges[r][1] <= cp
                local s = utf8_char(cp)
                local want, got = changed[cp] or s, core.lower(s)
                if node_assigned ~= core.unicode_assigned(cp) then
                    left_out = left_out + 1
                    unknown[cp] = true
                    if got ~= want then left_out_differ = left_out_differ + 1 end
                else
                    compared = compared + 1
                    if got ~= want then
                        differ = differ + 1
                        if differ <= 10 then
                            print(string.format("U+%04X: JavaScript %s, core.lower %s", cp, hex_cps(want), hex_cps(got)))
                        end
                    end
                end
            end
        end
        print(string.format("core.lower vs node: node Unicode %s, ICU Unicode %s; %d code points compared, %d left "
            .. "out (assigned by only one of them; %d of those lower-case differently)", version,
            core.unicode_version(), compared, left_out, left_out_differ))
        assert.equals(0, differ)
        assert.is_true(compared > 1100000)

        -- whole strings, except those holding a code point only one side assigns
        local skipped = 0
        for i, str in ipairs(strings) do
            local foreign = false
            for _, c in ipairs(cps(str)) do
                if unknown[c] then foreign = true end
            end
            if foreign then
                skipped = skipped + 1
            else
                local got = core.lower(str)
                assert(got == expected[i], string.format("%q: JavaScript %s, core.lower %s", str,
                    hex_cps(expected[i]), hex_cps(got)))
            end
        end
        print(string.format("core.lower vs node: %d of %d whole strings compared", #strings - skipped, #strings))
        assert.is_true(skipped < #strings / 100)
    end)
end)
