/* AWS Signature Version 4, header flavour: canonical request, string to sign, signing key (with a
 * small per-lua_State cache) and the Authorization value, in the four tasks of the AWS "Signature
 * Version 4 signing process" guide. Left out: presigned URLs, S3 chunked payloads, SigV4a, and
 * choosing which headers to send or sign (the caller passes exactly the headers to sign). */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "core.h"

#define SIGV4_STATE_MT   "authhero.aws.sigv4"
#define SIGV4_ALGORITHM  "AWS4-HMAC-SHA256"
#define SIGV4_TERMINATOR "aws4_request"
#define SIGV4_HASH       32  /* SHA-256 digest bytes */
#define SIGV4_BLOCK      64  /* SHA-256 block bytes: the HMAC key pads */
#define SIGV4_SLOTS      4   /* cached signing keys: a few credentials or dates at once */
#define SIGV4_SECRET_MAX 128 /* longer secrets (and regions, services) sign but are not cached */
#define SIGV4_NAME_MAX   64  /* region, service */
#define SIGV4_KEEP       (1 << 16)

/* One cached kSigning, kept as the two HMAC states after hashing its ipad and opad blocks, so a
 * signature costs no key-pad hashing. Identified by all four inputs, compared byte for byte. */
struct sigv4_slot {
    EVP_MD_CTX *ipad, *opad;
    int used;
    size_t secret_len, region_len, service_len;
    char date[8];
    char secret[SIGV4_SECRET_MAX];
    char region[SIGV4_NAME_MAX];
    char service[SIGV4_NAME_MAX];
};

/* The state behind every sigv4 function: an upvalue userdata, one per lua_State (never C statics,
 * since several lua_States may share the process). Not re-entrant: nothing here calls back into Lua
 * (fields are read raw), so one call finishes before the next starts. */
struct sigv4_state {
    EVP_MD *md;      /* SHA-256, fetched once */
    EVP_MD_CTX *ctx; /* the working context, reused by every hash */
    struct sigv4_slot slot[SIGV4_SLOTS];
    unsigned next;   /* the slot a cache miss replaces (round robin) */
    struct buf out;  /* canonical request, then string to sign, then Authorization */
    struct buf text; /* scratch: encoded query pairs, or lowercased names and trimmed values */
    struct buf ents; /* scratch: struct sigv4_ent[2n], entries plus merge space */
};

/* The inputs that name a signing key. date is 8 bytes (YYYYMMDD). */
struct sigv4_scope {
    const char *secret, *date, *region, *service;
    size_t secret_len, region_len, service_len;
};

/* A validated req table. Strings stay owned by the table (arg 1), which no Lua code can change
 * during the call. token is NULL when absent. */
struct sigv4_req {
    const char *method, *path, *query, *body, *akid, *token, *amz_date;
    size_t method_len, path_len, query_len, body_len, akid_len, token_len;
    int normalize;
    struct sigv4_scope scope;
};

/* A key/value (query pair, or header name/value): offsets into state->text. */
struct sigv4_ent {
    size_t k, klen, v, vlen;
};

/* ---- hashing: SHA-256 and HMAC-SHA256 on the state's reused EVP objects; 0 ok, -1 failed ---- */

static int sigv4_sha256(struct sigv4_state *st, const void *p, size_t n, unsigned char *out)
{
    int ok = EVP_DigestInit_ex(st->ctx, st->md, NULL) && EVP_DigestUpdate(st->ctx, p, n) &&
             EVP_DigestFinal_ex(st->ctx, out, NULL);
    return ok ? 0 : -1;
}

/* The HMAC key blocks (RFC 2104) for the key k1 || k2; the split lets "AWS4" || secret go in
 * without a copy. A key longer than a block is hashed first. */
static int sigv4_pads(struct sigv4_state *st, const void *k1, size_t n1, const void *k2, size_t n2,
                      unsigned char *ipad, unsigned char *opad)
{
    unsigned char key[SIGV4_BLOCK];
    int ok = 1;
    memset(key, 0, sizeof key);
    if (n1 + n2 > SIGV4_BLOCK) {
        ok = EVP_DigestInit_ex(st->ctx, st->md, NULL) && EVP_DigestUpdate(st->ctx, k1, n1) &&
             EVP_DigestUpdate(st->ctx, k2, n2) && EVP_DigestFinal_ex(st->ctx, key, NULL);
    } else {
        memcpy(key, k1, n1);
        memcpy(key + n1, k2, n2);
    }
    for (int i = 0; i < SIGV4_BLOCK; i++) {
        ipad[i] = key[i] ^ 0x36;
        opad[i] = key[i] ^ 0x5c;
    }
    OPENSSL_cleanse(key, sizeof key);
    return ok ? 0 : -1;
}

