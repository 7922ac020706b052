/* The libcurl transport: one reused CURL easy handle per "authhero.aws.http" userdata (keep-alive
 * is curl's connection cache), timeouts, TLS settings and the x-amz-crc32 check. No policy: retries
 * and signing live in Lua, and any HTTP status is a reply. HTTP/1.1, identity encoding, no
 * redirects; libcurl still honours the *_proxy environment variables. Not thread-safe. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <curl/curl.h>

#include "core.h"
#include "http_reply.h"

#define HTTP_MT "authhero.aws.http"
/* Defaults. Connect covers TCP and the TLS handshake, a few round trips even far away; the total
 * covers the whole request, and DynamoDB answers in milliseconds, 1 MB pages included. */
#define HTTP_CONNECT_TIMEOUT_MS 2000
#define HTTP_TIMEOUT_MS         10000
#define HTTP_MAX_TIMEOUT_MS     3600000   /* an hour: anything longer is a unit mistake */
#define HTTP_BODY_KEEP          (1 << 20) /* reply buffers past this are freed after each call */
#define HTTP_HEADER_KEEP        (1 << 14)

/* Everything here is freed by http_close, which is idempotent; curl == NULL means closed. */
struct http {
    CURL *curl;
    long connect_ms, total_ms;
    int verify;
    char *ca_file;           /* malloc'ed copy or NULL */
    struct curl_slist *hdrs; /* request headers being built or sent; freed by the next call/close */
    struct buf body;         /* reply body, reused across calls */
    struct http_reply reply; /* reply header fields (http_reply.c) */
    struct buf line;         /* scratch: one "Name: value" request header line */
    int oom;                 /* a curl callback failed to allocate (it cannot raise) */
    long long requests, connects, last_us;
    char err[CURL_ERROR_SIZE];
    const char *up; /* request body being sent (the Lua string), and how much is left */
    size_t up_len;
    int sent; /* the last request's body went to libcurl whole: the server may have acted on it */
};

static int http_ready;

/* Once per process, from the opener (curl_global_init is not thread-safe on older libcurl; it is
 * never undone). If it fails here, curl_easy_init retries it. */
static void http_global_init(void)
{
    if (http_ready)
        return;
    core_crc32_init();
    if (curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK)
        http_ready = 1;
}

/* ---- curl callbacks: plain C, never touch Lua (a longjmp through curl would wreck it) ---- */

static size_t http_on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    struct http *h = ud;
    size_t n = size * nmemb;
    if (http_buf_append(&h->body, data, n) != 0) {
        h->oom = 1;
        return 0; /* curl stops with CURLE_WRITE_ERROR */
    }
    return n;
}

static char http_lower(char c) { return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c; }

/* One header line per call, CRLF included; also the status line, the blank line and trailers. */
static size_t http_on_header(char *line, size_t size, size_t nmemb, void *ud)
{
    struct http *h = ud;
    size_t n = size * nmemb;
    if (http_reply_line(&h->reply, line, n) != 0) {
        h->oom = 1;
        return 0;
    }
    return n;
}

static void http_close(struct http *h)
{
    if (h->curl != NULL) {
        curl_easy_cleanup(h->curl);
        h->curl = NULL;
    }
    curl_slist_free_all(h->hdrs);
    h->hdrs = NULL;
    free(h->ca_file);
    h->ca_file = NULL;
    free(h->body.p);
    free(h->line.p);
    memset(&h->body, 0, sizeof h->body);
    memset(&h->line, 0, sizeof h->line);
    http_reply_free(&h->reply);
}

/* The handle's fixed options, set again after every curl_easy_reset (see l_http_request).
 * Returns the first failing setopt's code. */
