/* DynamoDB JSON text -> Lua values in one pass: a strict JSON reader that turns AttributeValues
 * straight into plain Lua values (no {"S": ...} tables in between). Malformed or truncated input
 * raises a MarshalError naming the byte offset and attribute path; a partly built table is never
 * returned. Deliberately not here: interpreting error replies (client.lua does that). */
#include <limits.h>
#include <stdint.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "marshal.h"

#if defined(__SSE2__) && defined(__GNUC__)
#include <emmintrin.h>
#endif

#define UV_BUF    lua_upvalueindex(1)
#define UV_ARRAY  lua_upvalueindex(2)
#define UV_SET    lua_upvalueindex(3)
#define UV_BINARY lua_upvalueindex(4)
#define UV_CACHE  lua_upvalueindex(5) /* struct dec_cache */
#define UV_CSTRS  lua_upvalueindex(6) /* the table keeping the cached strings alive */

/* Items in one reply share attribute names, usually in the same order, and many values (PK,
 * entityType, tenant_id, ...). The strings seen at each attribute position of the last item are
 * kept, so the next item reuses them after a memcmp instead of hashing and interning them again.
 * Slots 0..DEC_SLOTS-1 hold names, DEC_SLOTS.. the short S values. */
#define DEC_SLOTS  64
#define DEC_MAXLEN 40
struct dec_cache {
    const char *p[2 * DEC_SLOTS];
    size_t n[2 * DEC_SLOTS];
    unsigned char misses[2 * DEC_SLOTS]; /* in a row; a slot whose value keeps changing (an id,
                                            an email) stops being refilled after DEC_MAXMISS */
    unsigned char raw[2 * DEC_SLOTS];    /* 1: the string was read without escapes, so input that
                                            holds its bytes between quotes is that string */
};
#define DEC_MAXMISS 3

struct dec {
    lua_State *L;
    const char *start, *p, *end;
    struct buf *b; /* scratch: unescaped strings, base64 output */
    struct dec_cache *cache;
    int item_hint; /* attributes in the last item: presizes the next one */
    int slot;      /* cache slot of the value about to be read at an item's top, or -1 */
    int plain;     /* 1: JSON only, no field holds AttributeValues (core.json_decode) */
    int field;     /* marshal_field_kind of the object field about to be read (dec_object) */
};

/* A string as read: its bytes (in the input, or in the scratch buffer when it had escapes) and
 * its raw bytes in the input (for error paths). */
struct str {
    const char *s, *raw;
    size_t n, rawn;
};

#define DEC_FAIL(d, path, ...) l_marshal_fail((d)->L, 0, (path), __VA_ARGS__)

static int dec_at(const struct dec *d) { return (int)(d->p - d->start) + 1; }

static void dec_ws(struct dec *d)
{
    while (d->p < d->end && (*d->p == ' ' || *d->p == '\n' || *d->p == '\r' || *d->p == '\t'))
        d->p++;
}

static void dec_expect_slow(struct dec *d, char c, const struct marshal_path *path)
{
    dec_ws(d);
    if (d->p >= d->end)
        DEC_FAIL(d, path, "truncated JSON: expected '%c' at byte %d", c, dec_at(d));
    if (*d->p != c)
        DEC_FAIL(d, path, "malformed JSON: expected '%c' at byte %d", c, dec_at(d));
    d->p++;
}

/* DynamoDB writes no whitespace: the common case is one compare. */
static inline void dec_expect(struct dec *d, char c, const struct marshal_path *path)
{
    if (d->p < d->end && *d->p == c)
        d->p++;
    else
        dec_expect_slow(d, c, path);
}

/* Skips the bytes a string may hold as they are (no '"', '\\', control or non-ASCII byte),
 * sixteen at a time with SSE2, then eight at a time; the caller steps over the last few. */
static inline const unsigned char *dec_skip_plain(const unsigned char *p, const unsigned char *end)
{
#if defined(__SSE2__) && defined(__GNUC__)
    /* sixteen at a time where SSE2 is the baseline (x86-64): the exact offset of the first byte
     * that is not plain; as a signed byte, one >= 0x80 is below 0x20 too */
    const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\'),
                  space = _mm_set1_epi8(0x20);
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
        __m128i hit =
            _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bslash)),
                         _mm_cmplt_epi8(v, space));
        unsigned m = (unsigned)_mm_movemask_epi8(hit);
        if (m != 0)
            return p + __builtin_ctz(m);
        p += 16;
    }