/* out = HMAC-SHA256(k1 || k2, msg); out may alias the key (the key is read first). */
static int sigv4_hmac(struct sigv4_state *st, const void *k1, size_t n1, const void *k2, size_t n2,
                      const void *msg, size_t mlen, unsigned char *out)
{
    unsigned char ipad[SIGV4_BLOCK], opad[SIGV4_BLOCK], inner[SIGV4_HASH];
    int ok =
        sigv4_pads(st, k1, n1, k2, n2, ipad, opad) == 0 &&
        EVP_DigestInit_ex(st->ctx, st->md, NULL) && EVP_DigestUpdate(st->ctx, ipad, sizeof ipad) &&
        EVP_DigestUpdate(st->ctx, msg, mlen) && EVP_DigestFinal_ex(st->ctx, inner, NULL) &&
        EVP_DigestInit_ex(st->ctx, st->md, NULL) && EVP_DigestUpdate(st->ctx, opad, sizeof opad) &&
        EVP_DigestUpdate(st->ctx, inner, sizeof inner) && EVP_DigestFinal_ex(st->ctx, out, NULL);
    OPENSSL_cleanse(ipad, sizeof ipad);
    OPENSSL_cleanse(opad, sizeof opad);
    OPENSSL_cleanse(inner, sizeof inner);
    return ok ? 0 : -1;
}

/* kSigning (task 3): HMAC chain "AWS4" + secret -> date -> region -> service -> "aws4_request". */
static int sigv4_derive(struct sigv4_state *st, const struct sigv4_scope *s, unsigned char *k)
{
    int ok =
        sigv4_hmac(st, "AWS4", 4, s->secret, s->secret_len, s->date, 8, k) == 0 &&
        sigv4_hmac(st, k, SIGV4_HASH, "", 0, s->region, s->region_len, k) == 0 &&
        sigv4_hmac(st, k, SIGV4_HASH, "", 0, s->service, s->service_len, k) == 0 &&
        sigv4_hmac(st, k, SIGV4_HASH, "", 0, SIGV4_TERMINATOR, sizeof SIGV4_TERMINATOR - 1, k) == 0;
    if (!ok)
        OPENSSL_cleanse(k, SIGV4_HASH);
    return ok ? 0 : -1;
}

/* Derives the key for s into sl as precomputed pad states. Does not mark sl used. */
static int sigv4_slot_fill(struct sigv4_state *st, struct sigv4_slot *sl,
                           const struct sigv4_scope *s)
{
    unsigned char k[SIGV4_HASH], ipad[SIGV4_BLOCK], opad[SIGV4_BLOCK];
    int ok = sigv4_derive(st, s, k) == 0 && sigv4_pads(st, k, sizeof k, "", 0, ipad, opad) == 0 &&
             EVP_DigestInit_ex(sl->ipad, st->md, NULL) &&
             EVP_DigestUpdate(sl->ipad, ipad, sizeof ipad) &&
             EVP_DigestInit_ex(sl->opad, st->md, NULL) &&
             EVP_DigestUpdate(sl->opad, opad, sizeof opad);
    OPENSSL_cleanse(k, sizeof k);
    OPENSSL_cleanse(ipad, sizeof ipad);
    OPENSSL_cleanse(opad, sizeof opad);
    return ok ? 0 : -1;
}

static int sigv4_slot_hmac(struct sigv4_state *st, const struct sigv4_slot *sl, const void *msg,
                           size_t mlen, unsigned char *out)
{
    unsigned char inner[SIGV4_HASH];
    int ok = EVP_MD_CTX_copy_ex(st->ctx, sl->ipad) && EVP_DigestUpdate(st->ctx, msg, mlen) &&
             EVP_DigestFinal_ex(st->ctx, inner, NULL) && EVP_MD_CTX_copy_ex(st->ctx, sl->opad) &&
             EVP_DigestUpdate(st->ctx, inner, sizeof inner) &&
             EVP_DigestFinal_ex(st->ctx, out, NULL);
    OPENSSL_cleanse(inner, sizeof inner);
    return ok ? 0 : -1;
}

static int sigv4_slot_matches(const struct sigv4_slot *sl, const struct sigv4_scope *s)
{
    return sl->used && sl->secret_len == s->secret_len && sl->region_len == s->region_len &&
           sl->service_len == s->service_len && memcmp(sl->date, s->date, 8) == 0 &&
           memcmp(sl->secret, s->secret, s->secret_len) == 0 &&
           memcmp(sl->region, s->region, s->region_len) == 0 &&
           memcmp(sl->service, s->service, s->service_len) == 0;
}

/* The slot holding the key for s: a cached one when all four inputs match, else a freshly derived
 * one (remembered unless an input is too long to store). NULL if the derivation failed. */
