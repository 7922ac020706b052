// The conformance suite: AuthHero's own server (authhero 9.6.1) on this library's Lua adapters
// (bridge.mjs -> worker.lua -> DynamoDB Local), driven through AuthHero's public routes: seed, the
// management API, a password login through the server-rendered universal login. Prints one line
// per check, then MISSING methods, SCHEMA VIOLATIONS, Lua errors and each flow's DynamoDB cost.
// Run by scripts/conformance, which installs the pinned packages into .deps/conformance:
//
//   node spec/conformance/run.mjs [--deps DIR] [--stats FILE] [--pids FILE] [--verbose]
//
// --stats FILE gets "passed failed"; every missing method and every violation counts as a failed
// check. --pids FILE gets the worker's pid and DynamoDB Local's state folder (two lines), so
// scripts/conformance can stop both should this process be killed. Exit status 0 only when
// nothing failed.
import { createHash, randomBytes } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { Browser, readForm } from "./browser.mjs";
import { CONTRACT_ADAPTERS, Recorder, Worker, createDataAdapters, readAdapterTypes, resultKinds } from "./bridge.mjs";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const opts = { deps: join(ROOT, ".deps/conformance"), stats: null, pids: null, verbose: false };
for (let i = 2; i < process.argv.length; i++) {
    const a = process.argv[i];
    if (a === "--deps") opts.deps = resolve(process.argv[++i]);
    else if (a === "--stats") opts.stats = resolve(process.argv[++i]);
    else if (a === "--pids") opts.pids = resolve(process.argv[++i]);
    else if (a === "--verbose") opts.verbose = true;
    else {
        process.stderr.write(`usage: node spec/conformance/run.mjs [--deps DIR] [--stats FILE] [--pids FILE] [--verbose]\n`);
        process.exit(2);
    }
}

const DEADLINE_MS = Number(process.env.CONFORMANCE_DEADLINE_MS ?? 170000); // the whole run
const FLOW_MS = Number(process.env.CONFORMANCE_FLOW_MS ?? 60000);          // one flow
const ORIGIN = "http://localhost:3000";
const CALLBACK = `${ORIGIN}/auth-callback`;
const TENANT = "conformance";
const ADMIN = { username: "admin", email: "admin@conformance.example", password: `Pw-${randomBytes(9).toString("base64url")}` };
const MGMT_AUDIENCE = "urn:authhero:management";
const PASSWORD_CONNECTION = "Username-Password-Authentication";

// ------------------------------------------------------------------ output and checks

const out = (s = "") => process.stdout.write(s + "\n");
let passed = 0, failed = 0;
function check(name, ok, detail) {
    if (ok) {
        passed++;
        out(`ok - ${name}`);
    } else {
        failed++;
        out(`not ok - ${name}${detail ? `  (${oneLine(detail)})` : ""}`);
    }
    return !!ok;
}
const oneLine = (s) => String(s).replace(/\s+/g, " ").slice(0, 400);
const brief = (r) => r ? `HTTP ${r.status}${r.location ? ` -> ${r.location}` : ""}: ${oneLine(r.text ?? "").slice(0, 240)}` : "no response";

// AuthHero's console output (and any promise it leaves rejected) is kept, deduplicated, and shown
// compactly at the end.
const authheroLog = new Map();
for (const level of ["log", "info", "warn", "error", "debug"]) {
    console[level] = (...args) => {
        const text = args.map((a) => (a instanceof Error ? `${a.name}: ${a.message}` : typeof a === "string" ? a : JSON.stringify(a))).join(" ");
        const key = `${level}: ${oneLine(text).slice(0, 200)}`;
        authheroLog.set(key, (authheroLog.get(key) ?? 0) + 1);
    };
}
process.on("unhandledRejection", (e) => console.error("unhandled rejection:", e));

// ------------------------------------------------------------------ packages

