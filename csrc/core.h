/* Private to csrc/: the growable byte buffer every encoder writes into, the error helper that
 * raises the one error shape, the registry names of our metatables, and each file's opener. */
#ifndef AUTHHERO_CORE_H
#define AUTHHERO_CORE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "compat.h"

#define CORE_ERROR_MT  "authhero.aws.error"
#define CORE_ARRAY_MT  "authhero.aws.array"
#define CORE_SET_MT    "authhero.aws.set"
#define CORE_BINARY_MT "authhero.aws.binary"
#define CORE_BUF_MT    "authhero.aws.buf"
/* Registry key of the decoder closure h:request uses to decode a reply body in place. */
#define CORE_DECODE_HTTP "authhero.aws.decode_http"

/* A growable buffer. It lives inside a full userdata (core_newbuf) so that a raise, which
 * longjmps, never leaks it; __gc frees the bytes. Not thread-safe; one per lua_State. */
struct buf {
    char *p;
    size_t len, cap;
};

/* Grows b to hold len + extra bytes; raises "not enough memory" on failure (may longjmp). */
void buf_grow(lua_State *L, struct buf *b, size_t extra);

/* After it, b->p is never NULL (so b->p + b->len is valid even for zero bytes). */
static inline void buf_reserve(lua_State *L, struct buf *b, size_t extra)
{
    if (b->cap - b->len < extra || b->p == NULL)
        buf_grow(L, b, extra);
}

static inline void buf_putc(lua_State *L, struct buf *b, char c)
{
    buf_reserve(L, b, 1);
    b->p[b->len++] = c;
}

static inline void buf_put(lua_State *L, struct buf *b, const char *s, size_t n)
{
    buf_reserve(L, b, n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

#define BUF_LIT(L, b, lit) buf_put((L), (b), (lit), sizeof(lit) - 1)

/* Drops the bytes of a buffer that grew past keep bytes, so one huge call does not pin memory. */
void buf_trim(struct buf *b, size_t keep);

/* Pushes a new buffer userdata; returns it. */
struct buf *core_newbuf(lua_State *L);

/* Pushes an error table { status, code, message, retryable = false } with the shared metatable. */
void core_pusherror(lua_State *L, int status, const char *code, const char *msg);

/* Raises an error table { status, code, message } with the shared error metatable.
 * Does not return. The message is formatted like lua_pushfstring (%s %d %f %p %c %%). */
int core_raise(lua_State *L, int status, const char *code, const char *fmt, ...);

/* Each file registers its functions into the module table at the top of the stack. */
void l_sigv4_open(lua_State *L);
void l_marshal_open(lua_State *L);
void l_keys_open(lua_State *L);
void l_http_open(lua_State *L);
void l_crc32_open(lua_State *L);
void l_password_open(lua_State *L);
void l_unicode_open(lua_State *L);

/* The reply body an http handle (argument idx, checked) holds, valid until its next request. */
const char *core_http_body(lua_State *L, int idx, size_t *n);

/* CRC-32 as zlib's crc32(crc, p, n) (what x-amz-crc32 carries); l_crc32_open (or
 * core_crc32_init) must have run once in the process first. */
void core_crc32_init(void);
uint32_t core_crc32(uint32_t crc, const unsigned char *p, size_t n);

int luaopen_authhero_aws_core(lua_State *L);

#endif