static struct sigv4_slot *sigv4_slot_get(struct sigv4_state *st, const struct sigv4_scope *s)
{
    struct sigv4_slot *sl;
    for (int i = 0; i < SIGV4_SLOTS; i++)
        if (sigv4_slot_matches(&st->slot[i], s))
            return &st->slot[i];
    sl = &st->slot[st->next];
    st->next = (st->next + 1) % SIGV4_SLOTS;
    sl->used = 0;
    OPENSSL_cleanse(sl->secret, sizeof sl->secret); /* the evicted secret goes for good */
    if (sigv4_slot_fill(st, sl, s) != 0)
        return NULL;
    if (s->secret_len <= SIGV4_SECRET_MAX && s->region_len <= SIGV4_NAME_MAX &&
        s->service_len <= SIGV4_NAME_MAX) {
        memcpy(sl->date, s->date, 8);
        memcpy(sl->secret, s->secret, s->secret_len);
        memcpy(sl->region, s->region, s->region_len);
        memcpy(sl->service, s->service, s->service_len);
        sl->secret_len = s->secret_len;
        sl->region_len = s->region_len;
        sl->service_len = s->service_len;
        sl->used = 1;
    }
    return sl;
}

/* ---- canonical forms (task 1); callers reserve room first, so these cannot raise ---- */

static void sigv4_hex(char *dst, const unsigned char *src, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        dst[2 * i] = digits[src[i] >> 4];
        dst[2 * i + 1] = digits[src[i] & 15];
    }
}

static int sigv4_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

static int sigv4_unhex(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Writes c at o, percent-encoded unless unreserved; returns the new end. (The encoders write
 * through a local pointer: stores through char * would make the compiler reload b->len.) */
static char *sigv4_put_encoded(char *o, unsigned char c)
{
    static const char digits[] = "0123456789ABCDEF";
    if (sigv4_unreserved(c)) {
        *o++ = (char)c;
    } else {
        *o++ = '%';
        *o++ = digits[c >> 4];
        *o++ = digits[c & 15];
    }
    return o;
}

/* Appends s percent-encoded (RFC 3986 unreserved kept, uppercase hex), '/' kept when keep_slash.
 * Needs 3 * n bytes of room. */
static void sigv4_encode(struct buf *b, const char *s, size_t n, int keep_slash)
{
    char *o = b->p + b->len;
    for (size_t i = 0; i < n; i++) {
        if (keep_slash && s[i] == '/')
            *o++ = '/';
        else
            o = sigv4_put_encoded(o, (unsigned char)s[i]);
    }
    b->len = (size_t)(o - b->p);
}

/* Appends s decoded (each valid %XX; anything else, '+' included, is taken literally) and then
 * encoded, so "%E1%88%B4" and its raw UTF-8 bytes come out the same. Needs 3 * n bytes of room. */
static void sigv4_reencode(struct buf *b, const char *s, size_t n)
{
    char *o = b->p + b->len;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        int hi, lo;
        if (c == '%' && i + 2 < n && (hi = sigv4_unhex((unsigned char)s[i + 1])) >= 0 &&
            (lo = sigv4_unhex((unsigned char)s[i + 2])) >= 0) {
            c = (unsigned char)(hi << 4 | lo);
            i += 2;
        }
        o = sigv4_put_encoded(o, c);
    }
    b->len = (size_t)(o - b->p);
}

/* Appends the canonical URI of path (which starts with '/'). normalize: drop "." and empty
 * segments, let ".." remove the one before, keep a trailing '/'; then encode each segment once.
 * Otherwise (S3) encode but keep the path as given. The path is taken as unencoded bytes: a '%'
 * becomes "%25". Needs 3 * n + 1 bytes of room. */
static void sigv4_canon_path(struct buf *b, const char *s, size_t n, int normalize)
{
    size_t start = b->len, i = 0;
    if (!normalize) {
        sigv4_encode(b, s, n, 1);
        return;
    }
    while (i < n) {
        size_t j = i;
        if (s[i] == '/') {
            i++;
            continue;
        }
        while (j < n && s[j] != '/')
            j++;
        if (j - i == 2 && s[i] == '.' && s[i + 1] == '.') {
            /* every written segment is "/" + encoded bytes, which hold no '/' */
            while (b->len > start && b->p[b->len - 1] != '/')
                b->len--;
            if (b->len > start)
                b->len--;
        } else if (!(j - i == 1 && s[i] == '.')) {
            b->p[b->len++] = '/';
            sigv4_encode(b, s + i, j - i, 0);
        }
        i = j;
    }
    if (b->len == start || s[n - 1] == '/')
        b->p[b->len++] = '/';
}

static int sigv4_cmp_bytes(const char *t, size_t a, size_t alen, size_t b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    int c = n ? memcmp(t + a, t + b, n) : 0;
    return c ? c : (alen > blen) - (alen < blen);
}

/* Byte order of the keys, then (by_value) of the values. */
static int sigv4_cmp(const char *t, const struct sigv4_ent *a, const struct sigv4_ent *b,
                     int by_value)
{
    int c = sigv4_cmp_bytes(t, a->k, a->klen, b->k, b->klen);
    if (c == 0 && by_value)
        c = sigv4_cmp_bytes(t, a->v, a->vlen, b->v, b->vlen);
    return c;
}

/* Stable sort of e[0..n): insertion sort for the small arrays signing sees, merging through
 * tmp[0..n) for long ones so a long query string stays O(n log n). */