// An installed package's ESM entry (its exports' "import"), for import() from outside node_modules.
function esmEntry(pkgDir, subpath = ".") {
    const pkg = JSON.parse(readFileSync(join(pkgDir, "package.json"), "utf8"));
    let e = pkg.exports?.[subpath];
    if (typeof e === "object" && e !== null) e = e.import ?? e.default;
    if (typeof e === "object" && e !== null) e = e.default;
    if (!e && subpath === ".") e = pkg.module ?? pkg.main;
    if (!e) throw new Error(`${pkgDir}: no ESM entry for ${subpath}`);
    return pathToFileURL(join(pkgDir, e)).href;
}

// The directory of package `name` as seen from `fromDir` (node's lookup: node_modules upwards).
function packageDir(name, fromDir) {
    for (let d = fromDir; ; d = dirname(d)) {
        const p = join(d, "node_modules", name);
        if (existsSync(join(p, "package.json"))) return p;
        if (dirname(d) === d) throw new Error(`package ${name} not found from ${fromDir}`);
    }
}

// ------------------------------------------------------------------ the run

const recorder = new Recorder();
const costs = [];
let inventory = null; // { types, describe }: what adapter-interfaces declares, what Lua has
let worker;
let finished = false;

async function finish(code) {
    if (finished) return;
    finished = true;
    if (worker) await worker.stop().catch(() => {});
    if (opts.stats) writeFileSync(opts.stats, `${passed} ${failed}\n`);
    process.exitCode = code;
}

async function withTimeout(ms, what, promise) {
    let timer;
    try {
        return await Promise.race([promise, new Promise((_, reject) => {
            timer = setTimeout(() => reject(new Error(`${what}: not finished within ${ms} ms`)), ms);
        })]);
    } finally {
        clearTimeout(timer);
    }
}

// A flow: its checks, then what DynamoDB it cost (the worker's client.stats, before and after,
// once AuthHero's background writes have settled).
async function flow(name, body) {
    out(`# ${name}`);
    recorder.phase = name;
    let before = null;
    try {
        before = await worker.stats();
    } catch (e) {
        check(`${name}: the worker answers`, false, e.message);
        return;
    }
    try {
        await withTimeout(FLOW_MS, name, body());
    } catch (e) {
        check(`${name}: ran to its end`, false, e?.stack ?? e);
    }
    await worker.idle(10000);
    try {
        const after = await worker.stats();
        costs.push({ name, requests: after.requests - before.requests, retries: after.retries - before.retries,
            rcu: after.read_capacity - before.read_capacity, wcu: after.write_capacity - before.write_capacity });
    } catch (e) {
        costs.push({ name, error: e.message });
    }
}

