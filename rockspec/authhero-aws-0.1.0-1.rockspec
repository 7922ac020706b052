rockspec_format = "3.0"
package = "authhero-aws"
version = "0.1.0-1"
source = {
    url = "git+https://example.invalid/authhero-aws.git",
    tag = "v0.1.0",
}
description = {
    summary = "AuthHero's DynamoDB storage adapter for Lua and OpenResty, with a C core",
    detailed = [[
SigV4 signing, one-pass DynamoDB-JSON marshalling and a libcurl transport in C; a DynamoDB client
with retries and credentials, table setup and AuthHero's single-table design in Lua.
]],
    license = "MIT",
}
-- Every Lua from 5.1 to 5.4 and LuaJIT 2.1 (`make test` builds the C core and runs the unit specs
-- under each). No other rock: JSON is the C core's own (lua-cjson is only a test dependency).
dependencies = {
    "lua >= 5.1, < 5.5",
}
external_dependencies = {
    CRYPTO = { header = "openssl/evp.h", library = "crypto" },
    -- Debian keeps curl.h under /usr/include/<multiarch>/, which the compiler finds by itself but
    -- LuaRocks' header check does not: look for the library only.
    CURL = { library = "curl" },
    -- ICU (Debian: libicu-dev): core.lower, Unicode lower-casing as JavaScript's toLowerCase.
    ICU = { header = "unicode/ustring.h", library = "icuuc" },
    -- authhero.aws.password: bcrypt via libxcrypt (Debian: libcrypt-dev), argon2id via libargon2
    -- (Debian: libargon2-dev).
    CRYPT = { header = "crypt.h", library = "crypt" },
    ARGON2 = { header = "argon2.h", library = "argon2" },
}
build = {
    type = "builtin",
    install = { bin = { ["authhero-dynamo"] = "bin/authhero-dynamo" } },
    modules = {
        ["authhero.aws.core"] = {
            sources = {
                "csrc/core.c",
                "csrc/crc32.c",
                "csrc/http.c",
                "csrc/http_reply.c",
                "csrc/keys.c",
                "csrc/marshal.c",
                "csrc/password.c",
                "csrc/sigv4.c",
                "csrc/unicode.c",
                "csrc/unmarshal.c",
            },
            libraries = { "crypto", "curl", "icuuc", "crypt", "argon2" },
            incdirs = { "$(CRYPTO_INCDIR)", "$(ICU_INCDIR)", "$(CRYPT_INCDIR)", "$(ARGON2_INCDIR)" },
            libdirs = { "$(CRYPTO_LIBDIR)", "$(CURL_LIBDIR)", "$(ICU_LIBDIR)", "$(CRYPT_LIBDIR)", "$(ARGON2_LIBDIR)" },
            defines = {},
        },
        ["authhero.aws"] = "lua/authhero/aws/init.lua",
        ["authhero.aws.adapters.authentication_methods"] = "lua/authhero/aws/adapters/authentication_methods.lua",
        ["authhero.aws.adapters.branding"] = "lua/authhero/aws/adapters/branding.lua",
        ["authhero.aws.adapters.client_connections"] = "lua/authhero/aws/adapters/client_connections.lua",
        ["authhero.aws.adapters.client_grants"] = "lua/authhero/aws/adapters/client_grants.lua",
        ["authhero.aws.adapters.client_registration_tokens"] = "lua/authhero/aws/adapters/client_registration_tokens.lua",
        ["authhero.aws.adapters.clients"] = "lua/authhero/aws/adapters/clients.lua",
        ["authhero.aws.adapters.codes"] = "lua/authhero/aws/adapters/codes.lua",
        ["authhero.aws.adapters.connections"] = "lua/authhero/aws/adapters/connections.lua",
        ["authhero.aws.adapters.custom_domains"] = "lua/authhero/aws/adapters/custom_domains.lua",
        ["authhero.aws.adapters.custom_text"] = "lua/authhero/aws/adapters/custom_text.lua",
        ["authhero.aws.adapters.email_providers"] = "lua/authhero/aws/adapters/email_providers.lua",
        ["authhero.aws.adapters.email_templates"] = "lua/authhero/aws/adapters/email_templates.lua",
        ["authhero.aws.adapters.flows"] = "lua/authhero/aws/adapters/flows.lua",
        ["authhero.aws.adapters.forms"] = "lua/authhero/aws/adapters/forms.lua",
        ["authhero.aws.adapters.hook_code"] = "lua/authhero/aws/adapters/hook_code.lua",
        ["authhero.aws.adapters.hooks"] = "lua/authhero/aws/adapters/hooks.lua",
        ["authhero.aws.adapters.invites"] = "lua/authhero/aws/adapters/invites.lua",
        ["authhero.aws.adapters.keys"] = "lua/authhero/aws/adapters/keys.lua",
        ["authhero.aws.adapters.login_sessions"] = "lua/authhero/aws/adapters/login_sessions.lua",
        ["authhero.aws.adapters.logs"] = "lua/authhero/aws/adapters/logs.lua",
        ["authhero.aws.adapters.organization_connections"] = "lua/authhero/aws/adapters/organization_connections.lua",
        ["authhero.aws.adapters.organizations"] = "lua/authhero/aws/adapters/organizations.lua",
        ["authhero.aws.adapters.passwords"] = "lua/authhero/aws/adapters/passwords.lua",
        ["authhero.aws.adapters.prompt_settings"] = "lua/authhero/aws/adapters/prompt_settings.lua",
        ["authhero.aws.adapters.proxy_routes"] = "lua/authhero/aws/adapters/proxy_routes.lua",
        ["authhero.aws.adapters.refresh_tokens"] = "lua/authhero/aws/adapters/refresh_tokens.lua",
        ["authhero.aws.adapters.resource_servers"] = "lua/authhero/aws/adapters/resource_servers.lua",
        ["authhero.aws.adapters.role_permissions"] = "lua/authhero/aws/adapters/role_permissions.lua",
        ["authhero.aws.adapters.roles"] = "lua/authhero/aws/adapters/roles.lua",
        ["authhero.aws.adapters.sessions"] = "lua/authhero/aws/adapters/sessions.lua",
        ["authhero.aws.adapters.tenants"] = "lua/authhero/aws/adapters/tenants.lua",
        ["authhero.aws.adapters.themes"] = "lua/authhero/aws/adapters/themes.lua",
        ["authhero.aws.adapters.universal_login_templates"] = "lua/authhero/aws/adapters/universal_login_templates.lua",
        ["authhero.aws.adapters.unsupported"] = "lua/authhero/aws/adapters/unsupported.lua",
        ["authhero.aws.adapters.user_organizations"] = "lua/authhero/aws/adapters/user_organizations.lua",
        ["authhero.aws.adapters.user_permissions"] = "lua/authhero/aws/adapters/user_permissions.lua",
        ["authhero.aws.adapters.user_roles"] = "lua/authhero/aws/adapters/user_roles.lua",
        ["authhero.aws.adapters.users"] = "lua/authhero/aws/adapters/users.lua",
        ["authhero.aws.cache"] = "lua/authhero/aws/cache.lua",
        ["authhero.aws.cli"] = "lua/authhero/aws/cli/init.lua",
        ["authhero.aws.cli.args"] = "lua/authhero/aws/cli/args.lua",
        ["authhero.aws.cli.changes"] = "lua/authhero/aws/cli/changes.lua",
        ["authhero.aws.cli.export"] = "lua/authhero/aws/cli/export.lua",
        ["authhero.aws.cli.import"] = "lua/authhero/aws/cli/import.lua",
        ["authhero.aws.cli.progress"] = "lua/authhero/aws/cli/progress.lua",
        ["authhero.aws.cli.records"] = "lua/authhero/aws/cli/records.lua",
        ["authhero.aws.cli.stats"] = "lua/authhero/aws/cli/stats.lua",
        ["authhero.aws.cli.verify"] = "lua/authhero/aws/cli/verify.lua",
        ["authhero.aws.cli.writer"] = "lua/authhero/aws/cli/writer.lua",
        ["authhero.aws.client"] = "lua/authhero/aws/client.lua",
        ["authhero.aws.credentials"] = "lua/authhero/aws/credentials.lua",
        ["authhero.aws.errors"] = "lua/authhero/aws/errors.lua",
        ["authhero.aws.filter"] = "lua/authhero/aws/filter.lua",
        ["authhero.aws.global"] = "lua/authhero/aws/global.lua",
        ["authhero.aws.metrics"] = "lua/authhero/aws/metrics.lua",
        ["authhero.aws.password"] = "lua/authhero/aws/password.lua",
        ["authhero.aws.registry"] = "lua/authhero/aws/registry.lua",
        ["authhero.aws.safe"] = "lua/authhero/aws/safe.lua",
        ["authhero.aws.schema"] = "lua/authhero/aws/schema.lua",
        ["authhero.aws.store"] = "lua/authhero/aws/store.lua",
        ["authhero.aws.streams"] = "lua/authhero/aws/streams.lua",
        ["authhero.aws.transport.cosocket"] = "lua/authhero/aws/transport/cosocket.lua",
        ["authhero.aws.transport.curl"] = "lua/authhero/aws/transport/curl.lua",
        ["authhero.aws.util"] = "lua/authhero/aws/util.lua",
    },
}
