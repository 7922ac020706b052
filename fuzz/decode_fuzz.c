/* libFuzzer target: the reply decoder, core.decode_reply, core.unmarshal_item and
 * core.unmarshal_value (DynamoDB JSON from the network), then the encoder on whatever decoded.
 * The properties are props.decode in fuzz/props.lua; fuzz_lua.h runs them. */
#include "fuzz_lua.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_run("decode", data, size);
}
