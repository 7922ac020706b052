/* libFuzzer target: core.base64_decode (B values in replies and import files) against a reference
 * decoder, and base64_encode / base64_decode round trips.
 * The properties are props.base64 in fuzz/props.lua; fuzz_lua.h runs them. */
#include "fuzz_lua.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_run("base64", data, size);
}