static CURLcode http_configure(struct http *h)
{
    CURL *c = h->curl;
    CURLcode rc = CURLE_OK;
#define HTTP_SET(opt, val)                                                                         \
    do {                                                                                           \
        if (rc == CURLE_OK)                                                                        \
            rc = curl_easy_setopt(c, opt, val);                                                    \
    } while (0)
    HTTP_SET(CURLOPT_NOSIGNAL, 1L); /* no SIGALRM for DNS timeouts: we live inside a server */
    HTTP_SET(CURLOPT_ERRORBUFFER, h->err);
    HTTP_SET(CURLOPT_WRITEFUNCTION, http_on_body);
    HTTP_SET(CURLOPT_WRITEDATA, (void *)h);
    HTTP_SET(CURLOPT_HEADERFUNCTION, http_on_header);
    HTTP_SET(CURLOPT_HEADERDATA, (void *)h);
    HTTP_SET(CURLOPT_CONNECTTIMEOUT_MS, h->connect_ms);
    HTTP_SET(CURLOPT_TIMEOUT_MS, h->total_ms);
    HTTP_SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1); /* no h2 via ALPN */
    HTTP_SET(CURLOPT_TCP_NODELAY, 1L);
    HTTP_SET(CURLOPT_SSL_VERIFYPEER, h->verify ? 1L : 0L);
    HTTP_SET(CURLOPT_SSL_VERIFYHOST, h->verify ? 2L : 0L);
    if (h->ca_file != NULL)
        HTTP_SET(CURLOPT_CAINFO, h->ca_file);
#if LIBCURL_VERSION_NUM >= 0x075500
    HTTP_SET(CURLOPT_PROTOCOLS_STR, "http,https");
#else
    HTTP_SET(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
#undef HTTP_SET
    return rc;
}

/* Maps a curl failure to our reason; sets *retryable. TLS failures that mean "this peer cannot be
 * trusted" are final; a handshake that broke off (CURLE_SSL_CONNECT_ERROR) is worth another try. */
static const char *http_reason(CURLcode rc, int *retryable)
{
    *retryable = 1;
    switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
        return "timeout";
    case CURLE_COULDNT_CONNECT:
        return "connect";
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return "dns";
    case CURLE_GOT_NOTHING:  /* closed before any reply byte */
    case CURLE_SEND_ERROR:   /* reset while sending */
    case CURLE_RECV_ERROR:   /* reset while receiving */
    case CURLE_PARTIAL_FILE: /* closed mid-body */
        return "reset";
    case CURLE_SEND_FAIL_REWIND: /* a reused connection died before any reply: not replayed here */
        return "stale";
    case CURLE_SSL_CONNECT_ERROR:
        return "tls";
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_USE_SSL_FAILED:
        *retryable = 0;
        return "tls";
    default:
        *retryable = 0;
        return "other";
    }
}

/* Pushes url without userinfo, query or fragment: enough to say where, nothing secret. */
static void l_http_push_safe_url(lua_State *L, const char *url)
{
    const char *p = strstr(url, "://"), *host = p ? p + 3 : url, *end = host + strcspn(host, "/?#");
    lua_pushlstring(L, url, (size_t)(host - url)); /* scheme:// */
    for (const char *q = host; q < end; q++)
        if (*q == '@')
            host = q + 1; /* drop user:password@ */
    lua_pushlstring(L, host, strcspn(host, "?#"));
    lua_concat(L, 2);
}

/* Raises { status = 0, code = "TransportError", message = "<METHOD> <url>: <detail>", retryable,
 * reason, curl_code }: core_pusherror's shape plus two fields. Does not return. Never put request
 * headers into detail: they carry credentials. */
static int l_http_raise(lua_State *L, const char *method, const char *url, const char *reason,
                        int retryable, int curl_code, const char *fmt, ...)
{
    va_list ap;
    lua_pushstring(L, method);
    lua_pushliteral(L, " ");
    l_http_push_safe_url(L, url);
    lua_pushliteral(L, ": ");
    va_start(ap, fmt);
    lua_pushvfstring(L, fmt, ap);
    va_end(ap);
    lua_concat(L, 5);
    core_pusherror(L, 0, "TransportError", lua_tostring(L, -1));
    lua_pushboolean(L, retryable);
    lua_setfield(L, -2, "retryable");
    lua_pushstring(L, reason);
    lua_setfield(L, -2, "reason");
    lua_pushinteger(L, curl_code);
    lua_setfield(L, -2, "curl_code");
    return lua_error(L);
}

/* ---- bindings ---- */

static struct http *l_http_check(lua_State *L)
{
    struct http *h = luaL_checkudata(L, 1, HTTP_MT);
    if (h->curl == NULL)
        luaL_error(L, "http handle is closed");
    return h;
}

/* RFC 9110 token: what a method or a header name may be. */
static int http_is_token(const char *s, size_t n)
{
    static const char extra[] = "!#$%&'*+-.^_`|~";
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              (c != 0 && strchr(extra, c) != NULL)))
            return 0;
    }
    return 1;
}

