/* libFuzzer target: what the libcurl transport makes of a reply's bytes (csrc/http_reply.c), with
 * no network. The input is a header block, then "\r\n\r\n", then the body (no separator: all
 * header block). The block goes in line by line, each with its "\n", as curl's header callback
 * receives them; then the x-amz-crc32 check runs on the body and the fields become the Lua table
 * h:request returns. props.http in fuzz/props.lua compares both with a reference in Lua and
 * checks the CRC-32 against a bitwise one, under both implementations (clmul and tables). */
#include "fuzz_lua.h"

#include "http_reply.h"

static const char *find_blank(const char *s, size_t n)
{
    for (size_t i = 0; i + 4 <= n; i++)
        if (memcmp(s + i, "\r\n\r\n", 4) == 0)
            return s + i;
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct http_reply reply; /* reused, as an http handle's is */
    lua_State *L = fuzz_state();
    int top = lua_gettop(L);
    const char *s = (const char *)data, *blank = find_blank(s, size);
    size_t head = blank ? (size_t)(blank - s) + 4 : size;
    const char *body = s + head;
    size_t body_len = size - head;

    reply.hdr.len = 0;
    reply.nfields = 0;
    for (size_t i = 0; i < head;) {
        const char *nl = memchr(s + i, '\n', head - i);
        size_t n = nl ? (size_t)(nl - (s + i)) + 1 : head - i;
        if (http_reply_line(&reply, s + i, n) != 0)
            abort(); /* out of memory on a 4 KB input */
        i += n;
    }
    char text[64];
    memset(text, 'x', sizeof text);
    int crc_ok = http_reply_crc_check(&reply, body, body_len, text, sizeof text) == 0;
    if (!crc_ok && memchr(text, '\0', sizeof text) == NULL)
        abort(); /* the message must be a C string */

    fuzz_push_prop(L, "http");
    lua_pushlstring(L, s, head);
    lua_pushlstring(L, body, body_len);
    http_reply_push_headers(L, &reply);
    lua_pushboolean(L, crc_ok);
    if (crc_ok)
        lua_pushnil(L);
    else
        lua_pushstring(L, text);
    fuzz_call_prop(L, top, 5);
    http_reply_trim(&reply, 1 << 14);
    lua_gc(L, LUA_GCCOLLECT, 0);
    return 0;
}