async function main() {
    const deadline = setTimeout(async () => {
        check(`the whole run finished within ${DEADLINE_MS / 1000} s`, false, "deadline");
        summary();
        await finish(1);
        process.exit(1);
    }, DEADLINE_MS);
    for (const sig of ["SIGINT", "SIGTERM"]) {
        process.on(sig, async () => {
            check("the run was not interrupted", false, sig);
            await finish(1);
            process.exit(1);
        });
    }

    // AuthHero and adapter-interfaces, installed by scripts/conformance
    const modules = join(opts.deps, "node_modules");
    const authheroDir = join(modules, "authhero");
    const aiDir = join(modules, "@authhero/adapter-interfaces");
    if (!check("AuthHero is installed (scripts/conformance installs it)", existsSync(authheroDir) && existsSync(aiDir), opts.deps)) {
        return;
    }
    const authhero = await import(esmEntry(authheroDir));
    const ai = await import(esmEntry(aiDir));
    // Lua's error objects become the HTTPException of the hono AuthHero resolves (its peer
    // dependency). authhero 9.6.1 bundles a private copy of that class (not exported), so its
    // `instanceof` checks do not match ours: the management API's error handler duck-types
    // (status + getResponse) and answers with our status and message; the top-level and /u
    // handlers answer 500 for it.
    const honoDir = packageDir("hono", authheroDir);
    const { HTTPException } = await import(esmEntry(honoDir, "./http-exception"));
    const pkgVersion = (dir) => JSON.parse(readFileSync(join(dir, "package.json"), "utf8")).version;
    out(`# authhero ${pkgVersion(authheroDir)}, @authhero/adapter-interfaces ${pkgVersion(aiDir)}, hono ${pkgVersion(honoDir)}`);

    const types = readAdapterTypes(join(aiDir, "dist/adapter-interfaces.d.ts"));
    const kinds = resultKinds(ai);
    const undeclared = CONTRACT_ADAPTERS.filter((n) => !(types.adapters[n]?.methods.length > 0));
    check("adapter-interfaces declares every adapter of the contract", undeclared.length === 0, undeclared.join(", "));
    const unmapped = [];
    for (const n of CONTRACT_ADAPTERS) for (const m of types.adapters[n]?.methods ?? []) if (!kinds[`${n}.${m.name}`]) unmapped.push(`${n}.${m.name}`);
    check("every declared method has an expected result (bridge.mjs resultKinds)", unmapped.length === 0, unmapped.join(", "));

    worker = new Worker({ root: ROOT });
    const pids = (state = "") => opts.pids && writeFileSync(opts.pids, `${worker.proc.pid}\n${state}\n`);
    try {
        const starting = worker.start();
        pids();
        const info = await starting;
        pids(info.state ?? "");
        check("the Lua worker started (DynamoDB Local, table created)", true);
        out(`# DynamoDB at ${info.endpoint}, table ${info.table}`);
    } catch (e) {
        check("the Lua worker started (DynamoDB Local, table created)", false, e.message);
        return;
    }
    const describe = await worker.describe();
    inventory = { types, describe };
    const data = createDataAdapters({ worker, types, describe, kinds, totals: ai.totalsSchema, recorder, HTTPException });

    const { app } = authhero.init({ dataAdapter: data, allowedOrigins: [ORIGIN] });
    const env = {
        ISSUER: `${ORIGIN}/`, AUTH_URL: ORIGIN, ENVIRONMENT: "test", JWKS_CACHE_TIMEOUT_IN_SECONDS: 0,
        ORGANIZATION_NAME: "conformance",
    };
    const api = new Browser({ app, env, origin: ORIGIN });
    const ctx = {};

    await flow("seed", () => seedFlow(authhero, data, ctx));
    await flow("management API", () => managementFlow(api, data, ctx));
    await flow("password login", () => loginFlow(new Browser({ app, env, origin: ORIGIN }), ctx));
    clearTimeout(deadline);
}

// ------------------------------------------------------------------ flow 1: seed

async function seedFlow(authhero, data, ctx) {
    let seeded;
    try {
        seeded = await authhero.seed(data, {
            adminUsername: ADMIN.username, adminEmail: ADMIN.email, adminPassword: ADMIN.password,
            tenantId: TENANT, tenantName: "Conformance", callbacks: [CALLBACK], allowedLogoutUrls: [ORIGIN],
            debug: false,
        });
    } catch (e) {
        check("seed() completes", false, e?.message ?? e);
        return;
    }
    check("seed() completes", seeded?.tenantId === TENANT && !!seeded.userId, JSON.stringify(seeded));
    ctx.seed = seeded;
    // The seeded client asks for universal login v2 (@authhero/widget), which is not installed:
    // switch it to the server-rendered v1 pages.
    const updated = await data.clients.update(TENANT, seeded.clientId, { client_metadata: { universal_login_version: "1" } });
    check("the seeded client switches to universal login v1 (clients.update)", updated === true, updated);
    const client = await data.clients.get(TENANT, seeded.clientId);
    check("the seeded client reads back with universal_login_version 1",
        client?.client_metadata?.universal_login_version === "1", JSON.stringify(client?.client_metadata));
}

// ------------------------------------------------------------------ flow 2: management API