static int http_name_is(const char *s, size_t n, const char *lower)
{
    if (strlen(lower) != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (http_lower(s[i]) != lower[i])
            return 0;
    return 1;
}

/* Adds one line to h->hdrs; curl copies it. The list stays owned by h, so raising is safe. */
static void l_http_add_line(lua_State *L, struct http *h)
{
    buf_putc(L, &h->line, '\0');
    struct curl_slist *l = curl_slist_append(h->hdrs, h->line.p);
    if (l == NULL)
        luaL_error(L, "not enough memory");
    h->hdrs = l;
}

#define HTTP_SEEN_EXPECT 1
#define HTTP_SEEN_CTYPE  2
#define HTTP_SEEN_ACCEPT 4

/* Builds h->hdrs from the { {name, value}, ... } array at idx (or nil). May raise (bad headers are
 * bugs: plain argument errors that never quote a value). Then switches off curl's own defaults the
 * caller did not override: Expect: 100-continue (a wasted round trip; DynamoDB does not need it),
 * the form Content-Type POST adds, and Accept: * / *. */
static void l_http_build_headers(lua_State *L, struct http *h, int idx)
{
    int seen = 0;
    if (!lua_isnil(L, idx)) {
        lua_Integer n = luaL_len(L, idx);
        for (lua_Integer i = 1; i <= n; i++) {
            size_t nl, vl;
            /* stack: ..., pair, name, value */
            lua_rawgeti(L, idx, (int)i);
            if (!lua_istable(L, -1))
                luaL_argerror(L, idx,
                              lua_pushfstring(L, "header %d is not a {name, value} pair", (int)i));
            lua_rawgeti(L, -1, 1);
            lua_rawgeti(L, -2, 2);
            const char *name = lua_type(L, -2) == LUA_TSTRING ? lua_tolstring(L, -2, &nl) : NULL;
            const char *value = lua_isstring(L, -1) ? lua_tolstring(L, -1, &vl) : NULL;
            if (name == NULL || !http_is_token(name, nl))
                luaL_argerror(L, idx, lua_pushfstring(L, "header %d: bad name", (int)i));
            if (value == NULL || strlen(value) != vl || strpbrk(value, "\r\n") != NULL)
                luaL_argerror(L, idx,
                              lua_pushfstring(L,
                                              "header %d (%s): value must be a string "
                                              "without CR, LF or NUL",
                                              (int)i, name));
            if (http_name_is(name, nl, "expect"))
                seen |= HTTP_SEEN_EXPECT;
            else if (http_name_is(name, nl, "content-type"))
                seen |= HTTP_SEEN_CTYPE;
            else if (http_name_is(name, nl, "accept"))
                seen |= HTTP_SEEN_ACCEPT;
            h->line.len = 0;
            buf_put(L, &h->line, name, nl);
            if (vl == 0) {
                buf_putc(L, &h->line, ';'); /* curl's spelling of "send this header empty" */
            } else {
                BUF_LIT(L, &h->line, ": ");
                buf_put(L, &h->line, value, vl);
            }
            l_http_add_line(L, h);
            lua_pop(L, 3);
        }
    }
    /* "Name:" with nothing after it removes a header curl would add. */
    static const struct {
        int bit;
        const char *line;
    } off[] = {{HTTP_SEEN_EXPECT, "Expect:"},
               {HTTP_SEEN_CTYPE, "Content-Type:"},
               {HTTP_SEEN_ACCEPT, "Accept:"}};
    for (size_t i = 0; i < sizeof off / sizeof off[0]; i++)
        if (!(seen & off[i].bit)) {
            h->line.len = 0;
            buf_put(L, &h->line, off[i].line, strlen(off[i].line));
            l_http_add_line(L, h);
        }
}

/* The request body goes out through a read callback with no way to rewind it: libcurl then
 * cannot silently replay a request that was sent on a reused connection whose reply never came
 * (it fails with CURLE_SEND_FAIL_REWIND), so retrying stays the client's decision. */
static size_t http_read(char *dst, size_t size, size_t n, void *ud)
{
    struct http *h = ud;
    size_t k = size * n < h->up_len ? size * n : h->up_len;
    memcpy(dst, h->up, k);
    h->up += k;
    h->up_len -= k;
    return k;
}

static int http_seek(void *ud, curl_off_t off, int origin)
{
    (void)ud;
    (void)off;
    (void)origin;
    return CURL_SEEKFUNC_CANTSEEK;
}

/* Resets the handle and sets everything for this call. curl_easy_reset keeps live connections but
 * zeroes curl's count of "connection died, retrying on a fresh one", which libcurl before 8.17
 * otherwise carries across transfers: the 6th stale keep-alive connection in a handle's life
 * would fail with "Connection died, tried 5 times" (curl/curl#19066). Returns the first failing
 * setopt's code. */
static CURLcode http_prepare(struct http *h, const char *method, const char *url, const char *body,
                             size_t body_len, long timeout_ms)
{
    CURL *c = h->curl;
    curl_easy_reset(c);
    CURLcode rc = http_configure(h);
    if (rc == CURLE_OK && timeout_ms > 0) /* this request's own bound instead of the handle's */
        rc = curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(c, CURLOPT_URL, url);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(c, CURLOPT_HTTPHEADER, h->hdrs);
    if (rc != CURLE_OK)
        return rc;
    if (strcmp(method, "HEAD") == 0) {
        rc = curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    } else if (body != NULL || strcmp(method, "POST") == 0) {
        /* The body is not copied: it is the Lua string on the caller's stack during perform. */
        h->up = body != NULL ? body : "";
        h->up_len = body != NULL ? body_len : 0;
        rc = curl_easy_setopt(c, CURLOPT_POST, 1L);
        if (rc == CURLE_OK)
            rc = curl_easy_setopt(c, CURLOPT_READFUNCTION, http_read);
        if (rc == CURLE_OK)
            rc = curl_easy_setopt(c, CURLOPT_READDATA, h);
        if (rc == CURLE_OK)
            rc = curl_easy_setopt(c, CURLOPT_SEEKFUNCTION, http_seek);
        if (rc == CURLE_OK)
            rc = curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
        if (rc == CURLE_OK)
            rc = curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST,
                                  strcmp(method, "POST") == 0 ? NULL : method);
    } else if (strcmp(method, "GET") != 0) {
        rc = curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    }
    return rc;
}

