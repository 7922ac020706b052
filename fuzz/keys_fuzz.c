/* libFuzzer target: key unescaping, core.key_unescape and core.key_parts (keys read back from the
 * table, written by us or not), against a reference, and core.key / key_escape round trips.
 * The properties are props.keys in fuzz/props.lua; fuzz_lua.h runs them. */
#include "fuzz_lua.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_run("keys", data, size);
}
