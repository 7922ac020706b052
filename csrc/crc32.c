/* CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320): the value zlib's crc32() computes and
 * DynamoDB sends as x-amz-crc32 over every reply body. Both transports check it, so it runs over
 * every byte received: on x86-64 with PCLMULQDQ (checked at run time) the body is folded 64 bytes
 * at a time by carry-less multiplication, about 15 times the speed of tables; elsewhere, and for
 * short inputs and the last bytes, slicing by 8 over tables. */
#include <stdint.h>

#include "core.h"

static uint32_t crc_table[8][256];
static int crc_ready; /* 1: tables built; written once, from the module opener */

#if defined(__x86_64__) && defined(__GNUC__)
#define CRC_CLMUL 1
#include <immintrin.h>
static int crc_have_clmul; /* the CPU has PCLMULQDQ */
static int crc_use_clmul;  /* and core.crc32 uses it (core.crc32_impl can switch it off) */
#endif

void core_crc32_init(void)
{
    if (crc_ready)
        return;
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[0][i] = c;
    }
    for (int i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++) {
            uint32_t c = crc_table[t - 1][i];
            crc_table[t][i] = (c >> 8) ^ crc_table[0][c & 0xff];
        }
#ifdef CRC_CLMUL
    __builtin_cpu_init();
    crc_have_clmul = crc_use_clmul = __builtin_cpu_supports("pclmul");
#endif
    crc_ready = 1;
}

/* The raw register update (no pre- or post-inversion), eight bytes at a time. Bytes are combined
 * by hand, so the host's byte order does not matter. */
static uint32_t crc_tables(uint32_t c, const unsigned char *p, size_t n)
{
    for (; n >= 8; p += 8, n -= 8) {
        uint32_t lo = c ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                           (uint32_t)p[3] << 24);
        c = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^
            crc_table[5][(lo >> 16) & 0xff] ^ crc_table[4][lo >> 24] ^ crc_table[3][p[4]] ^
            crc_table[2][p[5]] ^ crc_table[1][p[6]] ^ crc_table[0][p[7]];
    }
    while (n--)
        c = crc_table[0][(c ^ *p++) & 0xff] ^ (c >> 8);
    return c;
}

#ifdef CRC_CLMUL
/* Folding (Gopal et al., "Fast CRC Computation for Generic Polynomials Using PCLMULQDQ", Intel,
 * 2009). Four 128-bit lanes are each carried 512 bits forward per step: low half times
 * x^(512+32) mod P xor high half times x^(512-32) mod P (k512 below, bit-reflected); then the lanes
 * fold into one with the same pair for 128 bits. What remains is
 * 16 bytes whose raw CRC from 0 equals the raw CRC of everything folded, so the tables finish it
 * (no Barrett step needed). n >= 64; returns the register after the first n & ~15 bytes. */
__attribute__((target("pclmul"))) static uint32_t crc_clmul(uint32_t c, const unsigned char **pp,
                                                            size_t *np)
{
    const unsigned char *p = *pp;
    size_t n = *np;
    const __m128i k512 = _mm_set_epi64x(0x1c6e41596LL, 0x154442bd4LL);
    const __m128i k128 = _mm_set_epi64x(0x0ccaa009eLL, 0x1751997d0LL);
    __m128i x0 = _mm_loadu_si128((const __m128i *)(const void *)p);
    __m128i x1 = _mm_loadu_si128((const __m128i *)(const void *)(p + 16));
    __m128i x2 = _mm_loadu_si128((const __m128i *)(const void *)(p + 32));
    __m128i x3 = _mm_loadu_si128((const __m128i *)(const void *)(p + 48));
    x0 = _mm_xor_si128(x0, _mm_cvtsi32_si128((int)c));
    p += 64;
    n -= 64;
#define CRC_FOLD(x, k, next)                                                                       \
    _mm_xor_si128(                                                                                 \
        _mm_xor_si128(_mm_clmulepi64_si128((x), (k), 0x00), _mm_clmulepi64_si128((x), (k), 0x11)), \
        (next))
    while (n >= 64) {
        x0 = CRC_FOLD(x0, k512, _mm_loadu_si128((const __m128i *)(const void *)p));
        x1 = CRC_FOLD(x1, k512, _mm_loadu_si128((const __m128i *)(const void *)(p + 16)));
        x2 = CRC_FOLD(x2, k512, _mm_loadu_si128((const __m128i *)(const void *)(p + 32)));
        x3 = CRC_FOLD(x3, k512, _mm_loadu_si128((const __m128i *)(const void *)(p + 48)));
        p += 64;
        n -= 64;
    }
    x0 = CRC_FOLD(x0, k128, x1);
    x0 = CRC_FOLD(x0, k128, x2);
    x0 = CRC_FOLD(x0, k128, x3);
    while (n >= 16) {
        x0 = CRC_FOLD(x0, k128, _mm_loadu_si128((const __m128i *)(const void *)p));
        p += 16;
        n -= 16;
    }
#undef CRC_FOLD
    unsigned char last[16];
    _mm_storeu_si128((__m128i *)(void *)last, x0);
    *pp = p;
    *np = n;
    return crc_tables(0, last, 16);
}
#endif

uint32_t core_crc32(uint32_t crc, const unsigned char *p, size_t n)
{
    uint32_t c = ~crc;
#ifdef CRC_CLMUL
    if (n >= 64 && crc_use_clmul)
        c = crc_clmul(c, &p, &n);
#endif
    return ~crc_tables(c, p, n);
}

/* core.crc32(s [, crc]) -> CRC-32 of s, continuing from crc (default 0), as zlib's crc32(). */
static int l_crc32(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    lua_Number start = luaL_optnumber(L, 2, 0);
    if (!(start >= 0 && start <= 4294967295.0) || start != (lua_Number)(uint32_t)start)
        return luaL_argerror(L, 2, "integer 0 .. 2^32-1 expected");
    lua_pushinteger(L, (lua_Integer)core_crc32((uint32_t)start, (const unsigned char *)s, n));
    return 1;
}

/* core.crc32_impl([use]) -> "clmul" or "tables": what core.crc32 uses on this machine. use
 * ("tables" or "clmul") switches first, for tests; "clmul" is taken only where the CPU has it. */
static int l_crc32_impl(lua_State *L)
{
    static const char *const names[] = {"tables", "clmul", NULL};
    int use = lua_isnoneornil(L, 1) ? -1 : luaL_checkoption(L, 1, NULL, names);
#ifdef CRC_CLMUL
    if (use >= 0)
        crc_use_clmul = use == 1 && crc_have_clmul;
    lua_pushstring(L, crc_use_clmul ? "clmul" : "tables");
#else
    (void)use;
    lua_pushstring(L, "tables");
#endif
    return 1;
}

void l_crc32_open(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"crc32", l_crc32},
        {"crc32_impl", l_crc32_impl},
        {NULL, NULL},
    };
    core_crc32_init();
    luaL_setfuncs(L, funcs, 0);
}