static void http_trim(struct http *h)
{
    buf_trim(&h->body, HTTP_BODY_KEEP);
    http_reply_trim(&h->reply, HTTP_HEADER_KEEP);
}

const char *core_http_body(lua_State *L, int idx, size_t *n)
{
    struct http *h = luaL_checkudata(L, idx, HTTP_MT);
    *n = h->body.len;
    return h->body.p ? h->body.p : "";
}

/* h:request(method, url, headers, body [, decode [, timeout_ms [, meta]]]) -> status, body, headers
 * headers: nil or { {name, value}, ... }; body: nil or a string (POST sends "" for nil).
 * Returned headers: { [lowercase name] = value }, the last of repeated names wins.
 * decode true and status 200: -> 200, core.decode_reply(body), read in place from the handle's
 * buffer (no body string, no headers table); a body that does not decode raises the decoder's
 * MarshalError. With meta true it also returns the body's size in bytes and the
 * x-amzn-requestid header (or nil).
 * timeout_ms: nil, or this request's bound (1 to HTTP_MAX_TIMEOUT_MS) instead of the handle's.
 * Raises the error object (TransportError, see l_http_raise) when no valid reply arrived. */
static int l_http_request(lua_State *L)
{
    struct http *h = l_http_check(L);
    size_t mlen, ulen, body_len = 0;
    const char *method = luaL_checklstring(L, 2, &mlen);
    const char *url = luaL_checklstring(L, 3, &ulen);
    if (!lua_isnoneornil(L, 4))
        luaL_checktype(L, 4, LUA_TTABLE);
    const char *body = luaL_optlstring(L, 5, NULL, &body_len);
    int decode = lua_toboolean(L, 6);
    long timeout_ms = 0;
    if (!lua_isnoneornil(L, 7)) {
        lua_Integer v = lua_isinteger(L, 7) ? lua_tointeger(L, 7) : 0;
        if (v < 1 || v > HTTP_MAX_TIMEOUT_MS)
            luaL_argerror(L, 7,
                          lua_pushfstring(L, "timeout_ms must be an integer from 1 to %d (ms)",
                                          HTTP_MAX_TIMEOUT_MS));
        timeout_ms = (long)v;
    }
    int meta = lua_toboolean(L, 8);
    if (!http_is_token(method, mlen))
        luaL_argerror(L, 2, "method must be an HTTP token");
    if (strlen(url) != ulen)
        luaL_argerror(L, 3, "url contains NUL");
    lua_settop(L, 5); /* stack: http, method, url, headers, body (kept alive through perform) */

    curl_slist_free_all(h->hdrs); /* left over if the previous call raised while building */
    h->hdrs = NULL;
    l_http_build_headers(L, h, 4);

    h->body.len = h->reply.hdr.len = 0;
    h->reply.nfields = 0;
    h->oom = 0;
    h->err[0] = '\0';
    CURLcode rc = http_prepare(h, method, url, body, body_len, timeout_ms);
    if (rc == CURLE_OK)
        rc = curl_easy_perform(h->curl);
    curl_easy_setopt(h->curl, CURLOPT_HTTPHEADER, (struct curl_slist *)NULL);
    curl_easy_setopt(h->curl, CURLOPT_POSTFIELDS, (char *)NULL); /* the Lua string may go */
    h->sent = h->up_len == 0;
    h->up = NULL;
    h->up_len = 0;
    curl_slist_free_all(h->hdrs);
    h->hdrs = NULL;

    long connects = 0, status = 0;
    curl_off_t us = 0;
    curl_easy_getinfo(h->curl, CURLINFO_NUM_CONNECTS, &connects);
    curl_easy_getinfo(h->curl, CURLINFO_TOTAL_TIME_T, &us);
    curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, &status);
    h->requests++;
    h->connects += connects;
    h->last_us = (long long)us;

    if (rc != CURLE_OK) {
        int retryable;
        const char *reason = http_reason(rc, &retryable);
        http_trim(h);
        if (h->oom)
            return l_http_raise(L, method, url, "other", 0, (int)rc, "out of memory reading reply");
        return l_http_raise(L, method, url, reason, retryable, (int)rc, "%s (curl error %d)",
                            h->err[0] ? h->err : curl_easy_strerror(rc), (int)rc);
    }

    char text[64];
    if (http_reply_crc_check(&h->reply, h->body.p ? h->body.p : "", h->body.len, text,
                             sizeof text) != 0) {
        http_trim(h);
        return l_http_raise(L, method, url, "crc32", 1, 0,
                            "reply failed its x-amz-crc32 check (header %s)", text);
    }

    lua_pushinteger(L, (lua_Integer)status);
    if (decode && status == 200) {
        lua_pushvalue(L, lua_upvalueindex(1)); /* decode_http */
        lua_pushvalue(L, 1);
        int err = lua_pcall(L, 1, 1, 0);
        if (err != LUA_OK) {
            http_trim(h);
            return lua_error(L);
        }
        if (!meta) {
            http_trim(h);
            return 2;
        }
        size_t idlen = 0;
        const char *id = http_reply_find(&h->reply, "x-amzn-requestid", &idlen);
        lua_pushinteger(L, (lua_Integer)h->body.len);
        if (id != NULL)
            lua_pushlstring(L, id, idlen);
        else
            lua_pushnil(L);
        http_trim(h);
        return 4;
    }
    lua_pushlstring(L, h->body.p ? h->body.p : "", h->body.len);
    http_reply_push_headers(L, &h->reply);
    http_trim(h);
    return 3;
}