static void sigv4_sort(const char *t, struct sigv4_ent *e, struct sigv4_ent *tmp, size_t n,
                       int by_value)
{
    if (n <= 16) {
        for (size_t i = 1; i < n; i++) {
            struct sigv4_ent x = e[i];
            size_t j = i;
            while (j > 0 && sigv4_cmp(t, &e[j - 1], &x, by_value) > 0) {
                e[j] = e[j - 1];
                j--;
            }
            e[j] = x;
        }
        return;
    }
    size_t h = n / 2, i = 0, j = h, k = 0;
    sigv4_sort(t, e, tmp, h, by_value);
    sigv4_sort(t, e + h, tmp, n - h, by_value);
    while (i < h && j < n)
        tmp[k++] = sigv4_cmp(t, &e[j], &e[i], by_value) < 0 ? e[j++] : e[i++];
    while (i < h)
        tmp[k++] = e[i++];
    while (j < n)
        tmp[k++] = e[j++];
    memcpy(e, tmp, n * sizeof *e);
}

/* ---- reading the request and building the canonical request; these may raise ---- */

/* Room for n entries plus as many for merging; returns the array (stable until ents grows). */
static struct sigv4_ent *l_sigv4_ents(lua_State *L, struct sigv4_state *st, size_t n)
{
    if (n > SIZE_MAX / (2 * sizeof(struct sigv4_ent)))
        luaL_error(L, "not enough memory");
    st->ents.len = 0;
    buf_reserve(L, &st->ents, 2 * n * sizeof(struct sigv4_ent) + 1);
    return (struct sigv4_ent *)(void *)st->ents.p;
}

/* Appends the canonical query string: pairs split on '&' (empty pieces skipped) and on the first
 * '=' (none: empty value, still written "k="), re-encoded, sorted by key then value. */
static void l_sigv4_canon_query(lua_State *L, struct sigv4_state *st, const char *q, size_t n)
{
    size_t count = 1, m = 0, i = 0;
    if (n == 0)
        return;
    if (n > SIZE_MAX / 3 - 1)
        luaL_error(L, "not enough memory");
    for (size_t j = 0; j < n; j++)
        count += q[j] == '&';
    struct sigv4_ent *e = l_sigv4_ents(L, st, count);
    st->text.len = 0;
    buf_reserve(L, &st->text, 3 * n + 1);
    while (i <= n) {
        size_t end = i, eq;
        while (end < n && q[end] != '&')
            end++;
        if (end > i) {
            for (eq = i; eq < end && q[eq] != '='; eq++)
                ;
            e[m].k = st->text.len;
            sigv4_reencode(&st->text, q + i, eq - i);
            e[m].klen = st->text.len - e[m].k;
            e[m].v = st->text.len;
            if (eq < end)
                sigv4_reencode(&st->text, q + eq + 1, end - eq - 1);
            e[m].vlen = st->text.len - e[m].v;
            m++;
        }
        i = end + 1;
    }
    sigv4_sort(st->text.p, e, e + count, m, 1);
    buf_reserve(L, &st->out, st->text.len + 2 * m);
    for (i = 0; i < m; i++) {
        if (i > 0)
            st->out.p[st->out.len++] = '&';
        memcpy(st->out.p + st->out.len, st->text.p + e[i].k, e[i].klen);
        st->out.len += e[i].klen;
        st->out.p[st->out.len++] = '=';
        memcpy(st->out.p + st->out.len, st->text.p + e[i].v, e[i].vlen);
        st->out.len += e[i].vlen;
    }
}

/* Appends name lowercased; -1 if it is empty or holds a byte no header name may hold. */
static int sigv4_put_name(struct buf *b, const char *s, size_t n)
{
    char *o = b->p + b->len;
    if (n == 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= ' ' || c == ':' || c >= 0x7f)
            return -1;
        o[i] = (char)(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
    }
    b->len += n;
    return 0;
}

#define SIGV4_SPACE(c) ((c) == ' ' || (c) == '\t')

/* Appends value trimmed, each inner run of spaces/tabs made one space (even inside quotes, as
 * AWS's get-header-value-trim case wants); -1 on CR or LF, which would forge a header line. */
static int sigv4_put_value(struct buf *b, const char *s, size_t n)
{
    char *o = b->p + b->len;
    size_t i = 0;
    while (n > 0 && SIGV4_SPACE(s[n - 1]))
        n--;
    while (i < n && SIGV4_SPACE(s[i]))
        i++;
    for (; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c > ' ') {
            *o++ = (char)c;
        } else if (SIGV4_SPACE(c)) { /* the run ends before n: the end was trimmed */
            while (SIGV4_SPACE(s[i + 1]))
                i++;
            *o++ = ' ';
        } else if (c == '\r' || c == '\n') {
            return -1;
        } else {
            *o++ = (char)c;
        }
    }
    b->len = (size_t)(o - b->p);
    return 0;
}