#endif
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    while (end - p >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        uint64_t q = w ^ (ones * '"'), bs = w ^ (ones * '\\');
        uint64_t hit = ((q - ones) & ~q) | ((bs - ones) & ~bs) | ((w - ones * 0x20) & ~w) | w;
        if (hit & highs)
            break;
        p += 8;
    }
    return p;
}

/* 0: plain byte; 1: '"'; 2: '\\'; 3: control (invalid raw); 4: >= 0x80 (UTF-8, checked). */
static const unsigned char dec_class[256] = {
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
};

static int dec_hex4(const char *s)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= c - '0';
        else if (c >= 'a' && c <= 'f')
            v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            v |= c - 'A' + 10;
        else
            return -1;
    }
    return v;
}

static void dec_put_utf8(lua_State *L, struct buf *b, unsigned cp)
{
    buf_reserve(L, b, 4);
    char *o = b->p + b->len;
    if (cp < 0x80) {
        *o++ = (char)cp;
    } else if (cp < 0x800) {
        *o++ = (char)(0xC0 | cp >> 6);
        *o++ = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *o++ = (char)(0xE0 | cp >> 12);
        *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *o++ = (char)(0x80 | (cp & 0x3F));
    } else {
        *o++ = (char)(0xF0 | cp >> 18);
        *o++ = (char)(0x80 | ((cp >> 12) & 0x3F));
        *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *o++ = (char)(0x80 | (cp & 0x3F));
    }
    b->len = (size_t)(o - b->p);
}

/* Reads a string literal (d->p at or before its '"'). Its bytes stay valid until the next string
 * is read (they may live in the scratch buffer). */
static struct str dec_string_slow(struct dec *d, const struct marshal_path *path)
{
    struct str out;
    dec_ws(d);
    if (d->p >= d->end)
        DEC_FAIL(d, path, "truncated JSON: expected a string at byte %d", dec_at(d));
    if (*d->p != '"')
        DEC_FAIL(d, path, "malformed JSON: expected a string at byte %d", dec_at(d));
    const unsigned char *p = (const unsigned char *)++d->p, *end = (const unsigned char *)d->end;
    out.raw = d->p;
    for (;;) {
        p = dec_skip_plain(p, end);
        while (p < end && dec_class[*p] == 0)
            p++;
        if (p >= end)
            goto truncated;
        if (*p == '"') {
            out.s = out.raw;
            out.n = out.rawn = (size_t)((const char *)p - out.raw);
            d->p = (const char *)p + 1;
            return out;
        }
        if (*p >= 0x80) {
            int len = marshal_utf8_len(p, end);
            if (len == 0)
                goto bad_utf8;
            p += len;
            continue;
        }
        if (*p == '\\')
            break;
        d->p = (const char *)p;
        DEC_FAIL(d, path, "malformed JSON: control character in string at byte %d", dec_at(d));
    }
    /* slow path: unescape into the scratch buffer */
    struct buf *b = d->b;
    b->len = 0;
    buf_put(d->L, b, out.raw, (size_t)((const char *)p - out.raw));
    for (;;) {
        const unsigned char *run = p;
        p = dec_skip_plain(p, end);
        while (p < end && dec_class[*p] == 0)
            p++;
        buf_put(d->L, b, (const char *)run, (size_t)(p - run));
        if (p >= end)
            goto truncated;
        if (*p == '"')
            break;
        if (*p >= 0x80) {
            int len = marshal_utf8_len(p, end);
            if (len == 0)
                goto bad_utf8;
            buf_put(d->L, b, (const char *)p, (size_t)len);
            p += len;
            continue;
        }
        if (*p != '\\') {
            d->p = (const char *)p;
            DEC_FAIL(d, path, "malformed JSON: control character in string at byte %d", dec_at(d));
        }
        if (end - p < 2)
            goto truncated;
        char c = (char)p[1], o;
        p += 2;
        switch (c) {
        case '"':
            o = '"';
            break;
        case '\\':
            o = '\\';
            break;
        case '/':
            o = '/';
            break;
        case 'b':
            o = '\b';
            break;
        case 'f':
            o = '\f';
            break;
        case 'n':
            o = '\n';
            break;
        case 'r':
            o = '\r';
            break;
        case 't':
            o = '\t';
            break;
        case 'u': {
            if (end - p < 4)
                goto truncated;
            int cp = dec_hex4((const char *)p);
            if (cp < 0)
                goto bad_escape;
            p += 4;
            if (cp >= 0xDC00 && cp <= 0xDFFF)
                goto bad_escape; /* a low surrogate alone */
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (end - p < 6)
                    goto truncated;
                int lo = p[0] == '\\' && p[1] == 'u' ? dec_hex4((const char *)p + 2) : -1;
                if (lo < 0xDC00 || lo > 0xDFFF)
                    goto bad_escape; /* a high surrogate alone */
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                p += 6;
            }
            dec_put_utf8(d->L, b, (unsigned)cp);
            continue;
        }
        default:
            goto bad_escape;
        }
        buf_putc(d->L, b, o);
    }
    out.rawn = (size_t)((const char *)p - out.raw);
    out.s = b->p;
    out.n = b->len;
    d->p = (const char *)p + 1;
    return out;