/* h:info() -> { requests, connects (new connections, summed over requests), last_ms, sent (the last
 * request's body was handed to libcurl whole; false: the server cannot have acted on it) } */
static int l_http_info(lua_State *L)
{
    struct http *h = l_http_check(L);
    lua_createtable(L, 0, 4);
    lua_pushinteger(L, (lua_Integer)h->requests);
    lua_setfield(L, -2, "requests");
    lua_pushinteger(L, (lua_Integer)h->connects);
    lua_setfield(L, -2, "connects");
    lua_pushnumber(L, (lua_Number)h->last_us / 1000.0);
    lua_setfield(L, -2, "last_ms");
    lua_pushboolean(L, h->sent);
    lua_setfield(L, -2, "sent");
    return 1;
}

/* h:close(), __gc and __close: idempotent. */
static int l_http_close(lua_State *L)
{
    http_close(luaL_checkudata(L, 1, HTTP_MT));
    return 0;
}

/* Reads opts[key] as a timeout in milliseconds, or returns def when absent. */
static long l_http_opt_ms(lua_State *L, const char *key, long def)
{
    long ms = def;
    lua_getfield(L, 1, key);
    if (!lua_isnil(L, -1)) {
        lua_Integer v = lua_isinteger(L, -1) ? lua_tointeger(L, -1) : 0;
        if (v < 1 || v > HTTP_MAX_TIMEOUT_MS)
            luaL_argerror(L, 1,
                          lua_pushfstring(L, "%s must be an integer from 1 to %d (ms)", key,
                                          HTTP_MAX_TIMEOUT_MS));
        ms = (long)v;
    }
    lua_pop(L, 1);
    return ms;
}