/* Reads headers (stack index h) into entries: names lowercased and values normalized in st->text.
 * Adds x-amz-security-token = token when a token is given and no header of that name is.
 * Returns the entry count. */
static size_t l_sigv4_read_headers(lua_State *L, struct sigv4_state *st, int h,
                                   const struct sigv4_req *r)
{
    static const char token_name[] = "x-amz-security-token";
    size_t n = lua_rawlen(L, h), m = 0;
    int has_token = 0;
    if (n >= INT_MAX)
        luaL_error(L, "sigv4_sign: field 'headers' is too long");
    struct sigv4_ent *e = l_sigv4_ents(L, st, n + 1);
    st->text.len = 0;
    buf_reserve(L, &st->text, 64);
    for (int i = 1; i <= (int)n; i++) {
        size_t nl, vl;
        const char *name, *value;
        lua_rawgeti(L, h, i); /* stack: ..., pair */
        if (lua_type(L, -1) != LUA_TTABLE)
            luaL_error(L, "sigv4_sign: headers[%d] must be a {name, value} pair", i);
        lua_rawgeti(L, -1, 1);
        lua_rawgeti(L, -2, 2); /* stack: ..., pair, name, value */
        if (lua_type(L, -2) != LUA_TSTRING)
            luaL_error(L, "sigv4_sign: headers[%d] name must be a string", i);
        if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER)
            luaL_error(L, "sigv4_sign: headers[%d] value must be a string", i);
        name = lua_tolstring(L, -2, &nl);
        value = lua_tolstring(L, -1, &vl);
        buf_reserve(L, &st->text, nl + vl);
        e[m].k = st->text.len;
        if (sigv4_put_name(&st->text, name, nl) != 0)
            luaL_error(L, "sigv4_sign: headers[%d] name must be a non-empty token", i);
        e[m].klen = nl;
        e[m].v = st->text.len;
        if (sigv4_put_value(&st->text, value, vl) != 0)
            luaL_error(L, "sigv4_sign: headers[%d] value must not contain CR or LF", i);
        e[m].vlen = st->text.len - e[m].v;
        has_token |= nl == sizeof token_name - 1 &&
                     memcmp(st->text.p + e[m].k, token_name, sizeof token_name - 1) == 0;
        m++;
        lua_pop(L, 3);
    }
    if (r->token != NULL && !has_token) {
        buf_reserve(L, &st->text, sizeof token_name + r->token_len);
        e[m].k = st->text.len;
        sigv4_put_name(&st->text, token_name, sizeof token_name - 1);
        e[m].klen = sizeof token_name - 1;
        e[m].v = st->text.len;
        if (sigv4_put_value(&st->text, r->token, r->token_len) != 0)
            luaL_error(L, "sigv4_sign: field 'session_token' must not contain CR or LF");
        e[m].vlen = st->text.len - e[m].v;
        m++;
    }
    return m;
}

/* Appends the canonical headers, a blank line, and the signed header list; returns the list's
 * offset in st->out through *soff (its length through *slen). */
static void l_sigv4_canon_headers(lua_State *L, struct sigv4_state *st, struct sigv4_ent *e,
                                  size_t m, size_t *soff, size_t *slen)
{
    const char *t = st->text.p;
    struct buf *b = &st->out;
    sigv4_sort(t, e, e + m, m, 0);
    buf_reserve(L, b, 2 * st->text.len + 3 * m + 1);
    for (size_t i = 0; i < m; i++) {
        int more = i > 0 && sigv4_cmp(t, &e[i - 1], &e[i], 0) == 0;
        if (more) { /* a repeated name: values joined with ',' in their given order */
            b->p[b->len - 1] = ',';
        } else {
            memcpy(b->p + b->len, t + e[i].k, e[i].klen);
            b->len += e[i].klen;
            b->p[b->len++] = ':';
        }
        memcpy(b->p + b->len, t + e[i].v, e[i].vlen);
        b->len += e[i].vlen;
        b->p[b->len++] = '\n';
    }
    b->p[b->len++] = '\n';
    *soff = b->len;
    for (size_t i = 0; i < m; i++) {
        if (i > 0 && sigv4_cmp(t, &e[i - 1], &e[i], 0) == 0)
            continue;
        if (b->len > *soff)
            b->p[b->len++] = ';';
        memcpy(b->p + b->len, t + e[i].k, e[i].klen);
        b->len += e[i].klen;
    }
    *slen = b->len - *soff;
}

/* Appends n bytes found at off in the same buffer (reserving first: the bytes may move). */
static void l_sigv4_put_again(lua_State *L, struct buf *b, size_t off, size_t n)
{
    buf_reserve(L, b, n);
    memcpy(b->p + b->len, b->p + off, n);
    b->len += n;
}

/* The upvalue state; raises if a finalizer calls in after the state's own __gc ran (lua_close). */
static struct sigv4_state *l_sigv4_state(lua_State *L)
{
    struct sigv4_state *st = lua_touserdata(L, lua_upvalueindex(1));
    if (st->ctx == NULL)
        luaL_error(L, "sigv4: called after the module was closed");
    return st;
}

