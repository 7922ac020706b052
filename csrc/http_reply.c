/* A reply's header lines and x-amz-crc32 check, apart from curl (see http_reply.h): what the
 * libcurl transport parses of the bytes a server sends, in one place a fuzz target can reach. */
#include <stdio.h>
#include <stdlib.h>

#include "http_reply.h"

int http_buf_append(struct buf *b, const char *s, size_t n)
{
    if (n == 0)
        return 0;
    if (b->cap - b->len < n) {
        size_t need = b->len + n, cap = b->cap ? b->cap : 256;
        if (need < b->len)
            return -1;
        while (cap < need)
            cap = cap * 2 > cap ? cap * 2 : need;
        char *p = realloc(b->p, cap);
        if (p == NULL)
            return -1;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    return 0;
}

static int reply_is_space(char c) { return c == ' ' || c == '\t'; }

static char reply_lower(char c) { return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c; }

static int reply_field_add(struct http_reply *r, const char *name, size_t nlen, const char *value,
                           size_t vlen)
{
    if (r->nfields == r->capfields) {
        size_t cap = r->capfields ? r->capfields * 2 : 16;
        struct http_field *f = realloc(r->fields, cap * sizeof *f);
        if (f == NULL)
            return -1;
        r->fields = f;
        r->capfields = cap;
    }
    struct http_field *f = &r->fields[r->nfields];
    f->name = r->hdr.len;
    f->name_len = nlen;
    if (http_buf_append(&r->hdr, name, nlen) != 0)
        return -1;
    for (size_t i = 0; i < nlen; i++)
        r->hdr.p[f->name + i] = reply_lower(r->hdr.p[f->name + i]);
    f->value = r->hdr.len;
    f->value_len = vlen;
    if (http_buf_append(&r->hdr, value, vlen) != 0)
        return -1;
    r->nfields++;
    return 0;
}

int http_reply_line(struct http_reply *r, const char *line, size_t n)
{
    size_t len = n;
    while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == '\n'))
        len--;
    if (len >= 5 && memcmp(line, "HTTP/", 5) == 0) {
        r->nfields = 0; /* a new response (after a 1xx, or curl's retry): keep only the last */
        r->hdr.len = 0;
        return 0;
    }
    const char *colon = len ? memchr(line, ':', len) : NULL;
    if (colon == NULL || colon == line || reply_is_space(line[0]))
        return 0; /* blank line, obsolete folding, or junk: skipped */
    size_t nlen = (size_t)(colon - line), v = nlen + 1, end = len;
    while (v < end && reply_is_space(line[v]))
        v++;
    while (end > v && reply_is_space(line[end - 1]))
        end--;
    return reply_field_add(r, line, nlen, line + v, end - v);
}

const char *http_reply_find(const struct http_reply *r, const char *name, size_t *len)
{
    size_t nlen = strlen(name);
    for (size_t i = r->nfields; i-- > 0;) {
        const struct http_field *f = &r->fields[i];
        if (f->name_len == nlen && memcmp(r->hdr.p + f->name, name, nlen) == 0) {
            *len = f->value_len;
            return r->hdr.p + f->value;
        }
    }
    return NULL;
}

/* Parses a decimal uint32 (x-amz-crc32 is decimal); returns -1 if it is not one. */
static int reply_parse_u32(const char *s, size_t n, uint32_t *out)
{
    uint64_t v = 0;
    if (n == 0 || n > 10)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > 0xFFFFFFFFu)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

int http_reply_crc_check(const struct http_reply *r, const char *body, size_t n, char *text,
                         size_t cap)
{
    size_t clen;
    const char *crc = http_reply_find(r, "x-amz-crc32", &clen);
    if (crc == NULL)
        return 0;
    uint32_t want, got = core_crc32(0, (const unsigned char *)body, n);
    if (reply_parse_u32(crc, clen, &want) == 0 && want == got)
        return 0;
    snprintf(text, cap, "%.*s, body has %lu", (int)(clen < 20 ? clen : 20), crc,
             (unsigned long)got);
    return -1;
}

void http_reply_push_headers(lua_State *L, const struct http_reply *r)
{
    lua_createtable(L, 0, (int)r->nfields);
    for (size_t i = 0; i < r->nfields; i++) {
        const struct http_field *f = &r->fields[i];
        lua_pushlstring(L, r->hdr.p + f->name, f->name_len);
        lua_pushlstring(L, r->hdr.p + f->value, f->value_len);
        lua_rawset(L, -3);
    }
}

void http_reply_trim(struct http_reply *r, size_t keep)
{
    buf_trim(&r->hdr, keep);
    r->nfields = 0;
}

void http_reply_free(struct http_reply *r)
{
    free(r->hdr.p);
    free(r->fields);
    memset(r, 0, sizeof *r);
}
