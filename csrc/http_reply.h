/* Private to csrc/: what the libcurl transport does with a reply's bytes, apart from the network:
 * header lines as curl hands them over (status line, fields, blank line, trailers), the lookup of
 * a field, the x-amz-crc32 check of the body and the Lua table of fields. http.c feeds it from
 * curl's callbacks; fuzz/http_fuzz.c feeds it arbitrary bytes. Plain C: nothing here raises,
 * except http_reply_push_headers (a Lua API call, which may run out of memory). */
#ifndef AUTHHERO_HTTP_REPLY_H
#define AUTHHERO_HTTP_REPLY_H

#include "core.h"

/* One response header: offsets into http_reply.hdr, where names are stored lowercased. */
struct http_field {
    size_t name, name_len, value, value_len;
};

/* The header fields of the last response seen (a 1xx or a retried one is dropped). Zeroed memory
 * is an empty reply; http_reply_free releases it. */
struct http_reply {
    struct buf hdr; /* names and values, back to back */
    struct http_field *fields;
    size_t nfields, capfields;
};

/* Appends n bytes to b without raising; returns -1 when out of memory (b unchanged). */
int http_buf_append(struct buf *b, const char *s, size_t n);

/* One header line as curl passes it (CR/LF included or not): "HTTP/..." starts a new response,
 * "Name: value" adds a field (value trimmed of spaces and tabs), anything else (the blank line,
 * obsolete folding, junk without a colon) is skipped. Returns -1 when out of memory. */
int http_reply_line(struct http_reply *r, const char *line, size_t n);

/* The last value of header name (lowercase), or NULL. */
const char *http_reply_find(const struct http_reply *r, const char *name, size_t *len);

/* The x-amz-crc32 check of body: 0 when the header is absent or names the body's CRC-32, else -1
 * with text (at least 64 bytes) set to "<header, at most 20 bytes>, body has <crc>".
 * core_crc32_init must have run. */
int http_reply_crc_check(const struct http_reply *r, const char *body, size_t n, char *text,
                         size_t cap);

/* Pushes { [name] = value } (the last of repeated names wins). */
void http_reply_push_headers(lua_State *L, const struct http_reply *r);

/* Forgets the fields; frees the header bytes when they grew past keep. */
void http_reply_trim(struct http_reply *r, size_t keep);

/* Frees everything; r is an empty reply afterwards. Idempotent. */
void http_reply_free(struct http_reply *r);

#endif