/* The req fields. sigv4_sign keeps their names as upvalues 2.., so a lookup hashes nothing. */
enum sigv4_field {
    SIGV4_F_METHOD,
    SIGV4_F_PATH,
    SIGV4_F_QUERY,
    SIGV4_F_HEADERS,
    SIGV4_F_BODY,
    SIGV4_F_REGION,
    SIGV4_F_SERVICE,
    SIGV4_F_AKID,
    SIGV4_F_SECRET,
    SIGV4_F_TOKEN,
    SIGV4_F_DATE,
    SIGV4_F_NORMALIZE,
    SIGV4_F_COUNT
};
static const char *const sigv4_fields[SIGV4_F_COUNT] = {
    "method",   "path",           "query",         "headers",           "body",
    "region",   "service",        "access_key_id", "secret_access_key", "session_token",
    "amz_date", "normalize_path",
};

/* Pushes req[f] (raw: no metamethod runs) and returns its type. */
static int sigv4_field(lua_State *L, enum sigv4_field f)
{
    lua_pushvalue(L, lua_upvalueindex(2 + (int)f));
    lua_rawget(L, 1);
    return lua_type(L, -1);
}

/* req[f] as a string; NULL (with *n = 0) when optional and nil. The string stays alive in req. */
static const char *l_sigv4_string(lua_State *L, enum sigv4_field f, size_t *n, int optional)
{
    const char *s = NULL;
    int t = sigv4_field(L, f);
    *n = 0;
    if (t == LUA_TSTRING)
        s = lua_tolstring(L, -1, n);
    else if (t != LUA_TNIL || !optional)
        luaL_error(L, "sigv4_sign: field '%s' must be a string", sigv4_fields[f]);
    lua_pop(L, 1);
    return s;
}

static const char *l_sigv4_nonempty(lua_State *L, enum sigv4_field f, size_t *n)
{
    const char *s = l_sigv4_string(L, f, n, 0);
    if (*n == 0)
        luaL_error(L, "sigv4_sign: field '%s' must not be empty", sigv4_fields[f]);
    return s;
}

static int sigv4_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

/* Checks and reads the req table at index 1. Messages never quote a value: some are secrets. */
static void l_sigv4_read_req(lua_State *L, struct sigv4_req *r)
{
    size_t n;
    int t;
    r->method = l_sigv4_nonempty(L, SIGV4_F_METHOD, &r->method_len);
    r->path = l_sigv4_string(L, SIGV4_F_PATH, &r->path_len, 0);
    if (r->path_len == 0 || r->path[0] != '/')
        luaL_error(L, "sigv4_sign: field 'path' must start with '/'");
    r->query = l_sigv4_string(L, SIGV4_F_QUERY, &r->query_len, 1);
    r->body = l_sigv4_string(L, SIGV4_F_BODY, &r->body_len, 1);
    if (r->body == NULL)
        r->body = "";
    r->scope.region = l_sigv4_nonempty(L, SIGV4_F_REGION, &r->scope.region_len);
    r->scope.service = l_sigv4_nonempty(L, SIGV4_F_SERVICE, &r->scope.service_len);
    r->akid = l_sigv4_nonempty(L, SIGV4_F_AKID, &r->akid_len);
    r->scope.secret = l_sigv4_nonempty(L, SIGV4_F_SECRET, &r->scope.secret_len);
    r->token = l_sigv4_string(L, SIGV4_F_TOKEN, &r->token_len, 1);
    if (r->token != NULL && r->token_len == 0)
        luaL_error(L, "sigv4_sign: field 'session_token' must not be empty (omit it)");
    r->amz_date = l_sigv4_string(L, SIGV4_F_DATE, &n, 0);
    if (n != 16 || r->amz_date[8] != 'T' || r->amz_date[15] != 'Z' ||
        !sigv4_digits(r->amz_date, 8) || !sigv4_digits(r->amz_date + 9, 6))
        luaL_error(L, "sigv4_sign: field 'amz_date' must look like YYYYMMDDTHHMMSSZ");
    r->scope.date = r->amz_date;
    t = sigv4_field(L, SIGV4_F_NORMALIZE);
    if (t != LUA_TNIL && t != LUA_TBOOLEAN)
        luaL_error(L, "sigv4_sign: field 'normalize_path' must be a boolean");
    r->normalize = t == LUA_TNIL || lua_toboolean(L, -1);
    lua_pop(L, 1);
}

/* core.sigv4_sign(req) -> authorization, canonical_request, string_to_sign.
 * req: method, path (starts with '/'), query (raw; optional), headers ({ {name, value}, ... } in
 * order, repeats allowed: exactly the headers signed), body (optional), region, service,
 * access_key_id, secret_access_key, session_token (optional), amz_date (YYYYMMDDTHHMMSSZ) and
 * normalize_path (optional, default true; false is S3's rule).
 * Session token: unless headers already hold x-amz-security-token, the token is signed as that
 * header, so the caller MUST send "X-Amz-Security-Token: <token>" with the request or AWS rejects
 * the signature (DynamoDB wants the token signed, not added afterwards).
 * Bad fields raise plain strings naming the field; a crypto failure raises a CryptoError. */
