// The JS end of the conformance bridge: AuthHero's DataAdapters object whose methods forward to
// this library's Lua adapters in spec/conformance/worker.lua, plus the bookkeeping the suite reports
// (every call, MISSING methods, SCHEMA VIOLATIONS of returned records, Lua bugs). Method sets come
// from @authhero/adapter-interfaces' own .d.ts; nothing here implements an adapter: what Lua does
// not have is answered with a 501 and recorded as missing.
import { spawn, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";

// The adapters the contract provides (adapter-contract.md §1). Everything else AuthHero knows
// (grants, userActivity, logStreams, scim*, stats, cache, outbox, ...) stays undefined, as in a
// real deployment of this library.
export const CONTRACT_ADAPTERS = [
    "tenants", "users", "sessions", "clients", "connections", "codes", "passwords", "organizations",
    "userOrganizations", "roles", "rolePermissions", "customDomains", "loginSessions", "refreshTokens",
    "keys", "clientGrants", "resourceServers", "userRoles", "userPermissions", "branding", "themes",
    "hooks", "logs", "promptSettings", "customText", "universalLoginTemplates", "emailProviders",
    "emailTemplates", "authenticationMethods", "clientConnections", "organizationConnections",
    "invites", "forms", "flows", "hookCode", "clientRegistrationTokens", "proxyRoutes", "actions",
    "actionVersions", "actionExecutions",
];

// Attributes of the table, never of a record (contract §2.1; store.lua's BOOKKEEPING).
const BOOKKEEPING = ["PK", "SK", "GSI1PK", "GSI1SK", "GSI2PK", "GSI2SK", "entityType", "ttl", "hasLinked"];

// ------------------------------------------------------------------ adapter-interfaces' types

// Index of the matching close bracket for the open one at `open` (same kind), or -1.
function matching(text, open) {
    const pairs = { "(": ")", "{": "}", "<": ">", "[": "]" };
    const o = text[open], c = pairs[o];
    let depth = 0;
    for (let i = open; i < text.length; i++) {
        if (text[i] === o) depth++;
        else if (text[i] === c && !(c === ">" && text[i - 1] === "=")) {
            if (--depth === 0) return i;
        }
    }
    return -1;
}

// One member's signature text ("get(tenant_id: string): Promise<X>;" or "get: (...) => Promise<X>;")
// -> its return type text.
function returnType(sig) {
    let s = sig.replace(/;\s*$/, "").trim();
    const m = /^[A-Za-z_$][\w$]*\??/.exec(s);
    s = s.slice(m[0].length);
    if (s.startsWith("<")) s = s.slice(matching(s, 0) + 1);
    if (s.startsWith("(")) { // method syntax
        const close = matching(s, 0);
        return s.slice(close + 1).replace(/^\s*:\s*/, "").trim();
    }
    s = s.replace(/^\s*:\s*/, "");
    if (s.startsWith("<")) s = s.slice(matching(s, 0) + 1).trim();
    if (s.startsWith("(")) { // property holding an arrow function
        const close = matching(s, 0);
        return s.slice(close + 1).replace(/^\s*=>\s*/, "").trim();
    }
    return s.trim();
}

// The top-level members of each `interface X { ... }` of a .d.ts: name -> [{ name, optional, returns }].
function interfaces(text) {
    const out = new Map();
    const re = /^interface (\w+)(?:<[^{]*>)?(?: extends [^{]+)? \{$/gm;
    let m;
    while ((m = re.exec(text))) {
        const open = m.index + m[0].length - 1;
        const close = matching(text, open);
        const body = text.slice(open + 1, close).replace(/\/\*[\s\S]*?\*\//g, "");
        const members = [];
        let depth = 0, current = null;
        for (const line of body.split("\n")) {
            if (depth === 0 && current === null) {
                const mm = /^ {4}([A-Za-z_$][\w$]*)(\?)?(<[^>]*>)?\s*[:(]/.exec(line);
                if (mm) current = { name: mm[1], optional: !!mm[2], text: "" };
            }
            if (current) current.text += line.trim() + " ";
            for (const ch of line) {
                if (ch === "{" || ch === "(") depth++;
                else if (ch === "}" || ch === ")") depth--;
            }
            if (current && depth === 0 && /;\s*$/.test(line)) {
                members.push({ name: current.name, optional: current.optional,
                    returns: returnType(current.text.trim()) });
                current = null;
            }
        }
        out.set(m[1], members);
    }
    return out;
}

// Reads adapter-interfaces' .d.ts: { adapters: name -> { type, optional, methods: [...] },
// transaction: bool }. Methods are what the TypeScript interface of that adapter declares.
export function readAdapterTypes(dtsPath) {
    const text = readFileSync(dtsPath, "utf8");
    const ifaces = interfaces(text);
    const data = ifaces.get("DataAdapters");
    if (!data) throw new Error(`no interface DataAdapters in ${dtsPath}`);
    const adapters = {};
    for (const member of data) {
        const type = member.returns.replace(/;$/, "");
        if (!ifaces.has(type)) continue; // functions (transaction, sessionCleanup), config objects
        adapters[member.name] = { type, optional: member.optional, methods: ifaces.get(type) };
    }
    return { adapters, transaction: data.some((m) => m.name === "transaction") };
}

// ------------------------------------------------------------------ expected results

// What each method returns, checked on every result Lua sends back (one table, by
// "adapter.method"; built from adapter-interfaces' schemas by resultKinds()). Kinds:
//   one(S) a record | maybe(S) record or null | list(key, S, totals) { key: S[], ...Totals? }
//   array(S) S[] | BOOL | NUMBER | VOID (nothing: undefined; a value is passed through) | ANY
const one = (s) => ({ kind: "one", schema: s });
const maybe = (s) => ({ kind: "maybe", schema: s });
const list = (key, s, totals = true) => ({ kind: "list", key, schema: s, totals });
const array = (s) => ({ kind: "array", schema: s });
const BOOL = { kind: "boolean" }, NUMBER = { kind: "number" }, VOID = { kind: "void" }, ANY = { kind: "any" };

export function resultKinds(ai) {
    const withTenant = ai.clientSchema.extend({ tenant_id: ai.tenantSchema.shape.id });
    const textEntry = ai.customTextEntrySchema.pick({ prompt: true, language: true });
    // adapter-interfaces types UniversalLoginTemplate ({ body: string }) without a zod schema of
    // its own: the email template's `body` is the same field
    const ulTemplate = ai.emailTemplateSchema.pick({ body: true });
    return {
        "tenants.create": one(ai.tenantSchema), "tenants.get": maybe(ai.tenantSchema),
        "tenants.list": list("tenants", ai.tenantSchema, "nested"), "tenants.update": VOID,
        "tenants.remove": BOOL,
        "users.get": maybe(ai.userSchema), "users.create": one(ai.userSchema),
        "users.rawCreate": one(ai.userSchema), "users.remove": BOOL,
        "users.list": list("users", ai.userSchema), "users.update": BOOL, "users.unlink": BOOL,
        "sessions.create": one(ai.sessionSchema), "sessions.get": maybe(ai.sessionSchema),
        "sessions.list": list("sessions", ai.sessionSchema), "sessions.update": BOOL,
        "sessions.remove": BOOL,
        "clients.create": one(ai.clientSchema), "clients.get": maybe(ai.clientSchema),
        "clients.getByClientId": maybe(withTenant), "clients.remove": BOOL,
        "clients.list": list("clients", ai.clientSchema, "nested"), "clients.update": BOOL,
        "connections.create": one(ai.connectionSchema), "connections.remove": BOOL,
        "connections.get": maybe(ai.connectionSchema), "connections.update": BOOL,
        "connections.list": list("connections", ai.connectionSchema),
        "codes.create": one(ai.codeSchema), "codes.get": maybe(ai.codeSchema),
        "codes.list": list("codes", ai.codeSchema), "codes.used": BOOL, "codes.consume": BOOL,
        "codes.remove": BOOL, "codes.cleanup": NUMBER,
        "passwords.create": one(ai.passwordSchema), "passwords.update": BOOL,
        "passwords.get": maybe(ai.passwordSchema), "passwords.list": array(ai.passwordSchema),
        "organizations.create": one(ai.organizationSchema), "organizations.get": maybe(ai.organizationSchema),
        "organizations.remove": BOOL, "organizations.list": list("organizations", ai.organizationSchema),
        "organizations.update": BOOL,
        "userOrganizations.create": one(ai.userOrganizationSchema),
        "userOrganizations.get": maybe(ai.userOrganizationSchema), "userOrganizations.remove": BOOL,
        "userOrganizations.list": list("userOrganizations", ai.userOrganizationSchema),
        "userOrganizations.listUserOrganizations": list("organizations", ai.organizationSchema),
        "userOrganizations.update": BOOL,
        "roles.create": one(ai.roleSchema), "roles.get": maybe(ai.roleSchema),
        "roles.list": list("roles", ai.roleSchema), "roles.update": BOOL, "roles.remove": BOOL,
        "rolePermissions.assign": BOOL, "rolePermissions.remove": BOOL,
        "rolePermissions.list": array(ai.rolePermissionSchema),
        "customDomains.create": one(ai.customDomainSchema), "customDomains.get": maybe(ai.customDomainSchema),
        "customDomains.getByDomain": maybe(ai.customDomainWithTenantIdSchema),
        "customDomains.list": array(ai.customDomainSchema), "customDomains.remove": BOOL,
        "customDomains.update": BOOL, "customDomains.uploadCertificate": one(ai.customDomainSchema),
        "loginSessions.create": one(ai.loginSessionSchema), "loginSessions.update": BOOL,
        "loginSessions.get": maybe(ai.loginSessionSchema), "loginSessions.remove": BOOL,
        "refreshTokens.create": one(ai.refreshTokenSchema), "refreshTokens.get": maybe(ai.refreshTokenSchema),
        "refreshTokens.getByLookup": maybe(ai.refreshTokenSchema),
        "refreshTokens.list": list("refresh_tokens", ai.refreshTokenSchema), "refreshTokens.update": BOOL,
        "refreshTokens.remove": BOOL, "refreshTokens.revokeByLoginSession": NUMBER,
        "refreshTokens.revokeFamily": NUMBER,
        "keys.create": VOID, "keys.list": list("signingKeys", ai.signingKeySchema), "keys.update": BOOL,
        "clientGrants.create": one(ai.clientGrantSchema), "clientGrants.get": maybe(ai.clientGrantSchema),
        "clientGrants.list": list("client_grants", ai.clientGrantSchema), "clientGrants.update": BOOL,
        "clientGrants.remove": BOOL,
        "resourceServers.create": one(ai.resourceServerSchema),
        "resourceServers.get": maybe(ai.resourceServerSchema),
        "resourceServers.list": list("resource_servers", ai.resourceServerSchema),
        "resourceServers.update": BOOL, "resourceServers.remove": BOOL,
        "userRoles.list": array(ai.roleSchema),
        "userRoles.listUsers": list("userIds", ai.userSchema.shape.user_id),
        "userRoles.create": BOOL, "userRoles.remove": BOOL,
        "userPermissions.create": BOOL, "userPermissions.remove": BOOL,
        "userPermissions.list": array(ai.userPermissionWithDetailsSchema),
        "branding.set": VOID, "branding.get": maybe(ai.brandingSchema),
        "themes.create": one(ai.themeSchema), "themes.remove": BOOL, "themes.get": maybe(ai.themeSchema),
        "themes.update": BOOL,
        "hooks.create": one(ai.hookSchema), "hooks.remove": BOOL, "hooks.get": maybe(ai.hookSchema),
        "hooks.update": BOOL, "hooks.list": list("hooks", ai.hookSchema),
        "logs.create": one(ai.logSchema), "logs.list": list("logs", ai.logSchema),
        "logs.get": maybe(ai.logSchema),
        "promptSettings.set": VOID, "promptSettings.get": one(ai.promptSettingSchema),
        "customText.get": maybe(ai.customTextSchema), "customText.set": VOID, "customText.delete": VOID,
        "customText.list": array(textEntry),
        "universalLoginTemplates.get": maybe(ulTemplate), "universalLoginTemplates.set": VOID,
        "universalLoginTemplates.delete": VOID,
        "emailProviders.update": VOID, "emailProviders.create": VOID,
        "emailProviders.get": maybe(ai.emailProviderSchema), "emailProviders.remove": VOID,
        "emailTemplates.get": maybe(ai.emailTemplateSchema), "emailTemplates.list": array(ai.emailTemplateSchema),
        "emailTemplates.create": one(ai.emailTemplateSchema), "emailTemplates.update": BOOL,
        "emailTemplates.remove": BOOL,
        "authenticationMethods.create": one(ai.authenticationMethodSchema),
        "authenticationMethods.get": maybe(ai.authenticationMethodSchema),
        "authenticationMethods.getByCredentialId": maybe(ai.authenticationMethodSchema),
        "authenticationMethods.list": array(ai.authenticationMethodSchema),
        "authenticationMethods.update": one(ai.authenticationMethodSchema),
        "authenticationMethods.remove": BOOL,
        "clientConnections.listByClient": array(ai.connectionSchema),
        "clientConnections.updateByClient": BOOL,
        "clientConnections.listByConnection": array(ai.clientSchema.shape.client_id),
        "clientConnections.addClientToConnection": BOOL,
        "clientConnections.removeClientFromConnection": BOOL,
        "organizationConnections.create": one(ai.organizationConnectionSchema),
        "organizationConnections.list": array(ai.organizationConnectionSchema),
        "organizationConnections.get": maybe(ai.organizationConnectionSchema),
        "organizationConnections.update": maybe(ai.organizationConnectionSchema),
        "organizationConnections.remove": BOOL,
        "invites.create": one(ai.inviteSchema), "invites.get": maybe(ai.inviteSchema),
        "invites.remove": BOOL, "invites.list": list("invites", ai.inviteSchema), "invites.update": BOOL,
        "forms.create": one(ai.formSchema), "forms.get": maybe(ai.formSchema), "forms.remove": BOOL,
        "forms.update": BOOL, "forms.list": list("forms", ai.formSchema),
        "flows.create": one(ai.flowSchema), "flows.get": maybe(ai.flowSchema), "flows.remove": BOOL,
        "flows.update": maybe(ai.flowSchema), "flows.list": list("flows", ai.flowSchema),
        "hookCode.create": one(ai.hookCodeSchema), "hookCode.get": maybe(ai.hookCodeSchema),
        "hookCode.update": BOOL, "hookCode.remove": BOOL,
        "clientRegistrationTokens.create": one(ai.clientRegistrationTokenSchema),
        "clientRegistrationTokens.get": maybe(ai.clientRegistrationTokenSchema),
        "clientRegistrationTokens.getByHash": maybe(ai.clientRegistrationTokenSchema),
        "clientRegistrationTokens.listByClient": array(ai.clientRegistrationTokenSchema),
        "clientRegistrationTokens.markUsed": BOOL, "clientRegistrationTokens.revoke": BOOL,
        "clientRegistrationTokens.revokeByClient": NUMBER, "clientRegistrationTokens.remove": BOOL,
        "proxyRoutes.create": one(ai.proxyRouteSchema), "proxyRoutes.get": maybe(ai.proxyRouteSchema),
        "proxyRoutes.list": list("proxy_routes", ai.proxyRouteSchema), "proxyRoutes.update": BOOL,
        "proxyRoutes.remove": BOOL,
        "actions.create": one(ai.actionSchema), "actions.get": maybe(ai.actionSchema),
        "actions.update": BOOL, "actions.remove": BOOL, "actions.list": list("actions", ai.actionSchema),
        "actionVersions.create": one(ai.actionVersionSchema),
        "actionVersions.get": maybe(ai.actionVersionSchema),
        "actionVersions.list": list("versions", ai.actionVersionSchema),
        "actionVersions.removeForAction": NUMBER,
        "actionExecutions.create": one(ai.actionExecutionSchema),
        "actionExecutions.get": maybe(ai.actionExecutionSchema), "actionExecutions.cleanup": NUMBER,
        transaction: ANY,
    };
}

// Checks one result against its kind; returns a list of problems ({ path, message, record }).
// A record must pass the schema's safeParse and carry none of the table's own attributes.
function checkResult(kinds, totals, key, value) {
    const k = kinds[key];
    if (!k || k.kind === "any") return [];
    const problems = [];
    const fail = (path, message, record) => problems.push({ path, message, record });
    const record = (schema, v, path) => {
        if (v && typeof v === "object" && !Array.isArray(v)) {
            const leaked = BOOKKEEPING.filter((a) => a in v);
            if (leaked.length) fail(path, `table attributes in the record: ${leaked.join(", ")}`, v);
        }
        const r = schema.safeParse(v);
        if (!r.success) fail(path, issues(r.error), v);
    };
    const arrayOf = (schema, v, path) => {
        if (!Array.isArray(v)) return fail(path, `expected an array, got ${describe(v)}`, v);
        v.forEach((e, i) => record(schema, e, `${path}[${i}]`));
    };
    switch (k.kind) {
    case "boolean":
        if (typeof value !== "boolean") fail("", `expected a boolean, got ${describe(value)}`, value);
        break;
    case "number":
        if (typeof value !== "number") fail("", `expected a number, got ${describe(value)}`, value);
        break;
    case "void":
        break;
    case "one":
        record(k.schema, value, "");
        break;
    case "maybe":
        if (value !== null) record(k.schema, value, "");
        break;
    case "array":
        arrayOf(k.schema, value, "");
        break;
    case "list": {
        if (value === null || typeof value !== "object" || Array.isArray(value)) {
            fail("", `expected { ${k.key}: [...] }, got ${describe(value)}`, value);
            break;
        }
        arrayOf(k.schema, value[k.key], `.${k.key}`);
        if (k.totals === true) {
            const r = totals.safeParse(value);
            if (!r.success) fail("", `totals: ${issues(r.error)}`, omit(value, k.key));
        } else if (k.totals === "nested" && value.totals !== undefined) {
            const r = totals.safeParse(value.totals);
            if (!r.success) fail(".totals", issues(r.error), value.totals);
        }
        break;
    }
    }
    return problems;
}

function issues(error) {
    return error.issues.map((i) => `${i.path.length ? i.path.join(".") + ": " : ""}${i.message}`).join("; ");
}

function describe(v) {
    if (v === null) return "null";
    if (v === undefined) return "nothing";
    if (Array.isArray(v)) return "an array";
    if (typeof v === "object") return `an object {${Object.keys(v).slice(0, 6).join(", ")}}`;
    return `${typeof v} ${JSON.stringify(v)}`;
}

function omit(o, key) {
    const c = { ...o };
    delete c[key];
    return c;
}

function oneLineSource(f) {
    const src = String(f).replace(/\s+/g, " ");
    return src.length > 240 ? src.slice(0, 237) + "..." : src;
}

// A short picture of an argument, for the call log: strings trimmed, objects by their keys,
// functions (transaction callbacks) by the start of their source.
export function shape(v, depth = 0) {
    if (v === undefined) return "undefined";
    if (v === null) return "null";
    if (typeof v === "string") return JSON.stringify(v.length > 60 ? v.slice(0, 57) + "..." : v);
    if (typeof v === "function") return `function ${oneLineSource(v)}`;
    if (typeof v !== "object") return String(v);
    if (Array.isArray(v)) return depth > 1 ? `[${v.length}]` : `[${v.slice(0, 3).map((e) => shape(e, depth + 1)).join(", ")}${v.length > 3 ? ", ..." : ""}]`;
    if (v instanceof Date) return `Date(${v.toISOString()})`;
    const keys = Object.keys(v);
    if (depth > 1) return `{${keys.join(",")}}`;
    return `{ ${keys.map((k) => `${k}: ${shape(v[k], depth + 1)}`).join(", ")} }`;
}

// ------------------------------------------------------------------ the worker process

// One lua5.4 worker: JSON lines both ways, each request with a timeout. A worker that stops
// answering is killed and every pending call fails, so a hang cannot hang the suite.
export class Worker {
    constructor({ root, timeoutMs = 20000, startTimeoutMs = 90000, env = process.env }) {
        this.root = root;
        this.timeoutMs = timeoutMs;
        this.startTimeoutMs = startTimeoutMs;
        this.env = env;
        this.nextId = 1;
        this.pending = new Map();  // id -> { resolve, reject, timer, onCallback }
        this.stderrTail = [];
        this.dead = null;
        this.inflight = 0;
        this.idleWaiters = [];
    }

    start() {
        this.proc = spawn("lua5.4", [`${this.root}/spec/conformance/worker.lua`], {
            cwd: this.root, env: this.env, stdio: ["pipe", "pipe", "pipe"],
        });
        const ready = new Promise((resolve, reject) => {
            this.readyWait = { resolve, reject };
            const timer = setTimeout(() => {
                reject(new Error(`worker not ready after ${this.startTimeoutMs} ms`));
                this.kill("start timeout");
            }, this.startTimeoutMs);
            this.readyWait.timer = timer;
        });
        createInterface({ input: this.proc.stdout }).on("line", (line) => this.onLine(line));
        createInterface({ input: this.proc.stderr }).on("line", (line) => {
            this.stderrTail.push(line);
            if (this.stderrTail.length > 40) this.stderrTail.shift();
        });
        this.proc.stdin.on("error", () => {}); // a dead worker: the exit handler reports it
        this.exited = new Promise((resolve) => this.proc.on("exit", (code, signal) => {
            this.onExit(code, signal);
            resolve();
        }));
        return ready;
    }

    onLine(line) {
        let msg;
        try {
            msg = JSON.parse(line);
        } catch {
            this.stderrTail.push(`(stdout, not JSON) ${line}`);
            return;
        }
        if (msg.event === "ready") {
            clearTimeout(this.readyWait.timer);
            this.info = msg;
            this.readyWait.resolve(msg);
            return;
        }
        const p = this.pending.get(msg.id);
        if (!p) return;
        if (msg.event === "callback") { // a transaction's callback is to run in JS
            clearTimeout(p.timer);      // the callback's own calls carry their own timeouts
            p.trx = msg.trx;
            p.onCallback(msg.trx);
            return;
        }
        this.pending.delete(msg.id);
        clearTimeout(p.timer);
        this.settle();
        p.resolve(msg);
    }

    onExit(code, signal) {
        this.dead = `worker exited (${signal ?? `code ${code}`})`;
        if ((signal || code !== 0) && this.info?.state) {
            // killed or crashed before stopping its DynamoDB Local: stop it now
            spawnSync(`${this.root}/scripts/dynamodb-local`, ["stop", "--state", this.info.state],
                { stdio: "ignore", timeout: 20000 });
        }
        if (this.readyWait) {
            clearTimeout(this.readyWait.timer);
            this.readyWait.reject(new Error(`${this.dead} before it was ready:\n${this.stderrTail.join("\n")}`));
        }
        for (const [, p] of this.pending) {
            clearTimeout(p.timer);
            p.reject(new Error(this.dead));
        }
        this.pending.clear();
        this.inflight = 0;
        this.settle();
    }

    settle() {
        if (this.inflight > 0) this.inflight--;
        if (this.inflight === 0) for (const w of this.idleWaiters.splice(0)) w();
    }

    // request(msg[, onCallback]) -> the reply; rejects on timeout or a dead worker.
    request(msg, onCallback) {
        if (this.dead) return Promise.reject(new Error(this.dead));
        const id = this.nextId++;
        this.inflight++;
        return new Promise((resolve, reject) => {
            const p = { resolve, reject, onCallback, what: `${msg.op} ${msg.adapter ?? ""}.${msg.method ?? ""}` };
            this.pending.set(id, p);
            this.arm(id, p);
            this.proc.stdin.write(JSON.stringify({ ...msg, id }) + "\n");
        });
    }

    arm(id, p) {
        p.timer = setTimeout(() => {
            this.pending.delete(id);
            p.reject(new Error(`worker did not answer ${p.what} within ${this.timeoutMs} ms`));
            this.kill("request timeout");
        }, this.timeoutMs);
    }

    // A message that is no request; a transaction's callback_done re-arms that call's timeout.
    send(msg) {
        if (this.dead) return;
        if (msg.op === "callback_done") {
            for (const [id, p] of this.pending) if (p.trx === msg.trx) this.arm(id, p);
        }
        this.proc.stdin.write(JSON.stringify(msg) + "\n");
    }

    // Resolves once no call is waiting for the worker (background work of AuthHero included).
    idle(timeoutMs = 10000) {
        if (this.inflight === 0) return Promise.resolve(true);
        return new Promise((resolve) => {
            const timer = setTimeout(() => resolve(false), timeoutMs);
            this.idleWaiters.push(() => { clearTimeout(timer); resolve(true); });
        });
    }

    async stats() {
        const r = await this.request({ op: "stats" });
        return r.result;
    }

    async describe() {
        const r = await this.request({ op: "describe" });
        return r.result;
    }

    // Which adapter set serves the calls from now on: "plain" or "cached" (worker.lua) -> { set, previous }.
    async use(set) {
        const r = await this.request({ op: "use", set });
        if (r.ok === false) throw new Error(`worker: use ${set}: ${r.bug}`);
        return r.result;
    }

    // The configuration cache's counters (hits, misses, loads, ...) and the set in use.
    async cacheStats() {
        const r = await this.request({ op: "cache_stats" });
        return r.result;
    }

    kill(why) {
        if (this.proc && this.proc.exitCode === null && this.proc.signalCode === null) {
            this.stderrTail.push(`(killed: ${why})`);
            this.proc.kill("SIGKILL");
        }
    }

    // Ends the worker: closing stdin makes it drop its table and stop DynamoDB Local.
    async stop(graceMs = 15000) {
        if (!this.proc || this.proc.exitCode !== null || this.proc.signalCode !== null) return;
        this.proc.stdin.end();
        const timer = setTimeout(() => this.kill("stop timeout"), graceMs);
        await this.exited;
        clearTimeout(timer);
    }
}

// ------------------------------------------------------------------ the recorder

export class Recorder {
    constructor() {
        this.phase = "setup";
        this.calls = new Map();       // "adapter.method" -> { count, phases: Map, samples: Set, inTrx }
        this.missing = new Map();     // "adapter.method" -> count
        this.violations = [];         // { method, phase, path, message, record }
        this.bugs = [];               // { method, phase, message }
        this.seenViolation = new Set();
        this.tallies = new Set();     // open tallies (openTally)
    }

    // A tally of the calls made while it is open: "adapter.method" -> { count, requests, rcu, wcu }
    // (requests and capacity from the worker's reply.cost; a transaction's are those of the calls
    // its callback made, counted again). closeTally(t) stops it.
    openTally() {
        const t = new Map();
        this.tallies.add(t);
        return t;
    }

    closeTally(t) {
        this.tallies.delete(t);
    }

    call(key, args, scoped) {
        for (const t of this.tallies) {
            const e = t.get(key) ?? { count: 0, requests: 0, rcu: 0, wcu: 0 };
            e.count++;
            t.set(key, e);
        }
        let c = this.calls.get(key);
        if (!c) this.calls.set(key, c = { count: 0, phases: new Map(), samples: new Set(), inTrx: 0 });
        c.count++;
        c.phases.set(this.phase, (c.phases.get(this.phase) ?? 0) + 1);
        if (scoped) c.inTrx++;
        if (c.samples.size < 6) c.samples.add(`(${args.map((a) => shape(a)).join(", ")})`);
    }

    // What DynamoDB one call of `key` cost (the worker's reply.cost), summed per method.
    cost(key, cost) {
        for (const t of this.tallies) {
            const e = t.get(key);
            if (!e || !cost) continue;
            e.requests += cost.requests ?? 0;
            e.rcu += cost.rcu ?? 0;
            e.wcu += cost.wcu ?? 0;
        }
        const c = this.calls.get(key);
        if (!c || !cost) return;
        c.requests = (c.requests ?? 0) + (cost.requests ?? 0);
        c.rcu = (c.rcu ?? 0) + (cost.rcu ?? 0);
        c.wcu = (c.wcu ?? 0) + (cost.wcu ?? 0);
        c.costed = (c.costed ?? 0) + 1;
    }

    // A structured error the Lua adapter raised (its status), counted per method.
    error(key, status) {
        const c = this.calls.get(key);
        if (!c) return;
        c.errors ??= new Map();
        c.errors.set(status, (c.errors.get(status) ?? 0) + 1);
    }

    miss(key) {
        this.missing.set(key, (this.missing.get(key) ?? 0) + 1);
    }

    violation(key, p) {
        const sig = `${key}|${p.path}|${p.message}`;
        if (this.seenViolation.has(sig)) return; // the same defect once, not once per call
        this.seenViolation.add(sig);
        this.violations.push({ method: key, phase: this.phase, ...p });
    }

    bug(key, message) {
        const first = String(message).split("\n")[0];
        const same = this.bugs.find((b) => b.method === key && b.first === first);
        if (same) same.count++;
        else this.bugs.push({ method: key, phase: this.phase, first, message, count: 1 });
    }
}

// ------------------------------------------------------------------ the DataAdapters object

// The JS argument list -> { args, n, undef } (undefined positions listed, sent as null).
function encodeArgs(args) {
    const undef = [];
    const out = args.map((a, i) => {
        if (a === undefined) { undef.push(i); return null; }
        return a;
    });
    return { args: out, n: args.length, undef };
}

// createDataAdapters({ worker, types, describe, kinds, totals, recorder, HTTPException }) ->
// DataAdapters. types: readAdapterTypes(); describe: the worker's inventory (decides only whether
// an OPTIONAL method such as customDomains.uploadCertificate exists, as it would in a real
// deployment); kinds: resultKinds(); totals: adapter-interfaces' totalsSchema.
export function createDataAdapters({ worker, types, describe, kinds, totals, recorder, HTTPException }) {
    const toError = (e) => {
        const err = new HTTPException(e.status >= 400 && e.status <= 599 ? e.status : 500, { message: e.message });
        err.code = e.code;
        return err;
    };
    const voidMethods = new Set();
    for (const [name, a] of Object.entries(types.adapters)) {
        for (const m of a.methods) if (/^Promise<void>$/.test(m.returns)) voidMethods.add(`${name}.${m.name}`);
    }

    async function forward(scope, adapter, method, args) {
        const key = `${adapter}.${method}`;
        recorder.call(key, args, scope !== undefined);
        const reply = await worker.request({ op: "call", adapter, method, ...encodeArgs(args), scope });
        recorder.cost(key, reply.cost);
        if (reply.missing) {
            recorder.miss(key);
            throw new HTTPException(501, { message: `MISSING: ${key} is not implemented by the Lua adapters` });
        }
        if (reply.ok === false) {
            if (reply.error) {
                recorder.error(key, reply.error.status);
                throw toError(reply.error);
            }
            recorder.bug(key, reply.bug);
            throw new Error(`Lua error in ${key}: ${reply.bug}`);
        }
        let result = "result" in reply ? reply.result : null;
        if (result === null && voidMethods.has(key)) result = undefined;
        for (const p of checkResult(kinds, totals, key, result === undefined ? null : result)) recorder.violation(key, p);
        return result;
    }

    async function transaction(scope, fn) {
        recorder.call("transaction", [fn], scope !== undefined);
        let jsResult, jsError, failed = false;
        const reply = await worker.request({ op: "transaction", scope }, (trx) => {
            Promise.resolve()
                .then(() => fn(build(trx)))
                .then((r) => {
                    jsResult = r;
                    worker.send({ op: "callback_done", trx, ok: true, result: { $js: trx } });
                }, (e) => {
                    failed = true;
                    jsError = e;
                    worker.send({ op: "callback_done", trx, ok: false, error: {
                        status: typeof e?.status === "number" ? e.status : 500,
                        code: "JsCallbackError", message: String(e?.message ?? e) } });
                });
        });
        recorder.cost("transaction", reply.cost);
        if (reply.missing) {
            recorder.miss("transaction");
            throw new HTTPException(501, { message: "MISSING: transaction is not implemented by the Lua adapters" });
        }
        if (reply.ok === false) {
            if (failed && reply.error?.code === "JsCallbackError") throw jsError; // AuthHero's own error
            if (reply.error) throw toError(reply.error);
            recorder.bug("transaction", reply.bug);
            throw new Error(`Lua error in transaction: ${reply.bug}`);
        }
        const r = reply.result;
        return r && typeof r === "object" && "$js" in r ? jsResult : r;
    }

    // One forwarding object; `scope` is a transaction id inside transaction callbacks.
    function build(scope) {
        const data = {};
        for (const name of CONTRACT_ADAPTERS) {
            const t = types.adapters[name];
            if (!t) throw new Error(`adapter-interfaces declares no adapter "${name}"`);
            const have = new Set(describe.adapters?.[name] ?? []);
            const obj = {};
            for (const m of t.methods) {
                if (m.optional && !have.has(m.name)) continue;
                obj[m.name] = (...args) => forward(scope, name, m.name, args);
            }
            data[name] = obj;
        }
        if (types.transaction) data.transaction = (fn) => transaction(scope, fn);
        return data;
    }
    return build(undefined);
}