async function managementFlow(api, data, ctx) {
    // The management client seed provisions ("API Explorer Application", client_credentials,
    // granted the management API): read it from storage, as an operator would.
    let m2m;
    try {
        const { clients } = await data.clients.list(TENANT, {});
        m2m = clients.find((c) => c.app_type === "non_interactive" && (c.grant_types ?? []).includes("client_credentials"));
    } catch (e) {
        check("the seeded management client is listed", false, e.message);
        return;
    }
    if (!check("the seeded management client is listed", !!m2m, "no non_interactive client with client_credentials")) return;

    let r = await api.request("POST", "/oauth/token", { form: {
        grant_type: "client_credentials", client_id: m2m.client_id, client_secret: m2m.client_secret, audience: MGMT_AUDIENCE,
    } });
    const token = r.json?.access_token;
    if (!check("POST /oauth/token (client_credentials, management audience) -> 200 with an access token",
        r.status === 200 && typeof token === "string" && r.json?.token_type?.toLowerCase() === "bearer", brief(r))) return;
    const headers = { authorization: `Bearer ${token}`, "tenant-id": TENANT };

    // Session lifetimes (hours), so the login flow's sessions and refresh tokens get expiries
    // (TTL) and a refresh-token exchange extends them (refreshTokens.update's loginSessionBump).
    r = await api.request("PATCH", "/api/v2/tenants/settings", { json: { session_lifetime: 72, idle_session_lifetime: 24 }, headers });
    check("PATCH /api/v2/tenants/settings (session lifetimes) -> 200",
        r.status === 200 && r.json?.session_lifetime === 72 && r.json?.idle_session_lifetime === 24, brief(r));

    const email = `mgmt-${randomBytes(4).toString("hex")}@conformance.example`;
    const body = { email, password: `Pw-${randomBytes(9).toString("base64url")}`, connection: PASSWORD_CONNECTION, name: "Conformance User" };
    r = await api.request("POST", "/api/v2/users", { json: body, headers });
    const userId = r.json?.user_id;
    if (!check("POST /api/v2/users with a password -> 201", r.status === 201 && typeof userId === "string" && r.json?.email === email, brief(r))) return;
    check("the created user has an identity on the password connection",
        Array.isArray(r.json?.identities) && r.json.identities.some((i) => i.connection === PASSWORD_CONNECTION), brief(r));

    r = await api.request("GET", `/api/v2/users/${encodeURIComponent(userId)}`, { headers });
    check("GET /api/v2/users/{id} -> 200 with the user", r.status === 200 && r.json?.user_id === userId && r.json?.email === email, brief(r));

    r = await api.request("GET", `/api/v2/users?${new URLSearchParams({ q: `email:${email}`, include_totals: "true", per_page: "10", page: "0" })}`, { headers });
    check("GET /api/v2/users?q=email:...&include_totals=true -> 200 with that one user",
        r.status === 200 && Array.isArray(r.json?.users) && r.json.users.length === 1 && r.json.users[0].user_id === userId, brief(r));
    // AuthHero's answer copies the adapter's `length` (with include_totals: the total, contract
    // §3.2) and has no `total` of its own
    check("... and the reported total (length) is 1", r.json?.length === 1 && (r.json?.total ?? 1) === 1,
        `length=${JSON.stringify(r.json?.length)}, total=${JSON.stringify(r.json?.total)}`);

    r = await api.request("PATCH", `/api/v2/users/${encodeURIComponent(userId)}`, { json: { name: "Patched Name", user_metadata: { colour: "green" } }, headers });
    check("PATCH /api/v2/users/{id} -> 200 with the change", r.status === 200 && r.json?.name === "Patched Name", brief(r));
    r = await api.request("GET", `/api/v2/users/${encodeURIComponent(userId)}`, { headers });
    check("... and GET shows the patched name and metadata",
        r.status === 200 && r.json?.name === "Patched Name" && r.json?.user_metadata?.colour === "green", brief(r));

    r = await api.request("POST", "/api/v2/users", { json: body, headers });
    check("POST /api/v2/users with a taken email -> 409", r.status === 409, brief(r));

    r = await api.request("DELETE", `/api/v2/users/${encodeURIComponent(userId)}`, { headers });
    check("DELETE /api/v2/users/{id} -> 200/204", r.status === 200 || r.status === 204, brief(r));
    r = await api.request("GET", `/api/v2/users/${encodeURIComponent(userId)}`, { headers });
    check("... and GET afterwards -> 404", r.status === 404, brief(r));
}

// ------------------------------------------------------------------ flow 3: password login