static int l_sigv4_sign(lua_State *L)
{
    struct sigv4_state *st = l_sigv4_state(L);
    struct buf *b = &st->out;
    struct sigv4_req r;
    struct sigv4_slot *sl;
    unsigned char digest[SIGV4_HASH];
    char payload[2 * SIGV4_HASH], hex[2 * SIGV4_HASH];
    size_t soff, slen, scope_off, scope_len, creq_len, sts_off, authz_off;

    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    l_sigv4_read_req(L, &r);
    if (sigv4_field(L, SIGV4_F_HEADERS) != LUA_TTABLE) /* stack: req, headers */
        luaL_error(L, "sigv4_sign: field 'headers' must be a table");

    /* Task 1: the canonical request. */
    if (sigv4_sha256(st, r.body, r.body_len, digest) != 0)
        return core_raise(L, 0, "CryptoError", "SHA-256 failed");
    sigv4_hex(payload, digest, sizeof digest);
    if (r.path_len > SIZE_MAX / 3 - r.method_len - 3)
        luaL_error(L, "not enough memory");
    b->len = 0;
    buf_reserve(L, b, r.method_len + 3 * r.path_len + 3);
    memcpy(b->p, r.method, r.method_len);
    b->len = r.method_len;
    b->p[b->len++] = '\n';
    sigv4_canon_path(b, r.path, r.path_len, r.normalize);
    b->p[b->len++] = '\n';
    l_sigv4_canon_query(L, st, r.query, r.query_len);
    buf_putc(L, b, '\n');
    size_t m = l_sigv4_read_headers(L, st, 2, &r);
    l_sigv4_canon_headers(L, st, (struct sigv4_ent *)(void *)st->ents.p, m, &soff, &slen);
    buf_putc(L, b, '\n');
    buf_put(L, b, payload, sizeof payload);
    creq_len = b->len;

    /* Task 2: the string to sign. */
    if (sigv4_sha256(st, b->p, creq_len, digest) != 0)
        return core_raise(L, 0, "CryptoError", "SHA-256 failed");
    sigv4_hex(hex, digest, sizeof digest);
    sts_off = b->len;
    BUF_LIT(L, b, SIGV4_ALGORITHM "\n");
    buf_put(L, b, r.amz_date, 16);
    buf_putc(L, b, '\n');
    scope_off = b->len;
    buf_put(L, b, r.amz_date, 8);
    buf_putc(L, b, '/');
    buf_put(L, b, r.scope.region, r.scope.region_len);
    buf_putc(L, b, '/');
    buf_put(L, b, r.scope.service, r.scope.service_len);
    BUF_LIT(L, b, "/" SIGV4_TERMINATOR);
    scope_len = b->len - scope_off;
    buf_putc(L, b, '\n');
    buf_put(L, b, hex, sizeof hex);

    /* Task 3: the signature, with the cached signing key. */
    sl = sigv4_slot_get(st, &r.scope);
    if (sl == NULL || sigv4_slot_hmac(st, sl, b->p + sts_off, b->len - sts_off, digest) != 0)
        return core_raise(L, 0, "CryptoError", "HMAC-SHA256 failed");
    sigv4_hex(hex, digest, sizeof digest);

    /* Task 4: the Authorization header value. */
    authz_off = b->len;
    BUF_LIT(L, b, SIGV4_ALGORITHM " Credential=");
    buf_put(L, b, r.akid, r.akid_len);
    buf_putc(L, b, '/');
    l_sigv4_put_again(L, b, scope_off, scope_len);
    BUF_LIT(L, b, ", SignedHeaders=");
    l_sigv4_put_again(L, b, soff, slen);
    BUF_LIT(L, b, ", Signature=");
    buf_put(L, b, hex, sizeof hex);

    lua_pushlstring(L, b->p + authz_off, b->len - authz_off);
    lua_pushlstring(L, b->p, creq_len);
    lua_pushlstring(L, b->p + sts_off, authz_off - sts_off);
    buf_trim(&st->out, SIGV4_KEEP);
    buf_trim(&st->text, SIGV4_KEEP);
    buf_trim(&st->ents, SIGV4_KEEP);
    return 3;
}

/* core.sigv4_signing_key(secret, date8, region, service) -> the raw 32-byte kSigning, always
 * derived afresh (the cache belongs to sigv4_sign); for tests. */