truncated:
    d->p = d->end;
    DEC_FAIL(d, path, "truncated JSON: unterminated string");
bad_utf8:
    d->p = (const char *)p;
    DEC_FAIL(d, path, "invalid UTF-8 in string at byte %d", dec_at(d));
bad_escape:
    d->p = (const char *)p;
    DEC_FAIL(d, path, "malformed JSON: bad escape in string near byte %d", dec_at(d));
    return out; /* not reached */
}

/* memcmp(a, b, n) == 0 for the short strings of the cache, without a libc call. */
static inline int dec_same(const char *a, const char *b, size_t n)
{
    while (n >= 8) {
        uint64_t x, y;
        memcpy(&x, a, 8);
        memcpy(&y, b, 8);
        if (x != y)
            return 0;
        a += 8;
        b += 8;
        n -= 8;
    }
    while (n > 0) {
        if (*a++ != *b++)
            return 0;
        n--;
    }
    return 1;
}

/* Pushes s, from the cache slot when it holds the same bytes (slot < 0: no caching). raw: s was
 * read as it stands in the input (no escapes). */
static void dec_push_string(struct dec *d, int slot, const char *s, size_t n, int raw)
{
    lua_State *L = d->L;
    struct dec_cache *c = d->cache;
    if (slot < 0 || n > DEC_MAXLEN) {
        lua_pushlstring(L, s, n);
        return;
    }
    if (c->n[slot] == n && c->p[slot] != NULL && dec_same(c->p[slot], s, n)) {
        c->misses[slot] = 0;
        lua_rawgeti(L, UV_CSTRS, slot + 1);
        return;
    }
    lua_pushlstring(L, s, n);
    if (c->misses[slot] >= DEC_MAXMISS)
        return; /* unique per item: keep the old entry, still compared (it may come back) */
    c->misses[slot]++;
    lua_pushvalue(L, -1);
    lua_rawseti(L, UV_CSTRS, slot + 1);
    c->p[slot] = lua_tostring(L, -1);
    c->n[slot] = n;
    c->raw[slot] = (unsigned char)raw;
}

/* When the input at p is '"', the bytes of the string cached in slot (read raw), '"' and then
 * term: pushes that string and returns where term ends; else NULL, nothing pushed. Saves scanning
 * an attribute name, or a value that repeats, before comparing it. */
static inline const char *dec_cached_at(struct dec *d, int slot, const char *p, char term)
{
    struct dec_cache *c = d->cache;
    size_t n = c->n[slot];
    if (!c->raw[slot] || (size_t)(d->end - p) < n + 3 || p[0] != '"' || p[n + 1] != '"' ||
        p[n + 2] != term || !dec_same(p + 1, c->p[slot], n))
        return NULL;
    c->misses[slot] = 0;
    lua_rawgeti(d->L, UV_CSTRS, slot + 1);
    return p + n + 3;
}

