-- The entity registry: the single-table data model as data. One entry per AuthHero adapter says
-- where its items live (key templates of the item, its index keys and its helper items: guards,
-- pointers, index items), how records become items (JSON-string, hidden and dropped fields, the
-- TTL source), what `q` may ask and what may be sorted, which parents' removal takes it along,
-- and how the command line imports and exports it. schema.lua compiles and checks it at load;
-- adapters, the cascades, the CLI, create_adapters and docs/data-model.md all read it from there.
-- Nothing here is code: placeholders name fields, so tools can read every template.
--
-- Template syntax: segments joined by '#'; a segment is a literal or one placeholder `{field}`.
-- Every placeholder value is escaped (`%` -> `%25`, `#` -> `%23`) by the C key composer.
--   {field:lower}  the value lower-cased first (emails, usernames)
--   {field:pad5}   an integer as five digits (an order that sorts as text)
--   {field:day}    the YYYY-MM-DD of an ISO timestamp
--   {field?}       the value may be the empty string (otherwise "" leaves an index key unwritten)
--   [#LIT#{field}] an optional group, present only when its fields are non-empty
--
-- Entry fields:
--   name, module, entity_type, summary     AuthHero's adapter name, adapters/<module>.lua, the
--                                          entityType attribute, one line for the docs
--   scope         "tenant" (records belong to a tenant; items carry tenant_id) or "global"
--   key           { name, pk, sk } of the record's own item
--   indexes       list of { name, index = "GSI1"|"GSI2", pk, sk, use } written on the item itself
--                 when every placeholder has a value (sparse)
--   helpers       list of { name, entity_type, kind = guard|pointer|index|version, pk, sk, owner?,
--                 owner_fields?, use }: items written and deleted with the record; `owner` lists
--                 the attributes that say whose a shared helper is (checked before it is deleted or
--                 taken over), owner_fields maps those the record spells otherwise (organization_id
--                 of an organization's guard is the organization's id)
--   json          field -> "object" | "array": stored as JSON text
--   hidden        fields stored on the item but left out of the record; drop: never stored
--   ttl           { from = { field, ... } } the first present timestamp sets `ttl` (epoch s);
--                 { from = { "date" }, retention = true } adds the log retention period
--   q             the `q` language's allow-list ({ fields, search }, see filter.lua); nil: no `q`
--   sortable      fields `sort` accepts in offset mode
--   parents       list of { parent, via = "item"|"GSI1"|"GSI2", map = { child_field = parent_field } }:
--                 removing the parent removes this entity's records found through that key
--   cli           { id, import = { method, args, clock }, export = { mode, under, call, args, items,
--                 collect } }: how the command line imports (cli/records.lua) and exports
--                 (cli/export.lua) the entity; entities without `cli` are neither
--   describe      how the CLI names an item in messages: {field} is the value, quoted, of the item's
--                 attribute or of its key's placeholder ({field:raw} unquoted); helpers carry their
--                 own, and `whose` names the owner of a stored guard or pointer the same way
local _M = {}

local T = "TENANT#{tenant_id}"

-- Partitions several entities share, by name (schema.keys.<name>(...) returns the PK string).
_M.partitions = {
    tenant_partition = T,
    user_partition = T .. "#USER#{user_id}",
    user_index_partition = T .. "#USER#{user_id}", -- the same string in GSI1's key space
    role_partition = T .. "#ROLE#{role_id}",
    organization_partition = T .. "#ORG#{organization_id}",
    client_partition = T .. "#CLIENT#{client_id}",
}

-- Shared `q` field types.
local S, B = { type = "string" }, { type = "boolean" }

_M.entities = {
    {
        name = "tenants", module = "tenants", entity_type = "TENANT", scope = "global",
        summary = "A tenant and its settings; the root of everything a tenant owns.",
        key = { name = "tenant", pk = "TENANT#{id}", sk = "TENANT" },
        indexes = {
            { name = "tenant_index", index = "GSI1", pk = "TENANTS", sk = "TENANT#{id}", use = "tenants.list" },
        },
        json = {
            session_cookie = "object", allowed_logout_urls = "array", enabled_locales = "array",
            error_page = "object", flags = "object", sandbox_versions_available = "array",
            change_password = "object", guardian_mfa_page = "object", device_flow = "object",
            default_token_quota = "object", sessions = "object", oidc_logout = "object",
            acr_values_supported = "array", mtls = "object", attack_protection = "object", mfa = "object",
        },
        drop = { is_control_plane = true },
        q = {
            fields = { id = S, friendly_name = S, audience = S, sender_email = S, sender_name = S,
                support_email = S, deployment_type = S, provisioning_state = S, created_at = S, updated_at = S },
            search = { { field = "friendly_name", mode = "substring" } },
        },
        sortable = { "id", "friendly_name", "created_at" },
        cli = { id = "id", import = { args = { "record", "options" } }, export = { mode = "self" } },
        describe = "tenant {id}",
    },
    {
        name = "users", module = "users", entity_type = "USER", scope = "tenant",
        summary = "A user account; identities of linked accounts are computed on read.",
        key = { name = "user", pk = T, sk = "USER#{user_id}" },
        indexes = {
            { name = "user_email_index", index = "GSI1", pk = T .. "#EMAIL#{email:lower}", sk = "USER",
                use = "getByEmail, q email:" },
            { name = "user_linked_index", index = "GSI2", pk = T .. "#LINKED_TO#{linked_to}", sk = "USER#{user_id}",
                use = "identities, q linked_to:, unlink, remove" },
        },
        helpers = {
            { name = "user_email_guard", entity_type = "USER_GUARD", kind = "guard", pk = T,
                sk = "USER_EMAIL#{email:lower}#{provider}", owner = { "tenant_id", "user_id" },
                use = "one user per (email, provider)", describe = "user email {email} (provider {provider:raw})",
                whose = "user {user_id}" },
            { name = "user_username_guard", entity_type = "USER_GUARD", kind = "guard", pk = T,
                sk = "USER_USERNAME#{username:lower}#{provider}", owner = { "tenant_id", "user_id" },
                use = "one user per (username, provider); q username:",
                describe = "user username {username} (provider {provider:raw})", whose = "user {user_id}" },
        },
        json = { app_metadata = "object", user_metadata = "object", address = "object" },
        drop = { identities = true, password = true },
        q = {
            fields = {
                user_id = S, email = { type = "string", ci = true }, email_verified = B, username = S,
                phone_number = S, phone_verified = B, name = S, given_name = S, family_name = S, nickname = S,
                picture = S, locale = S, linked_to = S, provider = S, connection = S, is_social = B, blocked = B,
                last_ip = S, last_login = S, login_count = { type = "number", default = 0 }, created_at = S,
                updated_at = S,
            },
            search = {
                { field = "email", mode = "substring" }, { field = "name", mode = "substring" },
                { field = "phone_number", mode = "substring" }, { field = "user_id", mode = "exact" },
            },
        },
        sortable = "q",
        parents = { { "tenants" } },
        cli = { id = "user_id", export = { mode = "users" } },
        describe = "user {user_id}",
    },
    {
        name = "passwords", module = "passwords", entity_type = "PASSWORD", scope = "tenant",
        summary = "Password hashes of a user, at most one of them current.",
        key = { name = "password", pk = T .. "#USER#{user_id}", sk = "PASSWORD#{id}" },
        hidden = { tenant_id = true },
        parents = { { "users" } },
        cli = { id = "id", export = { under = "users", mode = "all", args = { "tenant", "@user_id" } } },
    },
    {
        name = "sessions", module = "sessions", entity_type = "SESSION", scope = "tenant",
        summary = "A login session of a user on a device.",
        key = { name = "session", pk = T, sk = "SESSION#{id}" },
        indexes = {
            { name = "session_user_index", index = "GSI1", pk = T .. "#USER#{user_id}", sk = "SESSION#{id}",
                use = "q user_id: (revoke a user's sessions), user removal" },
        },
        json = { device = "object", clients = "array" },
        hidden = { tenant_id = true }, drop = { tenant_id = true },
        ttl = { from = { "expires_at", "idle_expires_at" } },
        q = {
            fields = { id = S, user_id = S, login_session_id = S, revoked_at = S, used_at = S, expires_at = S,
                idle_expires_at = S, authenticated_at = S, last_interaction_at = S, created_at = S, updated_at = S },
            search = { { field = "user_id", mode = "exact" }, { field = "id", mode = "substring" } },
        },
        sortable = { "created_at", "updated_at", "expires_at", "idle_expires_at", "last_interaction_at",
            "authenticated_at" },
        parents = { { "tenants" }, { "users", via = "GSI1" } },
        cli = { id = "id", import = { args = { "tenant", "record" }, clock = true } },
    },
    {
        name = "clients", module = "clients", entity_type = "CLIENT", scope = "tenant",
        summary = "An application (OAuth client) of a tenant.",
        key = { name = "client", pk = T, sk = "CLIENT#{client_id}" },
        helpers = {
            { name = "client_id_pointer", entity_type = "CLIENT_ID_POINTER", kind = "pointer",
                pk = "CLIENT_ID#{client_id}", sk = "CLIENT_ID", owner = { "tenant_id", "client_id" },
                use = "getByClientId; client ids unique across tenants",
                describe = "client_id {client_id} (client ids are unique across tenants)", whose = "tenant {tenant_id}" },
        },
        json = {
            callbacks = "array", allowed_origins = "array", web_origins = "array", client_aliases = "array",
            allowed_clients = "array", connections = "array", allowed_logout_urls = "array", grant_types = "array",
            signing_keys = "array", session_transfer = "object", oidc_logout = "object",
            jwt_configuration = "object", encryption_key = "object", addons = "object", client_metadata = "object",
            mobile = "object", native_social_login = "object", refresh_token = "object",
            default_organization = "object", client_authentication_methods = "object",
            signed_request_object = "object", token_quota = "object", registration_metadata = "object",
        },
        hidden = { tenant_id = true }, drop = { tenant_id = true },
        q = {
            fields = { client_id = S, name = S, app_type = S, owner_user_id = S, registration_type = S, global = B,
                is_first_party = B, token_endpoint_auth_method = S, organization_usage = S, created_at = S,
                updated_at = S },
            search = { { field = "name", mode = "substring" }, { field = "client_id", mode = "substring" } },
        },
        sortable = { "name", "client_id", "created_at", "updated_at" },
        parents = { { "tenants" } },
        cli = { id = "client_id" },
        describe = "client {client_id}",
    },
    {
        name = "connections", module = "connections", entity_type = "CONNECTION", scope = "tenant",
        summary = "A way to log in (database, social, enterprise); names are not unique.",
        key = { name = "connection", pk = T, sk = "CONNECTION#{id}" },
        indexes = {
            { name = "connection_name_index", index = "GSI1", pk = T .. "#CONNECTION_NAME#{name}", sk = "CONNECTION",
                use = "q name:" },
        },
        json = { options = "object", enabled_clients = "array", metadata = "object" },
        hidden = { tenant_id = true }, drop = { tenant_id = true },
        q = {
            fields = { id = S, name = S, display_name = S, strategy = S, is_system = B, is_domain_connection = B,
                show_as_button = B, created_at = S, updated_at = S },
            search = { { field = "name", mode = "substring" }, { field = "display_name", mode = "substring" },
                { field = "strategy", mode = "substring" } },
        },
        sortable = { "name", "strategy", "display_name", "created_at", "updated_at" },
        parents = { { "tenants" } },
        cli = { id = "id" },
    },
    {
        name = "codes", module = "codes", entity_type = "CODE", scope = "tenant",
        summary = "A one-time code (authorization code, OTP, reset ticket, ...); one code per id.",
        key = { name = "code", pk = T, sk = "CODE#{code_id}" },
        hidden = { tenant_id = true }, drop = { tenant_id = true },
        ttl = { from = { "expires_at" } },
        q = {
            fields = { code_id = S, code_type = S, login_id = S, user_id = S, connection_id = S, used_at = S,
                expires_at = S, created_at = S },
            search = { { field = "code_id", mode = "substring" }, { field = "login_id", mode = "substring" } },
        },
        sortable = { "created_at", "expires_at", "code_id" },
        parents = { { "tenants" } },
        cli = { id = "code_id", import = { args = { "tenant", "record" }, clock = true } },
        describe = "code {code_id}",
    },
    {
        name = "organizations", module = "organizations", entity_type = "ORGANIZATION", scope = "tenant",
        summary = "An organization (B2B customer) of a tenant; names are unique per tenant.",
        key = { name = "organization", pk = T, sk = "ORG#{id}" },
        helpers = {
            { name = "organization_name_guard", entity_type = "ORGANIZATION_NAME", kind = "guard", pk = T,
                sk = "ORG_NAME#{name}", owner = { "tenant_id", "organization_id" },
                owner_fields = { organization_id = "id" },
                use = "unique names; get by name", describe = "organization name {name}",
                whose = "organization {organization_id}" },
        },
        json = { branding = "object", metadata = "object", enabled_connections = "array", token_quota = "object" },
        hidden = { tenant_id = true },
        q = {
            fields = { id = S, name = S, display_name = S, created_at = S },
            search = { { field = "name", mode = "substring" }, { field = "display_name", mode = "substring" } },
        },
        sortable = { "name", "display_name", "created_at" },
        parents = { { "tenants" } },
        cli = { id = "id" },
    },
    {
        name = "userOrganizations", module = "user_organizations", entity_type = "USER_ORGANIZATION",
        scope = "tenant",
        summary = "Membership of a user in an organization, addressed by its own id.",
        key = { name = "member", pk = T .. "#ORG#{organization_id}", sk = "MEMBER#{user_id}" },
        indexes = {
            { name = "member_user_index", index = "GSI1", pk = T .. "#USER#{user_id}", sk = "MEMBER#{organization_id}",
                use = "q user_id:, listUserOrganizations" },
        },
        helpers = {
            { name = "member_id_pointer", entity_type = "USER_ORGANIZATION_ID", kind = "pointer", pk = T,
                sk = "MEMBER_ID#{id}", owner = { "tenant_id", "id" }, use = "get/remove by id; the tenant's list",
                describe = "membership id {id}", whose = "membership {id}" },
        },
        q = { fields = { user_id = S, organization_id = S } },
        sortable = { "created_at" },
        parents = { { "organizations", via = "item", map = { organization_id = "id" } }, { "users", via = "GSI1" } },
        cli = { id = "id" },
        owner = { "tenant_id", "id" }, whose = "membership {id}",
        describe = "membership of user {user_id} in organization {organization_id}",
    },
    {
        name = "roles", module = "roles", entity_type = "ROLE", scope = "tenant",
        summary = "A role; names are unique per tenant.",
        key = { name = "role", pk = T, sk = "ROLE#{id}" },
        helpers = {
            { name = "role_name_guard", entity_type = "ROLE_NAME", kind = "guard", pk = T, sk = "ROLE_NAME#{name}",
                owner = { "tenant_id", "role_id" }, owner_fields = { role_id = "id" }, use = "unique names",
                describe = "role name {name}", whose = "role {role_id}" },
        },
        json = { metadata = "object" },
        hidden = { tenant_id = true },
        q = {
            fields = { id = S, name = S, description = S, is_system = { type = "boolean", default = false } },
            search = { { field = "name", mode = "substring" } },
        },
        sortable = { "name", "created_at" },
        parents = { { "tenants" } },
        cli = { id = "id" },
        describe = "role {id}",
    },
    {
        name = "rolePermissions", module = "role_permissions", entity_type = "ROLE_PERMISSION", scope = "tenant",
        summary = "A permission (resource server identifier + name) granted to a role.",
        key = { name = "role_permission", pk = T .. "#ROLE#{role_id}",
            sk = "PERMISSION#{resource_server_identifier}#{permission_name}" },
        parents = { { "roles", via = "item", map = { role_id = "id" } } },
        cli = { import = { method = "assign", args = { "tenant", "@role_id", "[record]", "options" } },
            export = { under = "roles", mode = "pages", args = { "tenant", "@id", { page = "${page}", per_page = 1000 } } } },
        describe = "permission {permission_name} of {resource_server_identifier} on role {role_id}",
    },
    {
        name = "customDomains", module = "custom_domains", entity_type = "CUSTOM_DOMAIN", scope = "tenant",
        summary = "A custom domain of a tenant; a host belongs to one tenant.",
        key = { name = "custom_domain", pk = T, sk = "CUSTOM_DOMAIN#{custom_domain_id}" },
        indexes = {
            { name = "custom_domain_index", index = "GSI2", pk = "DOMAIN#{domain}", sk = "CUSTOM_DOMAIN",
                use = "tenant by custom domain (the documented lookup)" },
        },
        helpers = {
            { name = "domain_claim", entity_type = "CUSTOM_DOMAIN_CLAIM", kind = "guard", pk = "DOMAIN#{domain}",
                sk = "CLAIM", owner = { "tenant_id", "custom_domain_id" },
                use = "one tenant per host; consistent getByDomain",
                describe = "custom domain {domain} (domains are unique across tenants)", whose = "tenant {tenant_id}" },
        },
        json = { verification = "object", domain_metadata = "object" },
        hidden = { tenant_id = true, created_at = true, updated_at = true },
        parents = { { "tenants" } },
        cli = { id = "custom_domain_id", export = { mode = "all", args = { "tenant" } } },
        describe = "custom domain id {custom_domain_id}",
    },

    {
        name = "loginSessions", module = "login_sessions", entity_type = "LOGIN_SESSION", scope = "tenant",
        summary = "An authentication in progress, from /authorize until its tokens are issued.",
        key = { name = "login_session", pk = T, sk = "LOGIN_SESSION#{id}" },
        json = { authParams = "object", auth_strategy = "object" },
        hidden = { tenant_id = true }, drop = { tenant_id = true },
        ttl = { from = { "expires_at" } },
        parents = { { "tenants" } },
        cli = { id = "id", import = { args = { "tenant", "record" }, clock = true }, export = { mode = "none" } },
    },
    {
        name = "refreshTokens", module = "refresh_tokens", entity_type = "REFRESH_TOKEN", scope = "tenant",
        summary = "A refresh token (its hash, never the secret), in rotation families.",
        key = { name = "refresh_token", pk = T, sk = "REFRESH_TOKEN#{id}" },
        indexes = {
            { name = "refresh_token_user_index", index = "GSI1", pk = T .. "#USER#{user_id}", sk = "REFRESH_TOKEN#{id}",
                use = "q user_id:, user removal" },
            { name = "refresh_token_lookup_index", index = "GSI2", pk = T .. "#RT_LOOKUP#{token_lookup}",
                sk = "REFRESH_TOKEN", use = "getByLookup" },
        },
        helpers = {
            { name = "refresh_token_family_item", entity_type = "REFRESH_TOKEN_FAMILY", kind = "index",
                pk = T .. "#RT_FAMILY#{family_id}", sk = "REFRESH_TOKEN#{id}", use = "revokeFamily" },
            { name = "refresh_token_login_item", entity_type = "REFRESH_TOKEN_LOGIN", kind = "index",
                pk = T .. "#RT_LOGIN#{login_id}", sk = "REFRESH_TOKEN#{id}", use = "revokeByLoginSession" },
        },
        json = { device = "object", resource_servers = "array" },
        hidden = { tenant_id = true }, drop = { tenant_id = true },
        ttl = { from = { "expires_at", "idle_expires_at" } },
        q = {
            fields = { id = S, user_id = S, client_id = S, login_id = S, family_id = S, revoked_at = S, expires_at = S,
                idle_expires_at = S, created_at = S },
            search = { { field = "id", mode = "substring" }, { field = "login_id", mode = "exact" } },
        },
        sortable = { "created_at", "expires_at", "idle_expires_at" },
        parents = { { "tenants" }, { "users", via = "GSI1" } },
        cli = { id = "id", import = { args = { "tenant", "record" }, clock = true } },
    },
    {
        name = "keys", module = "keys", entity_type = "KEY", scope = "global",
        summary = "A signing or encryption key of a tenant, or shared by all tenants (no tenant_id).",
        key = { name = "signing_key", pk = "KEYS", sk = "KEY#{kid}" },
        q = {
            fields = { kid = S, tenant_id = S, type = S, connection = S, fingerprint = S, thumbprint = S, current = B,
                next = B, previous = B, revoked = B, current_since = S, current_until = S, revoked_at = S,
                created_at = S },
            search = { { field = "kid", mode = "substring" }, { field = "tenant_id", mode = "substring" },
                { field = "connection", mode = "substring" }, { field = "fingerprint", mode = "substring" },
                { field = "thumbprint", mode = "substring" }, { field = "type", mode = "substring" } },
        },
        sortable = { "created_at", "current_since", "kid" },
        parents = { { "tenants" } },
        cli = { id = "kid", import = { args = { "record", "options" } }, export = { mode = "pages", items = "signingKeys",
            args = { { q = "tenant_id:${tenant}", page = "${page}", per_page = 1000 } } } },
        describe = "signing key {kid}",
        owner = { "tenant_id", "kid" }, whose = "tenant {tenant_id}",
    },
    {
        name = "clientGrants", module = "client_grants", entity_type = "CLIENT_GRANT", scope = "tenant",
        summary = "What a client may ask of an API (resource server) in client-credentials grants.",
        key = { name = "client_grant", pk = T, sk = "CLIENT_GRANT#{id}" },
        indexes = {
            { name = "client_grant_client_index", index = "GSI1", pk = T .. "#CLIENT#{client_id}",
                sk = "CLIENT_GRANT#{audience}", use = "q client_id: (client-credentials grants), client removal" },
        },
        helpers = {
            { name = "client_grant_guard", entity_type = "CLIENT_GRANT_KEY", kind = "guard", pk = T,
                sk = "CLIENT_GRANT_KEY#{client_id}#{audience}", owner = { "tenant_id", "client_grant_id" },
                owner_fields = { client_grant_id = "id" }, use = "one grant per (client_id, audience)",
                describe = "client grant of {client_id} for {audience}", whose = "client grant {client_grant_id}" },
        },
        json = { scope = "array", authorization_details_types = "array" },
        hidden = { tenant_id = true },
        q = {
            fields = { id = S, client_id = S, audience = S, organization_usage = S,
                allow_any_organization = { type = "boolean", default = false },
                is_system = { type = "boolean", default = false }, subject_type = S },
            search = { { field = "client_id", mode = "substring" }, { field = "audience", mode = "substring" } },
        },
        sortable = { "created_at", "updated_at", "audience", "client_id" },
        parents = { { "tenants" }, { "clients", via = "GSI1" } },
        cli = { id = "id" },
    },
    {
        name = "resourceServers", module = "resource_servers", entity_type = "RESOURCE_SERVER", scope = "tenant",
        summary = "An API (audience) tokens are issued for; identifiers are unique per tenant.",
        key = { name = "resource_server", pk = T, sk = "RESOURCE_SERVER#{id}" },
        helpers = {
            { name = "resource_server_guard", entity_type = "RESOURCE_SERVER_IDENTIFIER", kind = "guard", pk = T,
                sk = "RESOURCE_SERVER_IDENTIFIER#{identifier}", owner = { "tenant_id", "resource_server_id" },
                owner_fields = { resource_server_id = "id" }, use = "unique identifiers",
                describe = "resource server identifier {identifier}", whose = "resource server {resource_server_id}" },
        },
        json = { scopes = "array", options = "object", metadata = "object" },
        hidden = { tenant_id = true },
        q = {
            fields = { id = S, name = { type = "string", substring = true },
                identifier = { type = "string", substring = true }, is_system = { type = "boolean", default = false } },
            search = { { field = "name", mode = "substring" }, { field = "identifier", mode = "substring" } },
        },
        sortable = { "name", "identifier", "created_at", "updated_at" },
        parents = { { "tenants" } },
        cli = { id = "id" },
    },
    {
        name = "userRoles", module = "user_roles", entity_type = "USER_ROLE", scope = "tenant",
        summary = "A role assigned to a user, globally (organization_id \"\") or in one organization.",
        key = { name = "user_role", pk = T .. "[#ORG#{organization_id}]#USER#{user_id}", sk = "USER_ROLE#{role_id}" },
        indexes = {
            { name = "user_role_user_index", index = "GSI1", pk = T .. "#USER#{user_id}",
                sk = "USER_ROLE#{organization_id?}#{role_id}", use = "a user's roles in every scope" },
            { name = "user_role_role_index", index = "GSI2", pk = T .. "#ROLE_USERS#{role_id}",
                sk = "USER#{user_id}#{organization_id?}", use = "listUsers, role removal" },
        },
        parents = { { "users", via = "GSI1" }, { "roles", via = "GSI2", map = { role_id = "id" } } },
        cli = { import = { args = { "tenant", "@user_id", "@role_id", "@organization_id", "options" } },
            export = { under = "users", mode = "all", call = "listAssignments", args = { "tenant", "@user_id" } } },
        describe = "role {role_id} of user {user_id} (organization {organization_id})",
    },
    {
        name = "userPermissions", module = "user_permissions", entity_type = "USER_PERMISSION", scope = "tenant",
        summary = "A permission granted to a user directly, globally or in one organization.",
        key = { name = "user_permission", pk = T .. "[#ORG#{organization_id}]#USER#{user_id}",
            sk = "USER_PERMISSION#{resource_server_identifier}#{permission_name}" },
        indexes = {
            { name = "user_permission_user_index", index = "GSI1", pk = T .. "#USER#{user_id}",
                sk = "USER_PERMISSION#{organization_id?}#{resource_server_identifier}#{permission_name}",
                use = "a user's permissions in every scope" },
        },
        parents = { { "users", via = "GSI1" } },
        cli = { import = { args = { "tenant", "@user_id", "record", "@organization_id", "options" } },
            export = { under = "users", mode = "all", args = { "tenant", "@user_id" } } },
        describe = "permission {permission_name} of {resource_server_identifier} for user {user_id}",
    },
    {
        name = "branding", module = "branding", entity_type = "BRANDING", scope = "tenant",
        summary = "The tenant's colours, logo and font (one item, merged on set).",
        key = { name = "branding", pk = T, sk = "BRANDING" },
        json = { colors = "object", font = "object" },
        hidden = { tenant_id = true, created_at = true, updated_at = true },
        parents = { { "tenants" } },
        cli = { import = { method = "set", args = { "tenant", "record" } },
            export = { mode = "single", call = "get", args = { "tenant" } } },
    },
    {
        name = "themes", module = "themes", entity_type = "THEME", scope = "tenant",
        summary = "A universal-login theme (borders, colours, fonts, page background, widget).",
        key = { name = "theme", pk = T, sk = "THEME#{themeId}" },
        json = { borders = "object", colors = "object", fonts = "object", page_background = "object", widget = "object" },
        hidden = { tenant_id = true },
        parents = { { "tenants" } },
        cli = { id = "themeId", import = { args = { "tenant", "record", "@themeId", "options" } }, export = { mode = "none" } },
    },
    {
        name = "hooks", module = "hooks", entity_type = "HOOK", scope = "tenant",
        summary = "A hook on a trigger: a web hook, a form, a template, hook code or a page.",
        key = { name = "hook", pk = T, sk = "HOOK#{hook_id}" },
        json = { metadata = "object" },
        hidden = { tenant_id = true },
        q = {
            fields = { hook_id = S, trigger_id = S, enabled = B, synchronous = B, priority = { type = "number" }, url = S,
                form_id = S, template_id = S, code_id = S, page_id = S },
            search = { { field = "url", mode = "substring" }, { field = "form_id", mode = "substring" },
                { field = "template_id", mode = "substring" }, { field = "code_id", mode = "substring" } },
        },
        sortable = { "priority", "created_at", "trigger_id" },
        parents = { { "tenants" } },
        cli = { id = "hook_id" },
    },
    {
        name = "logs", module = "logs", entity_type = "LOG", scope = "tenant",
        summary = "An audit log entry; kept for the retention period, listed newest first by day.",
        key = { name = "log", pk = T, sk = "LOG#{log_id}" },
        indexes = {
            { name = "log_day_index", index = "GSI1", pk = T .. "#LOG#{date:day}", sk = "{date}#{log_id}",
                use = "newest first, date ranges" },
        },
        json = { details = "object", auth0_client = "object" },
        hidden = { tenant_id = true, created_at = true, updated_at = true }, drop = { tenant_id = true },
        ttl = { from = { "date" }, retention = true },
        q = {
            fields = { log_id = S, user_id = S, ip = S, type = S, date = S, client_id = S, client_name = S,
                user_agent = S, description = { type = "string", substring = true }, user_name = S, connection = S,
                connection_id = S, audience = S, scope = S, strategy = S, strategy_type = S, hostname = S,
                country_code = S, city_name = S, latitude = S, longitude = S, time_zone = S, continent_code = S },
            search = { { field = "user_id", mode = "exact" }, { field = "ip", mode = "substring" },
                { field = "description", mode = "substring" } },
        },
        sortable = { "date" },
        parents = { { "tenants" } },
        cli = { id = "log_id", import = { args = { "tenant", "record" } } },
    },
    {
        name = "promptSettings", module = "prompt_settings", entity_type = "PROMPT_SETTING", scope = "tenant",
        summary = "The tenant's login prompt settings (identifier first, ...); defaults when absent.",
        key = { name = "prompt_settings", pk = T, sk = "PROMPT_SETTINGS" },
        hidden = { tenant_id = true, created_at = true, updated_at = true },
        parents = { { "tenants" } },
        cli = { import = { method = "set", args = { "tenant", "record" } },
            export = { mode = "single", call = "get", args = { "tenant" } } },
    },
    {
        name = "clientConnections", module = "client_connections", entity_type = "CLIENT_CONNECTION",
        scope = "tenant",
        summary = "A connection enabled for a client, in the client's display order.",
        key = { name = "client_connection", pk = T .. "#CLIENT#{client_id}",
            sk = "CLIENT_CONNECTION#{order:pad5}#{connection_id}" },
        indexes = {
            { name = "client_connection_connection_index", index = "GSI1", pk = T .. "#CONNECTION#{connection_id}",
                sk = "CLIENT_CONNECTION#{client_id}", use = "listByConnection, connection removal" },
        },
        helpers = {
            { name = "client_connection_list", entity_type = "CLIENT_CONNECTION_LIST", kind = "version",
                pk = T .. "#CLIENT#{client_id}", sk = "CLIENT_CONNECTION_LIST",
                use = "a version number every change of the client's list is conditioned on" },
        },
        parents = { { "clients" }, { "connections", via = "GSI1", map = { connection_id = "id" } } },
        cli = { import = { method = "updateByClient", args = { "tenant", "@client_id", "@connection_ids" } },
            export = { under = "clients", mode = "all", call = "listByClient", args = { "tenant", "@client_id" },
                collect = { field = "connection_ids", from = "id", base = { client_id = "@client_id" } } } },
        describe = "connection {connection_id} of client {client_id}",
    },

    -- Declared for their keys and cascades; their adapters (contract §6) are not written yet.
    {
        name = "organizationConnections", module = false, entity_type = "ORGANIZATION_CONNECTION",
        scope = "tenant",
        summary = "A connection enabled for an organization (no adapter yet).",
        key = { name = "organization_connection", pk = T .. "#ORG#{organization_id}", sk = "ORG_CONNECTION#{connection_id}" },
        parents = { { "organizations", map = { organization_id = "id" } } },
    },
    {
        name = "invites", module = false, entity_type = "INVITE", scope = "tenant",
        summary = "An invitation to join an organization (no adapter yet).",
        key = { name = "invite", pk = T, sk = "INVITE#{id}" },
        indexes = {
            { name = "invite_organization_index", index = "GSI1", pk = T .. "#ORG#{organization_id}", sk = "INVITE#{id}",
                use = "an organization's invites" },
        },
        ttl = { from = { "expires_at" } },
        parents = { { "tenants" }, { "organizations", via = "GSI1", map = { organization_id = "id" } } },
    },
}

return _M