static int l_sigv4_signing_key(lua_State *L)
{
    struct sigv4_state *st = l_sigv4_state(L);
    struct sigv4_scope s;
    size_t dlen;
    unsigned char k[SIGV4_HASH];
    s.secret = luaL_checklstring(L, 1, &s.secret_len);
    s.date = luaL_checklstring(L, 2, &dlen);
    s.region = luaL_checklstring(L, 3, &s.region_len);
    s.service = luaL_checklstring(L, 4, &s.service_len);
    luaL_argcheck(L, dlen == 8 && sigv4_digits(s.date, 8), 2, "date must be YYYYMMDD");
    if (sigv4_derive(st, &s, k) != 0)
        return core_raise(L, 0, "CryptoError", "HMAC-SHA256 failed");
    lua_pushlstring(L, (const char *)k, sizeof k);
    OPENSSL_cleanse(k, sizeof k);
    return 1;
}

/* core.sha256_hex(s) -> lowercase hex SHA-256 of s's bytes. */
static int l_sigv4_sha256_hex(lua_State *L)
{
    struct sigv4_state *st = l_sigv4_state(L);
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    unsigned char digest[SIGV4_HASH];
    char hex[2 * SIGV4_HASH];
    if (sigv4_sha256(st, s, n, digest) != 0)
        return core_raise(L, 0, "CryptoError", "SHA-256 failed");
    sigv4_hex(hex, digest, sizeof digest);
    lua_pushlstring(L, hex, sizeof hex);
    return 1;
}

/* core.hmac_sha256(key, msg) -> raw 32 bytes. */
static int l_sigv4_hmac_sha256(lua_State *L)
{
    struct sigv4_state *st = l_sigv4_state(L);
    size_t kn, mn;
    const char *key = luaL_checklstring(L, 1, &kn);
    const char *msg = luaL_checklstring(L, 2, &mn);
    unsigned char mac[SIGV4_HASH];
    if (sigv4_hmac(st, key, kn, "", 0, msg, mn, mac) != 0)
        return core_raise(L, 0, "CryptoError", "HMAC-SHA256 failed");
    lua_pushlstring(L, (const char *)mac, sizeof mac);
    return 1;
}

/* Frees what st owns; safe on a zeroed or half-built state, and twice. Wipes cached secrets. */
static void sigv4_state_free(struct sigv4_state *st)
{
    for (int i = 0; i < SIGV4_SLOTS; i++) {
        EVP_MD_CTX_free(st->slot[i].ipad);
        EVP_MD_CTX_free(st->slot[i].opad);
    }
    OPENSSL_cleanse(st->slot, sizeof st->slot);
    EVP_MD_CTX_free(st->ctx);
    st->ctx = NULL;
    EVP_MD_free(st->md);
    st->md = NULL;
    free(st->out.p);
    free(st->text.p);
    free(st->ents.p);
    memset(&st->out, 0, sizeof st->out);
    memset(&st->text, 0, sizeof st->text);
    memset(&st->ents, 0, sizeof st->ents);
}

static int sigv4_state_init(struct sigv4_state *st)
{
    int ok;
    st->md = EVP_MD_fetch(NULL, "SHA256", NULL);
    st->ctx = EVP_MD_CTX_new();
    ok = st->md != NULL && st->ctx != NULL;
    for (int i = 0; i < SIGV4_SLOTS; i++) {
        st->slot[i].ipad = EVP_MD_CTX_new();
        st->slot[i].opad = EVP_MD_CTX_new();
        ok = ok && st->slot[i].ipad != NULL && st->slot[i].opad != NULL;
    }
    return ok ? 0 : -1;
}

static int l_sigv4_state_gc(lua_State *L)
{
    sigv4_state_free(luaL_checkudata(L, 1, SIGV4_STATE_MT));
    return 0;
}

void l_sigv4_open(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"sigv4_signing_key", l_sigv4_signing_key},
        {"sha256_hex", l_sigv4_sha256_hex},
        {"hmac_sha256", l_sigv4_hmac_sha256},
        {NULL, NULL},
    };
    struct sigv4_state *st;
    /* stack: module */
    if (luaL_newmetatable(L, SIGV4_STATE_MT)) {
        lua_pushcfunction(L, l_sigv4_state_gc);
        lua_setfield(L, -2, "__gc");
    }
    st = lua_newuserdata(L, sizeof *st); /* stack: module, mt, state */
    memset(st, 0, sizeof *st);
    if (sigv4_state_init(st) != 0) {
        sigv4_state_free(st);
        core_raise(L, 0, "CryptoError", "cannot set up SHA-256 (OpenSSL)");
    }
    /* only now the metatable, with the OpenSSL objects in place (nothing here allocates) */
    lua_insert(L, -2);
    lua_setmetatable(L, -2); /* stack: module, state */
    lua_pushvalue(L, -1);
    for (int i = 0; i < SIGV4_F_COUNT; i++)
        lua_pushstring(L, sigv4_fields[i]);
    lua_pushcclosure(L, l_sigv4_sign, 1 + SIGV4_F_COUNT); /* stack: module, state, sign */
    lua_setfield(L, -3, "sigv4_sign");
    luaL_setfuncs(L, funcs, 1);
}