/* core.http_new([opts]) -> handle. opts (all optional):
 *   connect_timeout_ms  TCP connect + TLS handshake, default HTTP_CONNECT_TIMEOUT_MS (2000)
 *   timeout_ms          the whole request, default HTTP_TIMEOUT_MS (10000)
 *   verify              check the server's certificate and name, default true
 *   ca_file             PEM bundle to trust instead of the system's
 * Unknown keys are argument errors (a typo must not silently keep a default). */
static int l_http_new(lua_State *L)
{
    static const char *const known[] = {"connect_timeout_ms", "timeout_ms", "verify", "ca_file",
                                        NULL};
    long connect_ms, total_ms;
    int verify = 1;
    const char *ca_file = NULL;

    if (lua_isnoneornil(L, 1)) {
        lua_settop(L, 0);
        lua_newtable(L);
    }
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    lua_pushnil(L);
    while (lua_next(L, 1)) { /* stack: opts, key, value */
        int ok = 0;
        if (lua_type(L, -2) == LUA_TSTRING)
            for (int i = 0; known[i] && !ok; i++)
                ok = strcmp(lua_tostring(L, -2), known[i]) == 0;
        if (!ok)
            luaL_argerror(L, 1,
                          lua_type(L, -2) == LUA_TSTRING
                              ? lua_pushfstring(L, "unknown option '%s'", lua_tostring(L, -2))
                              : "option keys must be strings");
        lua_pop(L, 1);
    }
    connect_ms = l_http_opt_ms(L, "connect_timeout_ms", HTTP_CONNECT_TIMEOUT_MS);
    total_ms = l_http_opt_ms(L, "timeout_ms", HTTP_TIMEOUT_MS);
    lua_getfield(L, 1, "verify");
    if (!lua_isnil(L, -1)) {
        luaL_argcheck(L, lua_isboolean(L, -1), 1, "verify must be a boolean");
        verify = lua_toboolean(L, -1);
    }
    lua_getfield(L, 1, "ca_file"); /* stays on the stack until copied below */
    if (!lua_isnil(L, -1)) {
        luaL_argcheck(L, lua_type(L, -1) == LUA_TSTRING, 1, "ca_file must be a string");
        ca_file = lua_tostring(L, -1);
    }

    struct http *h = lua_newuserdata(L, sizeof *h);
    memset(h, 0, sizeof *h);
    h->connect_ms = connect_ms;
    h->total_ms = total_ms;
    h->verify = verify;
    /* From here nothing may raise until the metatable is on, except after freeing what h holds:
     * without the metatable no __gc would. */
    if (ca_file != NULL) {
        size_t n = strlen(ca_file) + 1;
        if ((h->ca_file = malloc(n)) == NULL)
            return luaL_error(L, "not enough memory");
        memcpy(h->ca_file, ca_file, n);
    }
    h->curl = curl_easy_init();
    if (h->curl == NULL) {
        http_close(h);
        return core_raise(L, 0, "TransportError", "curl_easy_init failed");
    }
    CURLcode rc = http_configure(h); /* once here, so bad settings fail now, not at first use */
    if (rc != CURLE_OK) {
        http_close(h);
        return core_raise(L, 0, "TransportError", "curl setup failed: %s", curl_easy_strerror(rc));
    }
    luaL_setmetatable(L, HTTP_MT);
    return 1;
}

void l_http_open(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"request", l_http_request},
        {"info", l_http_info},
        {"close", l_http_close},
        {NULL, NULL},
    };
    http_global_init();
    /* stack: module */
    luaL_newmetatable(L, HTTP_MT);
    lua_pushstring(L, HTTP_MT);
    lua_setfield(L, -2, "__name");
    lua_createtable(L, 0, 3);
    lua_getfield(L, LUA_REGISTRYINDEX, CORE_DECODE_HTTP); /* l_unmarshal_open put it there */
    luaL_setfuncs(L, methods, 1);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_http_close);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, l_http_close);
    lua_setfield(L, -2, "__close");
    lua_pop(L, 1);
    lua_pushcfunction(L, l_http_new);
    lua_setfield(L, -2, "http_new");
}
