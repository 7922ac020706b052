/* Private to the codec (marshal.c encodes Lua -> DynamoDB JSON, unmarshal.c decodes): the pieces
 * both directions share: attribute paths for error messages, number text, base64 and UTF-8. */
#ifndef AUTHHERO_MARSHAL_H
#define AUTHHERO_MARSHAL_H

#include "core.h"

/* DynamoDB allows 32 levels of nested attributes; deeper input is refused both ways. */
#define MARSHAL_MAX_DEPTH 32
/* Plain JSON around the items (a reply's envelope) is shallow; this only guards the C stack. */
#define MARSHAL_MAX_PLAIN_DEPTH 64

/* One step of an attribute path, chained on the C stack from the leaf up: a key (bytes as they
 * were seen, not necessarily NUL-terminated) or a list index (key == NULL). */
struct marshal_path {
    const struct marshal_path *up;
    const char *key;
    size_t klen;
    long long idx;
};

/* Raises a MarshalError (with `path`) naming the attribute path. Does not return. */
int l_marshal_fail(lua_State *L, int status, const struct marshal_path *p, const char *fmt, ...);

/* Number text. marshal_fmt_double writes the shortest text that reads back to d (at most 32
 * bytes, no NUL) and returns its length; d must be finite. */
size_t marshal_fmt_int(char *out, long long v);
size_t marshal_fmt_double(char *out, double d);

/* Decimal text -> Lua value: an integer when integral and in range, else a float when the
 * shortest text of the nearest double denotes the same decimal, else the text itself (a string).
 * Returns 0, or -1 when s is not a valid number (nothing pushed). */
int l_marshal_push_number(lua_State *L, const char *s, size_t n);

/* Base64 (RFC 4648, with padding). decode returns the decoded length or -1 when invalid. */
void marshal_b64_encode(lua_State *L, struct buf *b, const unsigned char *s, size_t n);
long marshal_b64_decode(unsigned char *out, const char *s, size_t n);

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when invalid (overlong, surrogate,
 * beyond U+10FFFF, truncated). s[0] must be >= 0x80. */
int marshal_utf8_len(const unsigned char *s, const unsigned char *end);

/* Which request/reply fields hold AttributeValues: 1 an item-like map (Item, Key, Attributes,
 * LastEvaluatedKey, ExclusiveStartKey, ExpressionAttributeValues), 2 a list of them (Items, Keys),
 * 3 Responses (BatchGetItem: table name -> list of items), 0 plain JSON. */
int marshal_field_kind(const char *k, size_t n);

/* unmarshal.c registers the decoding functions (same upvalues as the encoder's). */
void l_unmarshal_open(lua_State *L);

#endif