/* The common case inline: a quoted run of plain ASCII bytes, no escapes. */
static inline struct str dec_string(struct dec *d, const struct marshal_path *path)
{
    const unsigned char *p = (const unsigned char *)d->p, *end = (const unsigned char *)d->end;
    if (p < end && *p == '"') {
        const unsigned char *q = dec_skip_plain(p + 1, end);
        while (q < end && dec_class[*q] == 0)
            q++;
        if (q < end && *q == '"') {
            struct str out;
            out.s = out.raw = (const char *)p + 1;
            out.n = out.rawn = (size_t)(q - p - 1);
            d->p = (const char *)q + 1;
            return out;
        }
    }
    return dec_string_slow(d, path);
}

/* true / false / null; returns 1, 0 or -1 (null). */
static int dec_literal(struct dec *d, const struct marshal_path *path)
{
    dec_ws(d);
    size_t left = (size_t)(d->end - d->p);
    if (left >= 4 && memcmp(d->p, "true", 4) == 0) {
        d->p += 4;
        return 1;
    }
    if (left >= 5 && memcmp(d->p, "false", 5) == 0) {
        d->p += 5;
        return 0;
    }
    if (left >= 4 && memcmp(d->p, "null", 4) == 0) {
        d->p += 4;
        return -1;
    }
    if (left == 0 || (left < 5 && memcmp(d->p, "false", left) == 0) ||
        (left < 4 && (memcmp(d->p, "true", left) == 0 || memcmp(d->p, "null", left) == 0)))
        DEC_FAIL(d, path, "truncated JSON at byte %d", dec_at(d));
    DEC_FAIL(d, path, "malformed JSON: unexpected character at byte %d", dec_at(d));
    return 0;
}

static void dec_bool(struct dec *d, const struct marshal_path *path)
{
    int v = dec_literal(d, path);
    if (v < 0)
        DEC_FAIL(d, path, "expected true or false at byte %d", dec_at(d));
    lua_pushboolean(d->L, v);
}

/* A plain JSON number: an integer when it is one and fits, else a double; beyond a double's range
 * a MarshalError. */
static void dec_plain_number(struct dec *d, const struct marshal_path *path)
{
    const char *s = d->p, *p = s, *end = d->end;
    int is_int = 1;
    if (p < end && *p == '-')
        p++;
    if (p >= end)
        DEC_FAIL(d, path, "truncated JSON: number at byte %d", dec_at(d));
    if (*p == '0')
        p++;
    else if (*p >= '1' && *p <= '9')
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    else
        DEC_FAIL(d, path, "malformed JSON: unexpected character at byte %d", dec_at(d));
    if (p < end && *p == '.') {
        is_int = 0;
        if (++p >= end || *p < '0' || *p > '9')
            DEC_FAIL(d, path, "malformed JSON: bad number at byte %d", dec_at(d));
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        is_int = 0;
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (p >= end || *p < '0' || *p > '9')
            DEC_FAIL(d, path, "malformed JSON: bad number at byte %d", dec_at(d));
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    }
    size_t n = (size_t)(p - s);
    d->p = p;
#if !COMPAT_DOUBLES
    if (is_int && n <= 18) { /* at most 18 digits: always fits an int64 */
        long long v = 0;
        for (const char *q = *s == '-' ? s + 1 : s; q < p; q++)
            v = v * 10 + (*q - '0');
        lua_pushinteger(d->L, *s == '-' ? -v : v);
        return;
    }
#else
    (void)is_int;
#endif
    char tmp[64];
    if (n >= sizeof tmp) {
        lua_pushlstring(d->L, s, n); /* absurdly long: keep its text */
        return;
    }
    char dp = localeconv()->decimal_point[0];
    for (size_t i = 0; i < n; i++)
        tmp[i] = s[i] == '.' ? dp : s[i];
    tmp[n] = '\0';
    double v = strtod(tmp, NULL);
    if (!isfinite(v)) /* 1e999: no double holds it, and no encoder would write it back */
        DEC_FAIL(d, path, "number out of range at byte %d", (int)(s - d->start) + 1);
    lua_pushnumber(d->L, (lua_Number)v);
}

