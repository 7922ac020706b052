-- The AuthHero user item both benchmarks measure on: 27 attributes, ~1.2 KB as DynamoDB JSON, in
-- tenant "tenant-0001". user_item(i) -> the i-th user, as a plain Lua item.
local core = require "authhero.aws.core"

local function user_item(i)
    local id = string.format("auth2|%024x", i * 7919)
    local email = "user" .. i .. "@example-company.com"
    return {
        PK = "TENANT#tenant-0001",
        SK = "USER#" .. id,
        GSI1PK = "TENANT#tenant-0001#EMAIL#" .. email,
        GSI1SK = "USER",
        entityType = "USER",
        tenant_id = "tenant-0001",
        user_id = id,
        email = email,
        email_verified = true,
        name = "User Number " .. i,
        given_name = "User",
        family_name = "Number" .. i,
        nickname = "user" .. i,
        picture = "https://cdn.example-company.com/avatars/" .. id .. ".png?size=256&default=identicon",
        locale = "en-US",
        provider = "auth2",
        connection = "Username-Password-Authentication",
        is_social = false,
        login_count = 1000 + i,
        last_login = "2026-11-26T10:58:21.000Z",
        last_ip = "203.0.113." .. (i % 250),
        created_at = "2025-01-02T03:04:05.000Z",
        updated_at = "2026-11-26T10:58:21.000Z",
        app_metadata = '{"roles":["admin","billing"],"plan":"enterprise","features":{"sso":true,"mfa":true}}',
        user_metadata = '{"theme":"dark","language":"en","newsletter":false,"timezone":"Europe/Stockholm"}',
        phone_number = "+4670" .. string.format("%07d", i),
        linked_to = core.null,
    }
end

return user_item