async function loginFlow(browser, ctx) {
    const seeded = ctx.seed;
    if (!check("the seeded client and admin user exist (from the seed flow)", !!seeded, "seed failed")) return;
    const verifier = randomBytes(32).toString("base64url");
    const challenge = createHash("sha256").update(verifier).digest("base64url");
    const state = randomBytes(8).toString("hex"), nonce = randomBytes(8).toString("hex");
    const authorize = `/authorize?${new URLSearchParams({
        client_id: seeded.clientId, response_type: "code", redirect_uri: CALLBACK, state, nonce,
        scope: "openid profile email offline_access", code_challenge: challenge, code_challenge_method: "S256",
    })}`;
    let r = await browser.request("GET", authorize);
    if (!check("GET /authorize -> 302 to the universal login (/u/...)",
        r.status === 302 && r.location?.startsWith(`${ORIGIN}/u/`), brief(r))) return;

    // Walk the v1 pages: fill identifier and password fields, follow redirects, until AuthHero
    // redirects to the client's callback.
    let callback = null;
    for (let step = 0; step < 12 && !callback; step++) {
        if (r.status >= 300 && r.status < 400 && r.location) {
            if (r.location.startsWith(CALLBACK)) {
                callback = new URL(r.location);
                break;
            }
            const page = new URL(r.location).pathname;
            r = await browser.request("GET", r.location);
            if (!check(`GET ${page} -> 200 or a redirect`, r.status === 200 || (r.status >= 300 && r.status < 400), brief(r))) return;
            continue;
        }
        const form = r.status === 200 ? readForm(r.text, r.url) : null;
        const page = new URL(r.url).pathname;
        if (!check(`${page} shows a form`, !!form, brief(r))) return;
        const fields = { ...form.fields };
        let what = [];
        if ("username" in fields) { fields.username = ADMIN.email; what.push("username"); }
        if ("password" in fields) { fields.password = ADMIN.password; what.push("password"); }
        if (!check(`${page} asks for the identifier or the password`, what.length > 0, `fields: ${Object.keys(fields).join(", ")}`)) return;
        r = await browser.request(form.method, form.action, { form: fields });
        if (!check(`POST ${page} (${what.join(" + ")}) -> a redirect`, r.status >= 300 && r.status < 400, brief(r))) return;
    }
    if (!check("the login ends at the client's callback", !!callback, brief(r))) return;
    const code = callback.searchParams.get("code");
    check("the callback carries a code and our state", !!code && callback.searchParams.get("state") === state, callback.toString());
    if (!code) return;

    r = await browser.request("POST", "/oauth/token", { form: {
        grant_type: "authorization_code", code, redirect_uri: CALLBACK, client_id: seeded.clientId,
        client_secret: seeded.clientSecret, code_verifier: verifier,
    } });
    const tokens = r.json ?? {};
    if (!check("POST /oauth/token (authorization_code + PKCE) -> 200 with access, id and refresh tokens",
        r.status === 200 && typeof tokens.access_token === "string" && typeof tokens.id_token === "string" &&
        typeof tokens.refresh_token === "string", brief(r))) return;
    const idClaims = JSON.parse(Buffer.from(tokens.id_token.split(".")[1] ?? "", "base64url").toString() || "{}");
    check("the id token names the admin user and carries our nonce",
        idClaims.sub === seeded.userId && idClaims.nonce === nonce, JSON.stringify(idClaims));

    r = await browser.request("POST", "/oauth/token", { form: {
        grant_type: "refresh_token", refresh_token: tokens.refresh_token, client_id: seeded.clientId,
        client_secret: seeded.clientSecret,
    } });
    check("POST /oauth/token (refresh_token) -> 200 with a new access token",
        r.status === 200 && typeof r.json?.access_token === "string", brief(r));
    const access = r.json?.access_token ?? tokens.access_token;

    r = await browser.request("GET", "/userinfo", { headers: { authorization: `Bearer ${access}` } });
    check("GET /userinfo -> 200 with the user's email", r.status === 200 && r.json?.email === ADMIN.email && r.json?.sub === seeded.userId, brief(r));

    r = await browser.request("GET", `/v2/logout?${new URLSearchParams({ client_id: seeded.clientId, returnTo: ORIGIN })}`);
    check("GET /v2/logout -> 302 to returnTo", r.status === 302 && r.location?.startsWith(ORIGIN) && !r.location.includes("/u/"), brief(r));
}