static void dec_level(struct dec *d, int depth, int max, const struct marshal_path *path)
{
    if (depth > max)
        DEC_FAIL(d, path, "nesting deeper than %d levels", max);
    if (!lua_checkstack(d->L, 6))
        luaL_error(d->L, "stack overflow");
}

/* Calls each(d, depth, element path) for each element of a JSON array; returns the count. */
typedef void (*dec_each_fn)(struct dec *d, int depth, const struct marshal_path *path);

static int dec_array_of(struct dec *d, int depth, const struct marshal_path *path, dec_each_fn each,
                        int tbl)
{
    int n = 0;
    dec_expect(d, '[', path);
    dec_ws(d);
    if (d->p < d->end && *d->p == ']') {
        d->p++;
        return 0;
    }
    for (;;) {
        struct marshal_path step = {path, NULL, 0, n + 1};
        each(d, depth, &step);
        lua_rawseti(d->L, tbl, ++n);
        dec_ws(d);
        if (d->p >= d->end)
            DEC_FAIL(d, path, "truncated JSON: unterminated list");
        if (*d->p == ']') {
            d->p++;
            return n;
        }
        if (*d->p != ',')
            DEC_FAIL(d, path, "malformed JSON: expected ',' or ']' at byte %d", dec_at(d));
        d->p++;
    }
}

static void dec_av(struct dec *d, int depth, const struct marshal_path *path);

/* {"name": <AttributeValue>, ...} -> table. depth: of the attributes inside. */
static void dec_av_map(struct dec *d, int depth, int hint, const struct marshal_path *path)
{
    lua_State *L = d->L;
    dec_level(d, depth - 1, MARSHAL_MAX_DEPTH, path); /* the map itself sits one level up */
    dec_expect(d, '{', path);
    lua_createtable(L, 0, hint);
    int tbl = lua_gettop(L), n = 0;
    dec_ws(d);
    if (d->p < d->end && *d->p == '}') {
        d->p++;
        return;
    }
    for (;;) {
        int slot = depth == 1 && n < DEC_SLOTS ? n : -1;
        const char *after = slot < 0 ? NULL : dec_cached_at(d, slot, d->p, ':');
        struct marshal_path step = {path, d->p + 1, 0, 0};
        if (after != NULL) { /* the same name as the last item's at this position */
            step.klen = (size_t)(after - d->p) - 3;
            d->p = after;
        } else {
            struct str k = dec_string(d, path);
            step.key = k.raw;
            step.klen = k.rawn;
            dec_push_string(d, slot, k.s, k.n, k.s == k.raw);
            dec_expect(d, ':', &step);
        }
        d->slot = slot < 0 ? -1 : DEC_SLOTS + slot;
        dec_av(d, depth, &step);
        lua_rawset(L, tbl);
        n++;
        dec_ws(d);
        if (d->p >= d->end)
            DEC_FAIL(d, path, "truncated JSON: unterminated map");
        if (*d->p == '}') {
            d->p++;
            break;
        }
        if (*d->p != ',')
            DEC_FAIL(d, path, "malformed JSON: expected ',' or '}' at byte %d", dec_at(d));
        d->p++;
    }
    if (depth == 1)
        d->item_hint = n;
}

static void dec_item(struct dec *d, int depth, const struct marshal_path *path)
{
    (void)depth;
    dec_av_map(d, 1, d->item_hint, path);
}

static void dec_av_each(struct dec *d, int depth, const struct marshal_path *path)
{
    dec_av(d, depth, path);
}

static void dec_set_string(struct dec *d, int depth, const struct marshal_path *path)
{
    (void)depth;
    struct str s = dec_string(d, path);
    lua_pushlstring(d->L, s.s, s.n);
}

static void dec_set_number(struct dec *d, int depth, const struct marshal_path *path)
{
    (void)depth;
    struct str s = dec_string(d, path);
    if (l_marshal_push_number(d->L, s.s, s.n) != 0)
        DEC_FAIL(d, path, "invalid number text");
}

static void dec_set_binary(struct dec *d, int depth, const struct marshal_path *path)
{
    (void)depth;
    lua_State *L = d->L;
    struct str s = dec_string(d, path);
    int pinned = s.s != s.raw; /* unescaped into the scratch buffer: keep a copy while decoding */
    if (pinned) {
        lua_pushlstring(L, s.s, s.n);
        s.s = lua_tostring(L, -1);
    }
    struct buf *b = d->b;
    b->len = 0;
    buf_reserve(L, b, s.n / 4 * 3 + 3);
    long n = marshal_b64_decode((unsigned char *)b->p, s.s, s.n);
    if (n < 0)
        DEC_FAIL(d, path, "invalid base64 in binary value");
    if (pinned)
        lua_pop(L, 1);
    lua_createtable(L, 0, 1);
    lua_pushlstring(L, b->p, (size_t)n);
    lua_setfield(L, -2, "data");
    lua_pushvalue(L, UV_BINARY);
    lua_setmetatable(L, -2);
}

static void dec_marked_array(struct dec *d, int depth, const struct marshal_path *path,
                             dec_each_fn each, int mt)
{
    lua_createtable(d->L, 4, 0);
    int tbl = lua_gettop(d->L);
    dec_array_of(d, depth, path, each, tbl);
    lua_pushvalue(d->L, mt);
    lua_setmetatable(d->L, tbl);
}

/* {"T": value} -> the Lua value. depth: of this attribute (1 at an item's top). */
static void dec_av(struct dec *d, int depth, const struct marshal_path *path)
{
    lua_State *L = d->L;
    int slot = d->slot;
    d->slot = -1;
    /* the common shapes, as DynamoDB writes them */
    const char *p = d->p;
    int fast =
        d->end - p >= 6 && p[0] == '{' && p[1] == '"' && p[3] == '"' && p[4] == ':' && p[5] == '"';
    if (fast && p[2] == 'S') {
        const char *after;
        if (slot >= 0 && d->cache->misses[slot] < DEC_MAXMISS &&
            (after = dec_cached_at(d, slot, p + 5, '}')) != NULL) {
            d->p = after; /* the value the last item had here */
            return;
        }
        d->p += 5;
        struct str s = dec_string(d, path);
        dec_push_string(d, slot, s.s, s.n, s.s == s.raw);
        dec_expect(d, '}', path);
        return;
    }
    if (fast && p[2] == 'N') {
        d->p += 5;
        dec_set_number(d, depth, path);
        dec_expect(d, '}', path);
        return;
    }
    if (d->end - p >= 13 && p[0] == '{' && p[1] == '"' && p[6] == '"' && p[7] == ':') {
        static const char t[] = "{\"BOOL\":true}", f[] = "{\"BOOL\":false}",
                          n[] = "{\"NULL\":true}";
        if (dec_same(p, t, 13)) {
            d->p += 13;
            lua_pushboolean(L, 1);
            return;
        }
        if (d->end - p >= 14 && dec_same(p, f, 14)) {
            d->p += 14;
            lua_pushboolean(L, 0);
            return;
        }
        if (dec_same(p, n, 13)) {
            d->p += 13;
            lua_pushlightuserdata(L, NULL);
            return;
        }
    }
    dec_expect(d, '{', path);
    struct str tag = dec_string(d, path);
    dec_expect(d, ':', path);
#define TAG(lit) (tag.n == sizeof(lit) - 1 && memcmp(tag.s, lit, tag.n) == 0)
    if (TAG("S")) {
        struct str s = dec_string(d, path);
        dec_push_string(d, slot, s.s, s.n, s.s == s.raw);
    } else if (TAG("N")) {
        dec_set_number(d, depth, path);
    } else if (TAG("BOOL")) {
        dec_bool(d, path);
    } else if (TAG("M")) {
        dec_av_map(d, depth + 1, 0, path);
    } else if (TAG("L")) {
        dec_level(d, depth, MARSHAL_MAX_DEPTH, path);
        dec_marked_array(d, depth + 1, path, dec_av_each, UV_ARRAY);
    } else if (TAG("NULL")) {
        if (dec_literal(d, path) != 1)
            DEC_FAIL(d, path, "NULL must be true");
        lua_pushlightuserdata(L, NULL);
    } else if (TAG("B")) {
        dec_set_binary(d, depth, path);
    } else if (TAG("SS")) {
        dec_marked_array(d, depth, path, dec_set_string, UV_SET);
    } else if (TAG("NS")) {
        dec_marked_array(d, depth, path, dec_set_number, UV_SET);
    } else if (TAG("BS")) {
        dec_marked_array(d, depth, path, dec_set_binary, UV_SET);
    } else {
        lua_pushlstring(L, tag.s, tag.n > 16 ? 16 : tag.n);
        DEC_FAIL(d, path, "unknown attribute type \"%s\"", lua_tostring(L, -1));
    }
#undef TAG
    dec_expect(d, '}', path);
}