// ------------------------------------------------------------------ summary

function summary() {
    out("");
    const missingCalls = [...recorder.missing.values()].reduce((a, b) => a + b, 0);
    out(`# MISSING: ${recorder.missing.size} methods (${missingCalls} calls)`);
    for (const [k, n] of [...recorder.missing].sort()) {
        out(`#   ${k.padEnd(44)} x${n}`);
        failed++;
    }
    out(`# SCHEMA VIOLATIONS: ${recorder.violations.length}`);
    for (const v of recorder.violations) {
        out(`#   ${v.method}${v.path} [${v.phase}]: ${v.message}`);
        out(`#     record: ${oneLine(JSON.stringify(v.record) ?? "undefined").slice(0, 300)}`);
        failed++;
    }
    if (recorder.bugs.length) {
        out(`# LUA ERRORS (plain-string raises): ${recorder.bugs.length}`);
        for (const b of recorder.bugs) {
            out(`#   ${b.method} [${b.phase}]${b.count > 1 ? ` x${b.count}` : ""}: ${oneLine(b.first).slice(0, 300)}`);
            if (opts.verbose) for (const l of b.message.split("\n").slice(1, 12)) out(`#       ${l.trim()}`);
            failed++;
        }
    }
    if (inventory) {
        // information, not failures: only what AuthHero actually called counts (MISSING above)
        const lines = [];
        for (const name of CONTRACT_ADAPTERS) {
            const declared = inventory.types.adapters[name]?.methods ?? [];
            const have = new Set(inventory.describe.adapters?.[name] ?? []);
            const lacking = declared.filter((m) => !m.optional && !have.has(m.name)).map((m) => m.name);
            if (lacking.length) lines.push(`${name}${have.size ? "" : " (no adapter)"}: ${lacking.join(" ")}`);
        }
        if (!inventory.describe.transaction) lines.push("transaction (no function)");
        out(`# NOT IN LUA YET (declared by adapter-interfaces; information only): ${lines.length} adapters`);
        for (const l of lines) out(`#   ${l}`);
    }
    out("# COST per flow (DynamoDB requests, consumed capacity)");
    for (const c of costs) {
        out(c.error ? `#   ${c.name}: unknown (${c.error})`
            : `#   ${c.name.padEnd(16)} ${String(c.requests).padStart(4)} requests, ${c.rcu.toFixed(1)} RCU, ${c.wcu.toFixed(1)} WCU, ${c.retries} retries`);
    }
    out(`# CALLS: ${recorder.calls.size} adapter methods called`);
    for (const [k, c] of [...recorder.calls].sort()) {
        const phases = [...c.phases].map(([p, n]) => `${p} ${n}`).join(", ");
        out(`#   ${k.padEnd(44)} x${String(c.count).padEnd(4)} ${phases}${c.inTrx ? `, ${c.inTrx} in a transaction` : ""}`);
        if (opts.verbose) for (const s of c.samples) out(`#       ${oneLine(s).slice(0, 300)}`);
    }
    if (authheroLog.size) {
        out(`# AuthHero's console: ${authheroLog.size} distinct lines${opts.verbose ? "" : " (first 15; --verbose for all)"}`);
        let i = 0;
        for (const [k, n] of authheroLog) {
            if (!opts.verbose && i++ >= 15) break;
            out(`#   ${k}${n > 1 ? ` (x${n})` : ""}`);
        }
    }
    if (failed === 0 && passed === 0) failed = 1;
    out(`${passed} passed, ${failed} failed`);
}

try {
    await main();
} catch (e) {
    check("the suite ran without an internal error", false, e?.stack ?? e);
}
if (!finished) {
    summary();
    if (worker && worker.dead && worker.stderrTail.length) {
        out("# worker's last stderr lines:");
        for (const l of worker.stderrTail) out(`#   ${l}`);
    }
    await finish(failed > 0 ? 1 : 0);
}
process.exit(process.exitCode ?? 0);