static void dec_plain(struct dec *d, int depth, const struct marshal_path *path);

static void dec_plain_each(struct dec *d, int depth, const struct marshal_path *path)
{
    dec_plain(d, depth + 1, path);
}

/* Reads a plain JSON object into a new table: each field's value is read by
 * value(d, depth + 1, step), with d->field set to the field's marshal_field_kind (0 in plain mode).
 * d->p is at or before the '{'. */
static void dec_object(struct dec *d, int depth, const struct marshal_path *path, dec_each_fn value)
{
    lua_State *L = d->L;
    dec_expect(d, '{', path);
    lua_createtable(L, 0, 4);
    int tbl = lua_gettop(L);
    dec_ws(d);
    if (d->p < d->end && *d->p == '}') {
        d->p++;
        return;
    }
    for (;;) {
        struct str k = dec_string(d, path);
        struct marshal_path step = {path, k.raw, k.rawn, 0};
        int field = d->plain ? 0 : marshal_field_kind(k.s, k.n);
        lua_pushlstring(L, k.s, k.n);
        dec_expect(d, ':', &step);
        dec_ws(d);
        d->field = field;
        value(d, depth + 1, &step);
        lua_rawset(L, tbl);
        dec_ws(d);
        if (d->p >= d->end)
            DEC_FAIL(d, path, "truncated JSON: unterminated object");
        if (*d->p == '}') {
            d->p++;
            return;
        }
        if (*d->p != ',')
            DEC_FAIL(d, path, "malformed JSON: expected ',' or '}' at byte %d", dec_at(d));
        d->p++;
    }
}

/* A list of items, as a table marked as an array. */
static void dec_item_list(struct dec *d, int depth, const struct marshal_path *path)
{
    dec_level(d, depth, MARSHAL_MAX_PLAIN_DEPTH, path);
    dec_marked_array(d, depth, path, dec_item, UV_ARRAY);
}

/* A reply field (d->field says which): items where marshal_field_kind says so (BatchGetItem's
 * Responses is an object of table name -> items), else plain JSON. */
static void dec_plain_field(struct dec *d, int depth, const struct marshal_path *path)
{
    switch (d->field) {
    case 1:
        dec_item(d, depth, path);
        return;
    case 2: /* BatchGetItem's Keys is a list of items; a stream record's Keys is one item */
        if (d->p < d->end && *d->p == '{')
            dec_item(d, depth, path);
        else
            dec_item_list(d, depth, path);
        return;
    case 3: /* TransactGetItems' Responses is a plain list of {Item}: that goes below */
        if (d->p < d->end && *d->p == '{') {
            dec_level(d, depth, MARSHAL_MAX_PLAIN_DEPTH, path);
            dec_object(d, depth, path, dec_item_list);
            return;
        }
        break;
    default:
        break;
    }
    dec_plain(d, depth, path);
}

/* Plain JSON: objects become tables, arrays tables marked as arrays, null core.null. Fields named
 * by marshal_field_kind hold AttributeValues and become plain Lua items. */
static void dec_plain(struct dec *d, int depth, const struct marshal_path *path)
{
    dec_level(d, depth, MARSHAL_MAX_PLAIN_DEPTH, path);
    dec_ws(d);
    if (d->p >= d->end)
        DEC_FAIL(d, path, "truncated JSON: expected a value at byte %d", dec_at(d));
    switch (*d->p) {
    case '{':
        dec_object(d, depth, path, dec_plain_field);
        return;
    case '[':
        dec_marked_array(d, depth, path, dec_plain_each, UV_ARRAY);
        return;
    case '"': {
        struct str s = dec_string(d, path);
        lua_pushlstring(d->L, s.s, s.n);
        return;
    }
    case '-':
    case '0':
    case '1':
    case '2':
    case '3':
    case '4':
    case '5':
    case '6':
    case '7':
    case '8':
    case '9':
        dec_plain_number(d, path);
        return;
    default: {
        int v = dec_literal(d, path);
        if (v < 0)
            lua_pushlightuserdata(d->L, NULL);
        else
            lua_pushboolean(d->L, v);
    }
    }
}

typedef void (*dec_top_fn)(struct dec *d, int depth, const struct marshal_path *path);

/* Decodes n bytes at s (alive until it returns) with the closure's upvalues; pushes the value. */
static inline int l_dec_bytes(lua_State *L, const char *s, size_t n, dec_top_fn top, int plain)
{
    struct dec d;
    d.L = L;
    d.start = d.p = s;
    d.end = s + n;
    d.b = lua_touserdata(L, UV_BUF);
    d.cache = lua_touserdata(L, UV_CACHE);
    d.item_hint = 8;
    d.slot = -1;
    d.plain = plain;
    d.field = 0;
    top(&d, 0, NULL);
    dec_ws(&d);
    if (d.p != d.end)
        DEC_FAIL(&d, NULL, "malformed JSON: unexpected text after the value at byte %d",
                 dec_at(&d));
    buf_trim(d.b, 1 << 20);
    return 1;
}

static int l_dec_run_mode(lua_State *L, dec_top_fn top, int plain)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    lua_settop(L, 1);
    return l_dec_bytes(L, s, n, top, plain);
}

static int l_dec_run(lua_State *L, dec_top_fn top) { return l_dec_run_mode(L, top, 0); }

/* core.json_decode(json) -> plain JSON as Lua values (arrays marked, null as core.null) */
static int l_json_decode(lua_State *L) { return l_dec_run_mode(L, dec_plain, 1); }

/* core.unmarshal_item(json) -> plain Lua table from '{"name":{"S":"..."},...}' */
static int l_unmarshal_item(lua_State *L) { return l_dec_run(L, dec_item); }

/* core.unmarshal_value(json) -> the Lua value of one AttributeValue */
static int l_unmarshal_value(lua_State *L) { return l_dec_run(L, dec_av); }

/* core.decode_reply(json) -> a reply with its items unmarshalled */
static int l_decode_reply(lua_State *L) { return l_dec_run(L, dec_plain); }

/* decode_http(handle) -> core.decode_reply of the reply body an http handle holds, read in place
 * (no Lua string of it). Not in the module: h:request calls it (CORE_DECODE_HTTP). */
static int l_decode_http(lua_State *L)
{
    size_t n;
    const char *s = core_http_body(L, 1, &n);
    lua_settop(L, 1);
    return l_dec_bytes(L, s, n, dec_plain, 0);
}

void l_unmarshal_open(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"unmarshal_item", l_unmarshal_item},
        {"unmarshal_value", l_unmarshal_value},
        {"decode_reply", l_decode_reply},
        {"json_decode", l_json_decode},
        {NULL, NULL},
    };
    /* stack: module */
    core_newbuf(L);
    luaL_getmetatable(L, CORE_ARRAY_MT);
    luaL_getmetatable(L, CORE_SET_MT);
    luaL_getmetatable(L, CORE_BINARY_MT);
    struct dec_cache *c = lua_newuserdata(L, sizeof *c);
    memset(c, 0, sizeof *c);
    lua_createtable(L, 2 * DEC_SLOTS, 0);
    for (int i = 0; i < 6; i++) /* the same six again, for decode_http */
        lua_pushvalue(L, -6);
    lua_pushcclosure(L, l_decode_http, 6);
    lua_setfield(L, LUA_REGISTRYINDEX, CORE_DECODE_HTTP);
    luaL_setfuncs(L, funcs, 6);
}
